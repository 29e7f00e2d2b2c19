"""SetRun.null_draw: a label-swapped draw of a set from its seed (signatures and directions, same swaps)."""

from types import SimpleNamespace

import torch

from persona_circuits.measure.nulls import label_swap_indices
from persona_circuits.study.setup import DRAW_CACHE, NullDraw, SetRun

from ..analysis.test_atlas import random_persona


def _run(model, swap="balanced") -> SetRun:
    stats = random_persona(model, 3, n=10)
    sset = SimpleNamespace(name="toy", poles=["A", "B"], identity=lambda: {"name": "toy"})
    sigs = {p: stats[p].head(8).signature(pole=p) for p in ("A", "B")}
    return SetRun(sset, 8, {}, stats, sigs, {}, seed=5, swap=swap, calibration_hash="h")


def test_a_draw_is_its_swaps_of_the_first_n_calib_texts(tiny_llama):
    run = _run(tiny_llama)
    d = run.null_draw(123)
    assert isinstance(d, NullDraw) and d.seed == 123 and d.swap == "balanced" and run.null_draw(123) is d
    ia, ib = label_swap_indices(8, 123)
    resid = torch.cat([run.stats["A"].resid[:8], run.stats["B"].resid[:8]])
    assert torch.equal(d.directions, resid[ia].mean(0) - resid[ib].mean(0))
    assert d.directions.shape == (tiny_llama.cfg.n_layers, tiny_llama.cfg.d_model)
    both = run.stats["A"].head(8).concat(run.stats["B"].head(8))
    want = both.signature(ia, pole="A")
    for k, v in want.sums.items():
        assert all(torch.equal(d.sigs["A"].sums[k][j], x) for j, x in v.items())
    assert d.sigs["A"].calibration_hash == "h:swap123:balanced"
    coins = _run(tiny_llama, "coins").null_draw(123)
    ca, cb = label_swap_indices(8, 123, "coins")
    assert torch.equal(coins.directions, resid[ca].mean(0) - resid[cb].mean(0))


def test_draw_seeds_are_per_purpose_and_the_cache_is_bounded(tiny_llama):
    run = _run(tiny_llama)
    seeds = {run.draw_seed("matched", m, t, k) for m in ("steering", "soft-mask") for t in (0.02, 0.3) for k in range(3)}
    assert len(seeds) == 12 and run.draw_seed("curve", "steering", 0) == _run(tiny_llama).draw_seed("curve", "steering", 0)
    for s in range(DRAW_CACHE + 3):
        run.null_draw(s)
    assert len(run._draws) == DRAW_CACHE and 0 not in run._draws
    run.release()
    assert not run._draws and run._both is None
