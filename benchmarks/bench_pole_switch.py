"""Persona-to-persona switch: ``MaskSwitcher.switch`` between the two poles' Wanda masks (writes only the
entries where they differ) vs a full ``apply_mask`` exit + enter (restore every masked weight, then mask
every weight again), the way a switch between poles cost before.

Same result: after each switch every prunable weight is bit-identical to the weight inside
``apply_mask(model, mask)`` for that pole, and closing the switcher restores the dense weights bit-exactly.

    python benchmarks/bench_pole_switch.py [--quick]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import Result, get_model, main_of, median, repeats_for  # noqa: E402


def run(quick: bool = False, repeats: int | None = None, model=None, calib_size: int | None = None) -> Result:
    import persona_circuits as pc
    from persona_circuits.model.interventions import MaskSwitcher, weights_snapshot
    from persona_circuits.model.loading import prunable_layers

    model = model or get_model()
    repeats = repeats_for(quick, repeats, 5)
    persona = pc.load_persona_set("mbti-ei")
    sigs = pc.record_persona_signatures(model, persona, calib_size=calib_size or (2 if quick else 16))
    masks = pc.build_masks(model, "wanda", sigs)
    a, b = (masks[p] for p in persona.pole_names)
    layers = prunable_layers(model)
    res = Result("pole_switch", "Persona switch between a Wanda pair's poles: MaskSwitcher vs apply_mask exit + enter",
                 "python benchmarks/bench_pole_switch.py" + (" --quick" if quick else ""), runs=repeats)
    snap = weights_snapshot(model)
    inside = {}
    for m in (a, b):
        with pc.apply_mask(model, m):
            inside[id(m)] = weights_snapshot(model)
    sw = MaskSwitcher(model)
    t0 = time.perf_counter()
    sw.open()
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    sw.prepare(a, b)
    t_prep = time.perf_counter() - t0
    try:
        sw.switch(a)
        for m in (b, a, b):
            sw.switch(m)
            assert all(torch.equal(l.weight, inside[id(m)][l.name]) for l in layers), "switch differs from apply_mask"
        n_sw = max(repeats, 5) * 4
        times = []
        for i in range(n_sw):
            m = a if i % 2 == 0 else b
            t0 = time.perf_counter()
            sw.switch(m)
            times.append(time.perf_counter() - t0)
    finally:
        sw.close()
    assert all(torch.equal(l.weight, snap[l.name]) for l in layers), "weights not restored"
    res.checks.append(f"after every switch all {len(layers)} prunable weights are bit-identical to the weights inside "
                      f"apply_mask for that pole; dense weights bit-exact after close")
    full = []
    cur = pc.apply_mask(model, a)
    cur.__enter__()
    try:
        for i in range(max(repeats, 5) * 4):
            m = b if i % 2 == 0 else a
            t0 = time.perf_counter()
            cur.__exit__(None, None, None)
            cur = pc.apply_mask(model, m)
            cur.__enter__()
            full.append(time.perf_counter() - t0)
    finally:
        cur.__exit__(None, None, None)
    assert all(torch.equal(l.weight, snap[l.name]) for l in layers), "weights not restored after apply_mask"
    res.timings = {"MaskSwitcher.switch (pole A <-> pole B)": times, "apply_mask exit + enter": full}
    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    more = None
    if cores > threads:  # the switch spreads over torch's threads: also time it with every core
        torch.set_num_threads(cores)
        try:
            with MaskSwitcher(model) as sw3:
                sw3.prepare(a, b)
                sw3.switch(a)
                more = []
                for i in range(max(repeats, 5) * 4):
                    t0 = time.perf_counter()
                    sw3.switch(b if i % 2 == 0 else a)
                    more.append(time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)
        res.timings[f"MaskSwitcher.switch with {cores} threads"] = more
    med, med_full = median(times), median(full)
    n_w = sum(m.numel() for m in a.masks.values())
    sw2 = MaskSwitcher(model)
    with sw2:
        changed = sw2.changed_entries(a, b)
    res.add("switch time between the poles (MaskSwitcher)", med * 1e3, "ms", 10, "<")
    res.add("full apply+restore time (apply_mask exit + enter)", med_full * 1e3, "ms")
    res.add("speed-up of the switch", med_full / med, "x")
    if more:
        res.add(f"switch time with {cores} threads (every core)", median(more) * 1e3, "ms")
    res.add("entries written per switch", 100 * changed / n_w, "% of masked weights")
    res.add("one-off cost: dense copy on open", t_open * 1e3, "ms")
    res.add("one-off cost: prepare the pair (both directions)", t_prep * 1e3, "ms")
    elt = layers[0].weight.element_size()
    res.notes.append(f"wanda masks of mbti-ei's two poles (rho 0.5, {n_w:,} masked weights, "
                     f"{n_w * elt / 1e6:.0f} MB); a switch writes {changed:,} entries (index 8 B + value {elt} B each)")
    if med >= 0.01:
        lines = 64 // elt
        touched = 1 - (1 - changed / n_w) ** lines
        res.misses.append(
            f"switch {med * 1e3:.1f} ms vs 10 ms: it writes {changed:,} entries scattered over {n_w * elt / 1e6:.0f} MB of "
            f"weights; at {100 * changed / n_w:.1f} % density about {100 * touched:.0f} % of the 64-byte cache lines "
            f"of the weights hold a changed entry, so the switch reads and writes about {touched * n_w * elt / 1e6:.0f} MB "
            f"plus {changed * (8 + elt) / 1e6:.0f} MB of indices and values with {threads} thread(s)"
            + (f"; spread over {cores} threads it took {median(more) * 1e3:.1f} ms" if more else ""))
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
