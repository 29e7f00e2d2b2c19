import math

import pytest

from persona_circuits.measure.damage import neutral_reference
from persona_circuits.measure.dials import mask_dial, soft_mask_dial, steering_dial
from persona_circuits.masks.registry import build_masks
from persona_circuits.measure.matching import fit_strengths, held_out_damage, loglog_slope, next_strength, pair_fit_damage, within
from persona_circuits.measure.nulls import label_swapped_signatures
from persona_circuits.masks.statistics import persona_signatures, record_persona_per_text


@pytest.fixture(scope="module")
def persona():
    from persona_circuits.data import load_persona_set

    return load_persona_set("mbti-ei").subset(calib_size=10, test_size=4)


@pytest.fixture(scope="module")
def stats(tiny_llama, persona):
    return record_persona_per_text(tiny_llama, persona, batch_size=5)


@pytest.fixture(scope="module")
def refs(tiny_llama):
    return (neutral_reference(tiny_llama, n_texts=6, offset=0, batch_size=6),
            neutral_reference(tiny_llama, n_texts=6, offset=6, batch_size=6))


def test_fit_and_held_out_texts_are_disjoint_bundled_texts(refs):
    held, fit = refs
    assert held.indices == list(range(6)) and fit.indices == list(range(6, 12))
    assert not set(held.indices) & set(fit.indices) and not set(held.texts) & set(fit.texts)


def test_slope_and_next_strength_follow_the_log_log_curve():
    pts = [(0.1, 0.01), (1.0, 1.0)]  # damage = strength ** 2
    assert loglog_slope(pts, 0.1) == pytest.approx(2.0)
    dial = steering_dial(None, 0, lo=1e-3, hi=10)
    assert next_strength(pts, [], 0.04, dial) == pytest.approx(0.2)  # interpolated between the two
    assert next_strength([(1.0, 1.0)], pts, 4.0, dial) == pytest.approx(2.0)  # one own point: the prior's slope
    assert next_strength([], pts, 0.25, dial) == pytest.approx(0.5)  # none: the prior's interpolation
    assert next_strength([], pts, 1e6, dial) == 10  # clamped to the dial's range


@pytest.mark.parametrize("kind", ["soft-mask", "contrastive-wanda"])
def test_a_damage_matched_null_reaches_its_target(tiny_llama, persona, stats, refs, kind):
    held, fit = refs
    a, b = persona.pole_names
    sigs = persona_signatures(persona, stats)
    null = label_swapped_signatures(stats[a], stats[b], draws=1, seed=3, poles=(a, b))[0]
    if kind == "soft-mask":
        real = soft_mask_dial(build_masks(tiny_llama, "contrastive-wanda", sigs, sparsity=0.5))
        nd = soft_mask_dial(build_masks(tiny_llama, "contrastive-wanda", null, sparsity=0.5))
        grid = (0.1, 1.0)
    else:
        real, nd = mask_dial(tiny_llama, kind, sigs), mask_dial(tiny_llama, kind, null)
        grid = (0.2, 0.7)
    curve = [(s, pair_fit_damage(tiny_llama, real, s, fit)) for s in grid]
    target = math.sqrt(curve[0][1] * curve[1][1])  # between the two grid damages
    f = fit_strengths(tiny_llama, nd, [target], fit, prior=curve, tol=0.1, max_evals=6)[0]
    assert f.reached and within(f.fit_damage_kl, target, 0.1), f
    assert pair_fit_damage(tiny_llama, nd, f.strength, fit) == pytest.approx(f.fit_damage_kl)
    h = held_out_damage(tiny_llama, nd.make(f.strength), held, n_boot=200)
    assert h.damage_kl_ci95[0] <= h.damage_kl <= h.damage_kl_ci95[1] and h.damage_kl > 0


def test_an_unreachable_target_is_not_reached(tiny_llama, persona, stats, refs):
    _, fit = refs
    sigs = persona_signatures(persona, stats)
    dial = soft_mask_dial(build_masks(tiny_llama, "contrastive-wanda", sigs, sparsity=0.05))
    top = pair_fit_damage(tiny_llama, dial, 1.0, fit)
    f = fit_strengths(tiny_llama, dial, [top * 50], fit, prior=[(1.0, top)])[0]
    assert not f.reached and f.strength is None and f.history
