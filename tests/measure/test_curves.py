import pytest
import torch

from persona_circuits.measure.curves import dial_curve
from persona_circuits.measure.damage import neutral_reference
from persona_circuits.measure.dials import mask_dial, steering_dial
from persona_circuits.measure.nulls import label_swapped_signatures, random_directions
from persona_circuits.masks.statistics import persona_signatures, record_persona_per_text


@pytest.fixture(scope="module")
def setup(tiny_llama):
    from persona_circuits.data import load_persona_set

    ps = load_persona_set("mbti-ei").subset(calib_size=8, test_size=4)
    st = record_persona_per_text(tiny_llama, ps, batch_size=8)
    ref = neutral_reference(tiny_llama, n_texts=3, max_tokens=32)
    return ps, st, ref


def test_mask_curve_with_label_swapped_null_band(tiny_llama, setup):
    ps, st, ref = setup
    a, b = ps.pole_names
    sigs = persona_signatures(ps, st)
    nulls = label_swapped_signatures(st[a], st[b], draws=2, poles=(a, b))
    dial = mask_dial(tiny_llama, "contrastive-removal", sigs)
    null_dials = [mask_dial(tiny_llama, "contrastive-removal", n) for n in nulls]
    pts = dial_curve(tiny_llama, dial, [0.01, 0.1], ps.test, ref, null_dials=null_dials)
    assert [p.strength for p in pts] == [0.01, 0.1]
    for p in pts:
        assert p.n == 4 and len(p.null_shifts) == 2 and len(p.null_damage_kl) == 2 and p.damage_kl > 0
        assert p.shift_ci95[0] <= p.shift <= p.shift_ci95[1]
        assert set(p.to_dict()) >= {"shift", "damage_kl", "null_shift_mean", "persona_specific"}
    assert pts[0].damage_kl < pts[1].damage_kl


def test_steering_curve_with_random_directions(tiny_llama, setup):
    ps, st, ref = setup
    v = torch.randn(tiny_llama.cfg.d_model, generator=torch.Generator().manual_seed(0))
    nulls = [steering_dial(r, 0) for r in random_directions(v, draws=2)]
    pts = dial_curve(tiny_llama, steering_dial(v, 0), [0.5, 4.0], ps.test, ref, null_dials=nulls)
    assert pts[0].damage_kl < pts[1].damage_kl and all(len(p.null_shifts) == 2 for p in pts)


def test_paired_difference_cancels_shared_item_variance():
    import numpy as np

    from persona_circuits.measure.curves import paired_difference

    rng = np.random.default_rng(0)
    item = rng.normal(0, 5, 200)  # large between-item spread both methods share
    a, b = item + 0.1 + rng.normal(0, 0.01, 200), item
    r = paired_difference(a, b)
    assert r.diff == pytest.approx(0.1, abs=0.01) and r.ci95[0] > 0.09 and r.verdict == "higher"
    assert paired_difference(b, a).verdict == "lower"
    assert paired_difference(a, a).verdict == "not distinguishable"
    with pytest.raises(ValueError):
        paired_difference(a, b[:10])


def test_item_shifts_average_to_the_pole_contrast(tiny_llama, setup):
    from persona_circuits.measure.curves import item_shifts
    from persona_circuits.measure.evaluation import pole_contrast, score_choices

    ps, _, _ = setup
    sa = score_choices(tiny_llama, ps.test, system="You are outgoing.")
    sb = score_choices(tiny_llama, ps.test, system="You are reserved.")
    d = item_shifts(sa, sb)
    assert d.shape == (len(ps.test),)
    assert float(d.mean()) == pytest.approx(pole_contrast(sa, sb, condition="x").shift, rel=1e-6)


