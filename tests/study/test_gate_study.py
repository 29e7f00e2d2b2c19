"""The headline of one set with the projection gate, every-layer steering and the gate's mean push on a tiny
model (the quick preset leaves them out to keep its runtime): curves, matched rows with damage-matched
label-swapped nulls, the gate-analysis stage, and their records."""

from dataclasses import replace

import pytest

from persona_circuits.results import GateAnalysis, Headline
from persona_circuits.study import StudyConfig
from persona_circuits.study.gate_analysis import cross_set_overlap, gate_analysis, gate_enabled
from persona_circuits.study.headline import run_headline
from persona_circuits.study.sets import study_sets
from persona_circuits.study.setup import prepare_set
from persona_circuits.study.state import Study

METHODS = ("steering", "projection-gate", "steering-all", "gate-bias")


def gate_config() -> StudyConfig:
    c = StudyConfig.quick_preset()
    c.sets = replace(c.sets, sets=("mbti-ei",), calib_size=6, calib_record=6, test_size_mbti=3)
    c.nulls = replace(c.nulls, curve_draws=1, matched_draws=2)
    c.damage = replace(c.damage, damage_texts=3, fit_texts=3)
    c.headline = replace(c.headline, curve_items=2, soft_strengths=(), steer_coefs=(4.0,), gate_strengths=(0.3,),
                         steer_all_coefs=(0.3,), matched_damages=(0.002,), matched_methods=METHODS)
    return c


@pytest.fixture(scope="module")
def gate_run(tiny_llama, tmp_path_factory):
    study = Study(tiny_llama, tmp_path_factory.mktemp("gate-study"), gate_config(), None, progress=False)
    run = prepare_set(study, study_sets(study.cfg, None)[0])
    return study, run, run_headline(study, run, None), gate_analysis(study, run=run)


def test_gate_rows_curves_and_analysis(gate_run):
    study, run, head, g = gate_run
    assert gate_enabled(study)
    assert run.directions.shape == (study.model.cfg.n_layers, study.model.cfg.d_model)
    assert run.null_draw(run.draw_seed("gate-analysis", 0)).directions.shape == run.directions.shape
    assert isinstance(head, Headline) and {"projection-gate", "steering-all", "gate-bias"} <= set(head.curves)
    assert Headline.from_dict(head.to_dict()).to_dict() == head.to_dict()  # what results.json reads back
    by = {r.method: r for r in head.matched}
    assert set(by) == set(METHODS) and list(by)[0] == "steering"
    for m in ("projection-gate", "steering-all", "gate-bias"):
        r = by[m]
        assert r.reached, r
        assert r.null_draws == 2 and len(r.null_shifts) == 2 and r.vs_steering is not None
    a = g.analysis
    assert isinstance(a, GateAnalysis) and GateAnalysis.from_dict(a.to_dict()) == a
    assert a.null_draws == 2 and a.overlap.poles == 0.0 and len(a.overlap.null_vs_null) == 1
    assert sum(p.selected for p in a.poles.values()) == sum(sum(r.selected.values()) for r in a.layout)
    assert len(g.selections.null) == 2
    cross = cross_set_overlap({"x": g.selections, "y": g.selections})
    assert cross[0].same == 1.0


def test_gate_analysis_is_cached(gate_run):
    study, run, _, g = gate_run
    again = gate_analysis(study, run=run)
    assert again.analysis == g.analysis
