import pytest
import torch

from persona_circuits.analysis.similarity import split_half_reliability


def _two_poles(shift: float, seed: int = 0, n: int = 40, d: int = 32):
    """Features [n, 2 layers, d] of two poles with a large shared component; layer 1 of pole A is
    shifted by ``shift`` along one direction, layer 0 has identical distributions."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, 2, d, generator=g), torch.randn(n, 2, d, generator=g)
    a[:, :, 0] += 50.0
    b[:, :, 0] += 50.0
    a[:, 1, 1] += shift
    return a, b


def test_split_half_reliability_detects_a_planted_direction():
    a, b = _two_poles(2.0)
    r = split_half_reliability(a, b, n_splits=10, n_permutations=200)
    planted, same = r["layers"][1], r["layers"][0]
    assert planted["reliability"] > 0.5 and planted["p_value"] < 0.01
    assert planted["reliability"] > planted["null_p95"]
    # identical distributions: inside the null
    assert same["p_value"] > 0.05 and same["reliability"] < same["null_p95"]
    assert abs(same["reliability"] - same["null_mean"]) < 3 * same["null_sd"]
    # the paper's cosine of the means is near 1 either way: not evidence
    assert same["cosine_of_means"] > 0.99 and planted["cosine_of_means"] > 0.99
    assert r["n_a"] == r["n_b"] == 40 and "not" in r["note"]


def test_split_half_reliability_is_seeded_and_checks_sizes():
    a, b = _two_poles(1.0)
    r1 = split_half_reliability(a, b, n_splits=3, n_permutations=20, seed=1)
    assert r1 == split_half_reliability(a, b, n_splits=3, n_permutations=20, seed=1)
    with pytest.raises(ValueError):
        split_half_reliability(a[:1], b)
