"""The projection-gate and every-layer steering dials of the headline (``study.dials.Dials``) on a tiny model:
the real dial from the run's signatures and all-layer directions, each null dial from its label-swapped draw's own
pseudo-pole signatures and directions (selected again)."""

from types import SimpleNamespace

import pytest
import torch

from persona_circuits.results import SteeringChoice
from persona_circuits.study import StudyConfig
from persona_circuits.study.config import StudyConfig as Config
from persona_circuits.study.dials import CURVE_GRIDS, Dials


@pytest.fixture(scope="module")
def fake_run(tiny_llama):
    from persona_circuits.measure.baselines import steering_vectors
    from persona_circuits.data import load_persona_set
    from persona_circuits.masks.statistics import record_pairs
    from persona_circuits.study.setup import SetRun

    ps = load_persona_set("mbti-ei").subset(calib_size=4, test_size=2)
    poles = ps.pole_names
    stats = {p: record_pairs(tiny_llama, ps.calibration_pairs(p), batch_size=4, residuals=True) for p in poles}
    sigs = {p: stats[p].signature(pole=p, dataset=ps.name) for p in poles}
    a, b = (stats[p].resid for p in poles)
    dirs = steering_vectors(a, b)
    run = SetRun(SimpleNamespace(name=ps.name, poles=poles, ps=ps), 4, {}, stats, sigs, {"contrastive-wanda": None},
                 seed=0, swap="balanced", calibration_hash="h")
    run.steering, run.vector, run.directions = SteeringChoice(layer=1), dirs[1], dirs
    return run


def test_gate_and_steering_all_dials_real_and_null(tiny_llama, fake_run):
    dials = Dials(SimpleNamespace(model=tiny_llama, cfg=StudyConfig.quick_preset()), fake_run)
    gate = dials.real("projection-gate")
    ivs = gate.make(0.1)
    assert [iv.gamma for iv in ivs] == pytest.approx([0.9, 0.9])
    assert all(iv.mask.config.method == "projection-gate" for iv in ivs)
    null = dials.null("projection-gate", 0).make(0.1)
    real_bits = [iv.mask.identity()["bits"] for iv in ivs]
    assert [iv.mask.identity()["bits"] for iv in null] != real_bits  # selected again from the draw's inputs
    assert dials.null("projection-gate", 1).make(0.1)[0].mask.identity()["bits"] != null[0].mask.identity()["bits"]
    steer = dials.real("steering-all").make(2.0)
    assert steer[0].steer.coef == 2.0 and steer[1].steer.coef == -2.0
    assert torch.equal(steer[0].steer.vectors, fake_run.directions)
    assert torch.equal(dials.null("steering-all", 1).make(1.0)[0].steer.vectors, fake_run.null_draw(1).directions)


def test_presets_and_grids():
    full, quick = Config.full(), Config.quick_preset()
    assert {"projection-gate", "steering-all"} <= set(full.headline.matched_methods)
    assert full.get(CURVE_GRIDS["projection-gate"]) and full.get(CURVE_GRIDS["steering-all"])
    assert not quick.get(CURVE_GRIDS["projection-gate"]) and not quick.get(CURVE_GRIDS["steering-all"])


def test_gate_bias_dial_uses_the_same_selection(tiny_llama, fake_run):
    dials = Dials(SimpleNamespace(model=tiny_llama, cfg=StudyConfig.quick_preset()), fake_run)
    gate = dials.real("projection-gate").make(0.1)
    bias = dials.real("gate-bias").make(0.1)
    assert len(dials._gates) == 1 and all(iv.steer.coef == 0.1 for iv in bias)
    assert set(bias[0].steer.biases) == set(gate[0].mask.masks)
    nb = dials.null("gate-bias", 0).make(0.1)
    dials.null("gate-bias", 1)
    assert len(dials._gates) == 2 and not torch.equal(next(iter(nb[0].steer.biases.values())),
                                                      next(iter(bias[0].steer.biases.values())))
