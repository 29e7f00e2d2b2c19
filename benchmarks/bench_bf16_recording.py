"""bfloat16 end to end on CPU: signature recording throughput in bfloat16 vs float32 (same calibration
texts, same run), the masks built from each (difference rate, next to the difference between the two
poles' masks), and damage (KL on neutral text, perplexity) measured in each dtype.

Statistics are accumulated in float64 in both dtypes (each layer input is cast to float32 for the
per-text reductions). Same result is not expected bit for bit: the benchmark reports how far apart the
two dtypes' signatures and masks are.

    python benchmarks/bench_bf16_recording.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import Result, interleaved, main_of, median, repeats_for  # noqa: E402
from _dtypes import as_study, bf16_note, get_bf16_model, get_model  # noqa: E402


def diff_rate(a, b) -> float:
    """Share of masked weights where masks ``a`` and ``b`` differ."""
    n = sum(m.numel() for m in a.masks.values())
    return sum(int((a.masks[k] ^ b.masks[k]).sum()) for k in a.masks) / n


def run(quick: bool = False, repeats: int | None = None, model=None, calib_size: int | None = None) -> Result:
    import persona_circuits as pc

    model = model or get_model()
    m16 = get_bf16_model()
    repeats = repeats_for(quick, repeats, 3)
    calib = calib_size or (2 if quick else 16)
    persona = pc.load_persona_set("mbti-ei")
    res = Result("bf16_recording", "bfloat16 vs float32: signature recording, masks and damage",
                 "python benchmarks/bench_bf16_recording.py" + (" --quick" if quick else ""), runs=repeats)
    rec = {"record_persona_signatures, float32": lambda: pc.record_persona_signatures(model, persona, calib_size=calib),
           "record_persona_signatures, bfloat16": as_study(m16, lambda: pc.record_persona_signatures(m16, persona,
                                                                                             calib_size=calib))}
    s32, s16 = (f() for f in rec.values())
    layer = next(iter(s32[persona.pole_names[0]].sums))
    assert all(v.dtype == torch.float64 for sig in (s32, s16) for s in sig.values() for v in s.sums[layer].values())
    rel = max(float((s16[p].mean(layer) - s32[p].mean(layer)).norm() / s32[p].mean(layer).norm())
              for p in persona.pole_names)
    res.checks.append(f"signatures of both dtypes hold float64 sums over the same {s32[persona.pole_names[0]].n_tokens} "
                      f"answer tokens per pole; relative difference of the mean input of {layer}: {rel:.1e}")
    res.timings = interleaved(rec, repeats)
    t = {k: median(v) for k, v in res.timings.items()}
    res.add("recording speed-up, bfloat16 vs float32", t["record_persona_signatures, float32"] /
            t["record_persona_signatures, bfloat16"], "x")
    n_tok = sum(s.n_tokens for s in s32.values())
    for k, v in t.items():
        res.add(f"answer tokens per second, {k.split(', ')[1]}", n_tok / v, "tokens/s")
    res.add("relative difference of a mean layer input, bfloat16 vs float32", rel, "")
    lines = ["| method | masks differ, bf16 end to end vs float32 | masks differ, bf16 signatures + float32 weights "
             "vs float32 | the two poles' float32 masks differ |", "| --- | --- | --- | --- |"]
    a, b = persona.pole_names
    for method in ("wanda", "contrastive-wanda"):
        k32 = pc.build_masks(model, method, s32)
        k16 = pc.build_masks(m16, method, s16)  # bf16 weights and bf16 signatures
        kmix = pc.build_masks(model, method, s16)  # float32 weights, bf16 signatures
        d16 = max(diff_rate(k32[p], k16[p]) for p in (a, b))
        dmix = max(diff_rate(k32[p], kmix[p]) for p in (a, b))
        dpole = diff_rate(k32[a], k32[b])
        lines.append(f"| {method} | {100 * d16:.2f} % | {100 * dmix:.2f} % | {100 * dpole:.2f} % |")
        res.add(f"mask difference rate, {method}, bfloat16 vs float32 (worse pole)", 100 * d16, "%")
        res.add(f"mask difference rate, {method}, pole A vs pole B (float32)", 100 * dpole, "%")
        if method == "contrastive-wanda":
            dmg = {}
            for name, m in (("float32", model), ("bfloat16", m16)):
                def damage(m=m, mask=k32[a]):
                    ref = pc.neutral_reference(m, n_texts=2 if quick else 8)
                    kl, _, ppl, _ = pc.kl_damage(m, mask, ref)
                    return kl, ppl, ref.dense_perplexity
                dmg[name] = as_study(m, damage)()
            res.add("KL damage of the contrastive-Wanda pole-A mask, float32", dmg["float32"][0], "nats/token")
            res.add("KL damage of the contrastive-Wanda pole-A mask, bfloat16", dmg["bfloat16"][0], "nats/token")
            res.add("dense perplexity on neutral text, float32", dmg["float32"][2], "")
            res.add("dense perplexity on neutral text, bfloat16", dmg["bfloat16"][2], "")
    res.tables.append("Masks built from each dtype's signatures (share of masked weights that differ; default "
                      "sparsities):\n\n" + "\n".join(lines))
    res.notes.append(f"mbti-ei, {calib} calibration items per pole, batch 8; the bfloat16 model is "
                     f"load_model(dtype='bfloat16'); masks of bfloat16 'end to end' use its bfloat16 weights too")
    res.notes.append(bf16_note(m16))
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
