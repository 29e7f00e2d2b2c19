"""Persona switch: ``persona_circuits.apply_mask`` enter + exit vs reloading the model (``load_model()``).

Same result: after exit the weights are bit-identical to the dense weights (and to a fresh load), and
inside the block every weight equals ``W`` where the mask keeps it and 0 elsewhere.

    python benchmarks/bench_switch.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import Result, get_model, main_of, median, repeats_for  # noqa: E402


def run(quick: bool = False, repeats: int | None = None, model=None, reload: bool = True) -> Result:
    import persona_circuits as pc
    from persona_circuits.model.interventions import weights_snapshot
    from persona_circuits.model.loading import prunable_layers

    model = model or get_model()
    repeats = repeats_for(quick, repeats)
    layers = prunable_layers(model)
    masks = [pc.random_mask(model, sparsity=0.5, seed=s) for s in (0, 1)]
    snap = weights_snapshot(model)
    res = Result("switch", "Persona switch: apply_mask enter + exit vs reloading the model",
                 "python benchmarks/bench_switch.py" + (" --quick" if quick else ""), runs=repeats)
    with pc.apply_mask(model, masks[0]):
        for l in layers:
            m = masks[0].masks[l.name]
            assert torch.equal(l.weight, torch.where(m, snap[l.name], torch.zeros(()))), l.name
    assert all(torch.equal(l.weight, snap[l.name]) for l in layers), "weights not restored"
    try:
        with pc.apply_mask(model, masks[1]):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert all(torch.equal(l.weight, snap[l.name]) for l in layers), "weights not restored after an exception"
    res.checks.append(f"masked weights = W where kept, 0 elsewhere; weights bit-exact after exit and after an "
                      f"exception ({len(layers)} layers)")

    switch = []
    for i in range(max(repeats, 5) * 2):  # alternate two personas, as a study would
        t = time.perf_counter()
        with pc.apply_mask(model, masks[i % 2]):
            pass
        switch.append(time.perf_counter() - t)
    res.timings["apply_mask enter + exit"] = switch
    n_bytes = sum(l.weight.numel() * l.weight.element_size() for l in layers)
    n_w = sum(l.weight.numel() for l in layers)
    # the memory traffic floor of an in-place switch: copy the backup in, zero the pruned entries, copy back
    buf = [torch.empty_like(l.weight) for l in layers]
    copies = []
    for _ in range(max(repeats, 3)):
        t = time.perf_counter()
        for b, l in zip(buf, layers):
            b.copy_(l.weight)
        copies.append(time.perf_counter() - t)
    del buf
    res.timings["one copy of all masked weights (preallocated)"] = copies
    med = median(switch)
    res.add("switch time (enter + exit)", med * 1e3, "ms", 50, "<")
    if reload:
        loads = []
        for _ in range(1 if quick else 3):
            t = time.perf_counter()
            fresh = pc.load_model(dtype="float32")  # the dtype of _common.get_model()
            loads.append(time.perf_counter() - t)
            same = all(torch.equal(a.weight, snap[a.name]) for a in prunable_layers(fresh))
            del fresh
            assert same, "a fresh load differs from the restored weights"
        res.timings["load_model() (reload)"] = loads
        res.checks.append("a fresh load_model() has the same weights as the restored model")
        res.add("speed-up over reloading", median(loads) / med, "x")
    cp = median(copies)
    res.add("bandwidth of a plain copy (read + write)", 2 * n_bytes / cp / 1e9, "GB/s")
    res.add("switch time / one plain copy of the weights", med / cp, "x")
    res.notes.append(f"{n_w:,} masked weights ({n_bytes / 1e6:.0f} MB float32), random masks at rho 0.5; an "
                     f"in-place switch must write every masked weight twice (zero, restore) and keep a backup")
    if med >= 0.05:
        res.misses.append(
            f"switch {med * 1e3:.0f} ms vs target 50 ms: it moves about {4 * n_bytes / 1e6:.0f} MB through memory "
            f"(backup copy read+write, zeroing, restore copy read+write) plus {n_w / 1e6:.0f} MB of mask; "
            f"one plain copy of the weights alone takes {cp * 1e3:.0f} ms here "
            f"({2 * n_bytes / cp / 1e9:.1f} GB/s), so the backup and the restore copies alone (the floor of an "
            f"in-place switch that keeps a backup) take {2 * cp * 1e3:.0f} ms on this machine")
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
