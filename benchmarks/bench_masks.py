"""Mask construction: contrastive-Wanda masks (all layers, both poles, rho 0.5) built by
``persona_circuits.masks.build.contrastive_wanda_masks`` vs the released code's per-row ``torch.topk`` loop.

Both use the same scores (``scoring.contrastive_wanda_scores``). The released loop keeps, per row, the
indices ``torch.topk`` returns; its order among exactly tied scores is unspecified, ours is by ``|W|``
then index, so masks are compared entry by entry and every mismatch must lie on a row whose k-th and
(k+1)-th largest scores tie exactly (the tie that the two rules break differently).

    python benchmarks/bench_masks.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import Result, get_model, interleaved, main_of, median, persona_signatures, repeats_for  # noqa: E402

SPARSITY = 0.5


@torch.no_grad()
def released_masks(model, sig_a, sig_b, sparsity=SPARSITY, layers=None):
    """The released code's approach: per layer, per row, ``torch.topk`` in a Python loop."""
    from persona_circuits import scoring
    from persona_circuits.masks.build import keep_count
    from persona_circuits.model.loading import prunable_layers

    ma, mb = {}, {}
    for l in layers or prunable_layers(model):
        w = l.weight
        k = keep_count(w.shape[1], sparsity)
        sa, sb = scoring.contrastive_wanda_scores(w, sig_a, sig_b, l.name)
        for s, out in ((sa, ma), (sb, mb)):
            m = torch.zeros(s.shape, dtype=torch.bool)
            for i in range(s.shape[0]):
                _, idx = torch.topk(s[i], k)
                m[i, idx] = True
            out[l.name] = m
    return ma, mb


@torch.no_grad()
def compare(model, sig_a, sig_b, ours: dict, ref: dict, sparsity=SPARSITY) -> tuple[int, int, int]:
    """(mismatching entries, of which on rows with an exact tie at the threshold, rows with such a tie)."""
    from persona_circuits import scoring
    from persona_circuits.masks.build import keep_count
    from persona_circuits.model.loading import prunable_layers

    bad = bad_tied = tied_rows = 0
    layers = {l.name: l for l in prunable_layers(model)}
    for pole, (o, r) in enumerate(zip(ours, ref)):
        for name in r:
            w = layers[name].weight
            k = keep_count(w.shape[1], sparsity)
            s = scoring.contrastive_wanda_scores(w, sig_a, sig_b, name)[pole]
            top = s.topk(k + 1, dim=1).values
            tie = top[:, k - 1] == top[:, k]  # the k-th and (k+1)-th scores are equal
            diff = o[name] != r[name]
            bad += int(diff.sum())
            bad_tied += int(diff[tie].sum())
            tied_rows += int(tie.sum())
            # both keep exactly k per row
            assert (o[name].sum(1) == k).all() and (r[name].sum(1) == k).all()
    return bad, bad_tied, tied_rows


def run(quick: bool = False, repeats: int | None = None, model=None, calib_size: int | None = None) -> Result:
    import persona_circuits as pc
    from persona_circuits.model.loading import prunable_layers

    model = model or get_model()
    repeats = repeats_for(quick, repeats, 3)
    calib_size = calib_size or (4 if quick else 32)
    sigs = persona_signatures(model, calib_size)
    a, b = sigs["extravert"], sigs["introvert"]
    all_layers = prunable_layers(model)
    # --quick: the released loop on the first 7 layers only (one block); ours still builds all layers
    ref_layers = all_layers[:7] if quick else all_layers
    out = {}
    res = Result("masks", "Mask construction: contrastive-Wanda, all layers, both poles, rho 0.5",
                 "python benchmarks/bench_masks.py" + (" --quick" if quick else ""), runs=repeats)

    t = interleaved({"ours": lambda: out.__setitem__("ours", pc.contrastive_wanda_masks(model, a, b, sparsity=SPARSITY)),
                     "released": lambda: out.__setitem__("ref", released_masks(model, a, b, layers=ref_layers))},
                    repeats)
    ours, ref = out["ours"], out["ref"]  # the last timed run of each is checked
    bad, bad_tied, tied_rows = compare(model, a, b, ({n: ours[0].masks[n] for n in ref[0]},
                                                     {n: ours[1].masks[n] for n in ref[1]}), ref)
    n_cmp = 2 * sum(l.weight.numel() for l in ref_layers)
    if bad != bad_tied:
        raise AssertionError(f"masks differ on {bad - bad_tied} entries of rows without a tie at the threshold")
    res.checks.append(f"same masks: {n_cmp:,} entries compared, {bad:,} differ, all of them on the {tied_rows:,} "
                      f"rows whose k-th and (k+1)-th scores tie exactly (ReLU zeros; topk's order among ties is "
                      f"unspecified, ours breaks them by |W|)")

    if quick:  # scale the released loop's time to all layers by weight count
        scale = sum(l.weight.numel() for l in all_layers) / sum(l.weight.numel() for l in ref_layers)
        t["released"] = [x * scale for x in t["released"]]
        res.notes.append(f"--quick: released loop timed on {len(ref_layers)} layers and scaled x{scale:.1f} by weight count")
    res.timings = {"contrastive_wanda_masks (ours)": t["ours"], "released per-row topk loop": t["released"]}
    n_w = sum(l.weight.numel() for l in all_layers)
    speedup = median(t["released"]) / median(t["ours"])
    res.add("speed-up over the released per-row topk loop", speedup, "x", 20, ">=")
    res.add("time to build both masks (ours)", median(t["ours"]), "s", 2.0, "<")
    res.add("weights scored and selected per second (ours)", 2 * n_w / median(t["ours"]) / 1e6, "M/s")
    res.notes.append(f"{len(all_layers)} layers, {n_w:,} weights per mask, calibration {calib_size} texts per pole")
    # measured cause: the cost of the two unavoidable steps (scores; one k-th value per row)
    from persona_circuits import scoring
    from persona_circuits.masks.build import keep_count
    from persona_circuits.masks.selection import kth_smallest

    t_score = t_kth = 0.0
    rows = 0
    for l in all_layers:
        w = l.weight
        t0 = __import__("time").perf_counter()
        pair = scoring.contrastive_wanda_scores(w, a, b, l.name)
        t1 = __import__("time").perf_counter()
        for sc in pair:
            kth_smallest(sc.float(), w.shape[1] - keep_count(w.shape[1], SPARSITY) + 1)
        t_kth += __import__("time").perf_counter() - t1
        t_score += t1 - t0
        rows += 2 * w.shape[0]
    res.add("of which: scoring both poles (one pass)", t_score, "s")
    res.add("of which floor: one float32 k-th value per row, both poles", t_kth, "s")
    res.add("released loop: time per row (topk + index assignment)", median(t["released"]) / rows * 1e6, "us")
    res.add("ours: time per row", median(t["ours"]) / rows * 1e6, "us")
    if speedup < 20 or median(t["ours"]) >= 2.0:
        res.misses.append(
            f"{speedup:.1f}x and {median(t['ours']):.1f} s: the released loop is not dominated by Python overhead here: "
            f"rows are long (576-1536 entries), so each torch.topk call does real work "
            f"({median(t['released']) / rows * 1e6:.0f} us per row against ~{median(t['ours']) / rows * 1e6:.0f} us for ours). "
            f"Ours is bounded below by the scores ({t_score:.2f} s) plus one k-th-value selection per row "
            f"(kth_smallest on float32, NumPy's introselect on the CPU, {t_kth:.2f} s for the {2 * n_w / 1e6:.0f} M scores, "
            f"{1e9 * t_kth / (2 * n_w):.1f} ns per score on this CPU); the rest is the ReLU ties at 0 "
            f"(every row of a pole with fewer than k channels of z > 0 is broken by |W| on int32 keys)")
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
