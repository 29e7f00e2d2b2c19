import numpy as np
import pytest
import torch

from persona_circuits.data import ChoiceItem, PersonaSet, Pole
from persona_circuits.measure.evaluation import pole_contrast, score_choices
from persona_circuits.model.interventions import apply_mask
from persona_circuits.masks.registry import build_masks
from persona_circuits.measure.nulls import (label_swap_indices, label_swapped_signatures, null_mask_pairs, null_test,
                                    random_directions, random_pairs_like)
from persona_circuits.masks.statistics import persona_signatures, record_persona_per_text


def contrast(model, masks, items, poles):
    s = {}
    for p in poles:
        with apply_mask(model, masks[p]):
            s[p] = score_choices(model, items, batch_size=8)
    return pole_contrast(s[poles[0]], s[poles[1]], condition="x").shift


@pytest.fixture(scope="module")
def persona():
    from persona_circuits.data import load_persona_set

    return load_persona_set("mbti-ei").subset(calib_size=10, test_size=6)


@pytest.fixture(scope="module")
def stats(tiny_llama, persona):
    return record_persona_per_text(tiny_llama, persona, batch_size=5)


def test_poles_with_the_same_texts_give_null_level_contrasts(tiny_llama, persona):
    same = PersonaSet("same", (Pole("p"), Pole("q")),
                      [ChoiceItem(it.id, it.question, it.answer_a, it.answer_a) for it in persona.calibration], persona.test)
    st = record_persona_per_text(tiny_llama, same, batch_size=5)
    sigs = persona_signatures(same, st)
    for method in ("contrastive-wanda", "contrastive-removal"):
        masks = build_masks(tiny_llama, method, sigs, sparsity=0.1)
        for k in masks["p"].masks:  # z = 0 everywhere: both poles get the same mask
            assert torch.equal(masks["p"].masks[k], masks["q"].masks[k])
        shift = contrast(tiny_llama, masks, same.test, ["p", "q"])
        assert shift == 0.0
        nulls = null_mask_pairs(tiny_llama, method, st["p"], st["q"], draws=3, poles=("p", "q"), sparsity=0.1)
        t = null_test(shift, [contrast(tiny_llama, n, same.test, ["p", "q"]) for n in nulls])
        assert t.null_shift_mean == 0.0 and not t.persona_specific


def test_swapping_every_label_negates_the_contrast(tiny_llama, persona, stats):
    """The label-swap null is centred on 0 by construction: a draw and its complement give opposite contrasts,
    bit for bit (the antithetic argument behind the zero centre)."""
    from persona_circuits.measure.nulls import complement

    a, b = persona.pole_names
    both = stats[a].concat(stats[b])
    ia, ib = label_swap_indices(len(stats[a]), seed=4)
    ca, cb = complement(ia, ib)
    sig = {a: both.signature(ia, pole=a), b: both.signature(ib, pole=b)}
    comp = {a: both.signature(ca, pole=a), b: both.signature(cb, pole=b)}
    m1 = build_masks(tiny_llama, "contrastive-removal", sig, sparsity=0.1)
    m2 = build_masks(tiny_llama, "contrastive-removal", comp, sparsity=0.1)
    for k in m1[a].masks:
        assert torch.equal(m1[a].masks[k], m2[b].masks[k]) and torch.equal(m1[b].masks[k], m2[a].masks[k])
    s1, s2 = contrast(tiny_llama, m1, persona.test, [a, b]), contrast(tiny_llama, m2, persona.test, [a, b])
    assert s1 == -s2 and s1 != 0.0


def test_a_steering_draw_and_its_complement_give_opposite_contrasts(tiny_llama, persona):
    """Steering nulls: the complement's direction is the exact negation, so every per-item contrast flips sign."""
    from persona_circuits.measure.curves import pair_item_shifts
    from persona_circuits.measure.dials import steering_dial
    from persona_circuits.measure.nulls import complement

    g = torch.Generator().manual_seed(2)
    d = tiny_llama.cfg.d_model
    feats = torch.randn(20, d, generator=g)  # [A texts; B texts] of 10 items, one layer
    ia, ib = label_swap_indices(10, 9)
    ca, cb = complement(ia, ib)
    v, w = feats[ia].mean(0) - feats[ib].mean(0), feats[ca].mean(0) - feats[cb].mean(0)
    s1 = pair_item_shifts(tiny_llama, steering_dial(v, 1).make(3.0), persona.test, batch_size=8)
    s2 = pair_item_shifts(tiny_llama, steering_dial(w, 1).make(3.0), persona.test, batch_size=8)
    assert np.array_equal(np.asarray(s1), -np.asarray(s2)) and np.abs(np.asarray(s1)).max() > 0


def test_label_swapped_draws_centre_on_zero(tiny_llama, persona, stats):
    a, b = persona.pole_names
    nulls = null_mask_pairs(tiny_llama, "contrastive-removal", stats[a], stats[b], draws=12, poles=(a, b), sparsity=0.1)
    assert all(n[a].config.extra["null"] == "label-swapped" for n in nulls)
    shifts = np.array([contrast(tiny_llama, n, persona.test, [a, b]) for n in nulls])
    assert len(set(np.round(shifts, 12))) > 6  # draws differ
    assert abs(shifts.mean()) < 3 * shifts.std(ddof=1) / np.sqrt(len(shifts))


def test_label_swap_keeps_every_item_once_per_pseudo_pole():
    ia, ib = label_swap_indices(50, seed=1)
    n = 50
    assert sorted(torch.cat([ia, ib]).tolist()) == list(range(2 * n))
    assert torch.equal(ia % n, torch.arange(n)) and torch.equal(ib % n, torch.arange(n))
    assert 10 < int((ia >= n).sum()) < 40


def test_label_swapped_signatures_need_paired_texts(tiny_llama, stats, persona):
    from persona_circuits.errors import MaskError

    a, b = persona.pole_names
    short = type(stats[b])({k: v[:5] for k, v in stats[b].per_text.items()}, stats[b].n_tok[:5], stats[b].model_id,
                           stats[b].fingerprint, stats[b].tokens)
    with pytest.raises(MaskError, match="both answers"):
        label_swapped_signatures(stats[a], short, draws=1)


def test_null_test_rule():
    nulls = [-0.1, 0.0, 0.1, 0.05, -0.05]
    t = null_test(1.0, nulls, shift_ci95=(0.5, 1.5))
    assert t.persona_specific and t.null_draws == 5 and t.null_p_value == pytest.approx(1 / 6)
    assert t.null_threshold > max(nulls)
    assert not null_test(0.12, nulls).persona_specific
    assert not null_test(1.0, nulls, shift_ci95=(-0.1, 2.0)).persona_specific  # its own interval includes 0
    assert not null_test(1.0, [0.0]).persona_specific  # one draw has no spread
    assert not null_test(1.0, []).persona_specific


def test_random_controls_match_norm_and_density(tiny_llama, persona, stats):
    v = torch.randn(64)
    r = random_directions(v, draws=5, seed=0)
    torch.testing.assert_close(r.norm(dim=1), v.norm().expand(5))
    a, b = persona.pole_names
    masks = build_masks(tiny_llama, "contrastive-sparse", persona_signatures(persona, stats), sparsity=0.3)
    pairs = random_pairs_like(masks[a], masks[b], draws=2)
    for pair in pairs:
        for p in (a, b):
            for k in masks[p].masks:
                assert torch.equal(pair[p].masks[k].sum(1), masks[p].masks[k].sum(1))


def test_label_swapped_directions_negate_under_the_complement():
    from persona_circuits.measure.nulls import label_swapped_directions

    g = torch.Generator().manual_seed(0)
    fa, fb = torch.randn(9, 3, 5, generator=g), torch.randn(9, 3, 5, generator=g)
    d = label_swapped_directions(fa, fb, draws=2, seed=5)
    flipped = label_swapped_directions(fb, fa, draws=2, seed=5)  # every coin's texts exchanged
    assert d.shape == (2, 3, 5) and torch.allclose(d, -flipped)
    same = label_swapped_directions(fa, fa, draws=3, seed=0)
    assert float(same.abs().max()) == 0.0


def test_zero_centred_test_uses_k_degrees_of_freedom():
    from scipy import stats

    x = [0.1, -0.2, 0.05, -0.05, 0.15, -0.1, 0.0, 0.2, -0.15, 0.02]
    t = null_test(0.5, x, shift_ci95=(0.3, 0.7), center="zero")
    s0 = float(np.sqrt(np.mean(np.square(x))))
    assert t.null_threshold == pytest.approx(stats.t.ppf(0.95, 10) * s0)
    assert t.detectable_shift == t.null_threshold and t.persona_specific
    assert t.p_value == pytest.approx(stats.t.sf(0.5 / s0, 10))
    e = null_test(0.5, x, center="estimated")
    assert e.p_value < 0.05 and e.null_threshold > t.null_threshold  # the estimated centre costs power
    # p < 0.05 exactly when the shift is above the bound
    for shift in (t.null_threshold * 0.999, t.null_threshold * 1.001):
        u = null_test(shift, x, center="zero")
        assert (u.p_value < 0.05) == (shift > u.null_threshold)


def test_holm_on_a_known_example():
    from persona_circuits.measure.nulls import holm

    adj, rej = holm([0.01, 0.04, 0.03, None, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 with m = 4: 0.02, 0.03, 0.06, 0.06 (monotone)
    assert adj[0] == pytest.approx(0.03) and adj[1] == pytest.approx(0.06) and adj[2] == pytest.approx(0.06)
    assert adj[4] == pytest.approx(0.02) and adj[3] is None
    assert rej == [True, False, False, None, True]


def test_symmetry_check_flags_a_shifted_centre():
    from persona_circuits.measure.nulls import symmetry_check

    assert symmetry_check([0.3, -0.5, 1.1, -0.8, 0.2, -0.1], [10] * 6)["centered"]
    assert not symmetry_check([3.0, 2.5, 4.1, 2.2, 3.3, 2.9], [10] * 6)["centered"]


def test_label_swapped_draws_of_identical_poles_centre_on_zero(tiny_llama, persona):
    """A synthetic persona whose two poles are the same texts: every label-swapped draw gives the same masks
    for both pseudo-poles, so every null contrast is exactly 0."""
    same = PersonaSet("same", (Pole("p"), Pole("q")),
                      [ChoiceItem(it.id, it.question, it.answer_a, it.answer_a) for it in persona.calibration], persona.test)
    st = record_persona_per_text(tiny_llama, same, batch_size=5)
    nulls = null_mask_pairs(tiny_llama, "contrastive-wanda", st["p"], st["q"], draws=4, poles=("p", "q"), sparsity=0.2)
    shifts = [contrast(tiny_llama, n, same.test, ["p", "q"]) for n in nulls]
    assert shifts == [0.0] * 4
