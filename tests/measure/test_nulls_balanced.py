"""Balanced label swaps, derived seeds, the primary family and the placebo calibration (issue 23)."""

import numpy as np
import pytest
import torch

from persona_circuits.errors import MaskError
from persona_circuits.measure.nulls import (clopper_pearson, complement, derive_seed, label_swap_indices, label_swapped_directions,
                                    loo_z, mean_t_sf, zero_z)
from persona_circuits.study.primary import calibration, primary_family

from ..results_fixtures import minimal_results


@pytest.mark.parametrize("n", [1, 2, 7, 10, 64, 129])
def test_balanced_swaps_exactly_half_the_items(n):
    for seed in range(20):
        ia, ib = label_swap_indices(n, seed)
        swapped = ia >= n
        assert int(swapped.sum()) == n // 2
        assert torch.equal(torch.sort(torch.cat([ia, ib])).values, torch.arange(2 * n))  # every text once
        assert torch.equal(ib, torch.where(swapped, ia - n, ia + n))  # item i's two texts go to opposite pseudo-poles


def test_balanced_draws_differ_and_are_uniform_over_items():
    n, draws = 12, 3000
    counts = torch.stack([label_swap_indices(n, s)[0] >= n for s in range(draws)]).float().mean(0)
    assert torch.allclose(counts, torch.full((n,), 0.5), atol=0.04)  # every item swapped half the time
    assert len({tuple(label_swap_indices(n, s)[0].tolist()) for s in range(50)}) > 45


def test_coins_are_the_older_design_bit_for_bit():
    g = torch.Generator().manual_seed(7)
    flip = torch.rand(30, generator=g) < 0.5
    ia, ib = label_swap_indices(30, 7, swap="coins")
    i = torch.arange(30)
    assert torch.equal(ia, torch.where(flip, i + 30, i)) and torch.equal(ib, torch.where(flip, i, i + 30))
    with pytest.raises(MaskError):
        label_swap_indices(30, 7, swap="fair")


def _spread(mu: float, swap: str, n: int = 64, draws: int = 400) -> float:
    """RMS over draws of the pseudo-poles' difference of means, for per-item differences ``mu + noise``."""
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(n, 1, 1, generator=g, dtype=torch.float64)
    d = label_swapped_directions(mu + eps, torch.zeros_like(eps), draws=draws, seed=11, swap=swap)
    return float(d.pow(2).mean().sqrt())


def test_balanced_null_spread_does_not_grow_with_the_persona_while_coins_do():
    base_b, base_c = _spread(0.0, "balanced"), _spread(0.0, "coins")
    for mu in (1.0, 5.0, -20.0):
        assert _spread(mu, "balanced") == pytest.approx(base_b, rel=1e-9)  # S = 0: no share of mu at all
    assert _spread(2.0, "coins") > 1.5 * base_c and _spread(5.0, "coins") > 3 * base_c  # about sqrt(1 + mu^2) x
    assert _spread(5.0, "coins") < _spread(20.0, "coins")


def test_a_draw_and_its_complement_give_opposite_directions_bit_for_bit():
    g = torch.Generator().manual_seed(1)
    fa, fb = torch.randn(11, 3, 5, generator=g), torch.randn(11, 3, 5, generator=g)
    both = torch.cat([fa, fb])
    ia, ib = label_swap_indices(11, 3)
    ca, cb = complement(ia, ib)
    assert torch.equal(both[ia].mean(0) - both[ib].mean(0), -(both[ca].mean(0) - both[cb].mean(0)))


def test_derived_seeds_are_stable_distinct_and_typed():
    assert derive_seed(0, "mbti-ei", "matched", "steering", 0.02) == derive_seed(0, "mbti-ei", "matched", "steering", 0.02)
    assert derive_seed(0, "mbti-ei", "matched", "steering", 0.02) == 7981270806112513320  # the same in every process
    ids = [(s, m, t) for s in ("mbti-ei", "mbti-sn", "power") for m in ("steering", "soft-mask") for t in (0.02, 0.1, 0.3)]
    seeds = {derive_seed(0, *i) for i in ids}
    assert len(seeds) == len(ids) and all(0 <= s < 2 ** 63 for s in seeds)
    assert derive_seed(1, *ids[0]) != derive_seed(0, *ids[0])
    assert derive_seed(0, "a", 1) != derive_seed(0, "a1")  # parts are separated


def test_zero_z_loo_and_the_references():
    from scipy import stats

    x = [0.1, -0.3, 0.2, 0.05]
    z, p, k = zero_z(0.5, x)
    assert k == 4 and z == pytest.approx(0.5 / np.sqrt(np.mean(np.square(x)))) and p == pytest.approx(stats.t.sf(z, 4))
    loo = loo_z(x)
    assert loo[1] == pytest.approx(-0.3 / np.sqrt((0.01 + 0.04 + 0.0025) / 3))
    assert mean_t_sf(1.2, [7]) == pytest.approx(stats.t.sf(1.2, 7))
    assert mean_t_sf(0.0, [3, 5, 9]) == pytest.approx(0.5, abs=1e-6)
    sims = np.random.default_rng(0).standard_t(9, size=(200_000, 3)).mean(1)
    assert mean_t_sf(1.0, [9, 9, 9]) == pytest.approx((sims > 1.0).mean(), abs=0.002)
    lo, hi = clopper_pearson(5, 100)
    assert lo == pytest.approx(0.01643, abs=1e-4) and hi == pytest.approx(0.11284, abs=1e-4)


def _synthetic_results(mu: float, rows: int = 60, n: int = 32, d: int = 6, draws: int = 10, seed: int = 0):
    """Rows of a synthetic study: per-item persona differences ``mu · e₁ + noise``, a row's contrast is the
    projection of its pair's difference of means on a held-out reading ``w``, the draws are balanced swaps."""
    g = torch.Generator().manual_seed(seed)
    sets = {}
    for r in range(rows):
        delta = torch.randn(n, 1, d, generator=g, dtype=torch.float64)
        delta[..., 0] += mu
        w = torch.randn(d, generator=g, dtype=torch.float64) + torch.eye(d, dtype=torch.float64)[0]
        real = float(delta[:, 0].mean(0) @ w)
        nulls = label_swapped_directions(delta, torch.zeros_like(delta), draws=draws, seed=derive_seed(seed, r))[:, 0] @ w
        sets[f"s{r}"] = [{"method": "steering", "target_kl": 0.02, "reached": True, "shift": real,
                          "shift_ci95": [real - 0.1, real + 0.1], "null_shifts": [float(x) for x in nulls]}]
    return minimal_results(sets)


def test_placebo_false_positive_rate_is_near_the_nominal_level():
    """600 balanced placebos under no persona: the rate must be near 5 %; a 20 % rate would fail."""
    cal = calibration(_synthetic_results(0.0))["steering"]
    assert cal.placebos == 600 and cal.rows == 60 and cal.target_kl == [0.02]
    assert cal.rate < 0.09 and cal.rate_ci95[1] < 0.2
    assert cal.rate_ci95[0] <= cal.rate <= cal.rate_ci95[1]
    assert cal.primary.placebos == 10 and cal.by_target[0].placebos == 600


def test_primary_family_says_yes_to_a_persona_and_not_without_one():
    yes = primary_family(_synthetic_results(1.0, rows=4))
    assert [(t.method, t.target_kl) for t in yes] == [("steering", 0.02)]
    assert yes[0].persona_specific and yes[0].p_adjusted < 0.05 and yes[0].sets == ["s0", "s1", "s2", "s3"]
    no = [primary_family(_synthetic_results(0.0, rows=4, seed=s))[0].persona_specific for s in range(40)]
    assert sum(no) <= 6  # about 5 % of 40 under no persona
