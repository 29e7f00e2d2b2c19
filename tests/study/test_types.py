"""The 16-type stage on the tiny model: per-(method, axis) seeds and tests, the axis alone at a quarter of the damage."""

from dataclasses import replace
from types import SimpleNamespace

from persona_circuits.masks.compose import MBTI_AXES
from persona_circuits.data import load_persona_set
from persona_circuits.masks.registry import build_masks
from persona_circuits.study import StudyConfig
from persona_circuits.study.setup import SetRun
from persona_circuits.study.state import Study
from persona_circuits.study.types import axis_state, run_types, types_seed
from persona_circuits.study.verdicts import TYPES_FAMILY, apply_verdicts

from ..analysis.test_atlas import random_persona
from ..results_fixtures import minimal_results


def test_types_draw_their_own_seeds_and_test_one_per_method_and_axis(tiny_llama, tmp_path):
    cfg = StudyConfig.quick_preset()
    cfg.types = replace(cfg.types, enabled=True, methods=("steering",), target_kl=0.002, null_draws=3, items_per_axis=2)
    cfg.damage = replace(cfg.damage, damage_texts=4, fit_texts=4)
    study = Study(tiny_llama, tmp_path / "run", cfg, None, progress=False)
    axes = []
    for i, (name, _, _) in enumerate(MBTI_AXES):
        ps = load_persona_set(name).subset(calib_size=2, test_size=2)
        stats = dict(zip(ps.pole_names, random_persona(tiny_llama, 10 + i, n=8).values()))
        sigs = {p: s.signature(pole=p) for p, s in stats.items()}
        sset = SimpleNamespace(name=name, poles=list(ps.pole_names), ps=ps, identity=lambda n=name: {"name": n})
        masks = {"contrastive-wanda": build_masks(tiny_llama, "contrastive-wanda", sigs, sparsity=0.5)}
        run = SetRun(sset, 8, {"n_calib": 8}, stats, sigs, masks, seed=cfg.seed, swap="balanced")
        axes.append(axis_state(study, run, {}))
    assert all(len(a.draws[m]) == 3 for a in axes for m in cfg.types.methods)
    seeds = {d.seed for a in axes for m in cfg.types.methods for d in a.draws[m]}
    assert len(seeds) == 4 * 3  # every axis (and method) its own draws
    assert all(d.sigs == {} for a in axes for d in a.draws["steering"])  # steering keeps only the directions
    out = run_types(study, axes, layer=1)
    assert [t.method for t in out] == ["steering"]
    for t in out:
        assert t.null_seed == types_seed(study, t.method) and t.null_swap == "balanced"
        assert len(t.rows) == 16
        for i in t.interference:
            assert i.alone_target_kl == 0.002 / 4 and i.alone_damage_kl > 0
    res = apply_verdicts(minimal_results(types=[t.to_dict() for t in out]))
    fam = next(f for f in res.multiple_comparisons if f.family == TYPES_FAMILY)
    assert fam.n_tests == sum(len(t.axis_tests) for t in res.types) <= 4
    reached = sum(r.reached for r in out[0].rows if r.type[0] == "E")
    assert all(a.type_pairs == reached for t in res.types for a in t.axis_tests)
