"""The overlap atlas: a set with itself is maximal, unrelated random personas sit at chance, the references."""

import numpy as np
import pytest
import torch

from persona_circuits.analysis.atlas import (STEERING_PAIR_FAMILY, AtlasError, atlas, atlas_record, pair_overlap,
                                             pooled_contrastive_scores, random_direction_p, top_contrastive_weights)
from persona_circuits.masks import random_like, random_mask, remove_count, topk_rows
from persona_circuits.model.loading import architecture_fingerprint, get_model_id, prunable_layers
from persona_circuits.masks.scoring import contrastive_wanda_scores, contrastive_z
from persona_circuits.masks.statistics import PerTextStats


@pytest.fixture(scope="module")
def ei(tiny_llama):
    from persona_circuits.data import resolve_set
    from persona_circuits.masks.statistics import record_pairs

    ps = resolve_set("mbti-ei").subset(8, 2)
    st = {p: record_pairs(tiny_llama, ps.calibration_pairs(p), batch_size=8, residuals=True) for p in ps.pole_names}
    return {p: s.signature(pole=p, dataset="mbti-ei") for p, s in st.items()}, st


def random_persona(model, seed: int, n: int = 8) -> dict[str, PerTextStats]:
    """Per-text statistics of a persona pair drawn at random (no persona, no forward pass)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for pole in ("A", "B"):
        per_text = {}
        for l in prunable_layers(model):
            x = torch.randn(n, l.shape[1], generator=g)
            sq = x * x + torch.rand(n, l.shape[1], generator=g)
            per_text[l.name] = torch.stack([x, sq, x.abs()], 1)
        resid = torch.randn(n, model.cfg.n_layers, model.cfg.d_model, generator=g)
        out[pole] = PerTextStats(per_text, torch.full((n,), 4), get_model_id(model), architecture_fingerprint(model),
                                 "answer", resid)
    return out


def test_the_atlas_of_a_set_with_itself_is_maximal(tiny_llama, ei):
    sigs, st = ei
    a = atlas(tiny_llama, {"ei": sigs, "same": sigs}, per_text={"ei": st, "same": st}, fraction=0.05, null_draws=4)
    ov = a["overlap"]
    assert all(np.allclose(ov["jaccard"][g], 1.0) for g in ov["groups"])
    assert {"all", "attn", "mlp", "attn.q", "mlp.out", "block 0", "block 1"} <= set(ov["groups"])
    assert np.allclose(a["steering"]["cosine"], 1.0)
    row = a["pairs"][0]
    assert row["shared"] is True and row["p_holm"] < 1e-4 and row["null_mean"] < 0.5
    assert "1 of 1 set pairs overlap more than their label-swapped null" in a["conclusions"][0]
    # one test per pair for the directions: max over layers of |cos| against the same of the label-swapped draws
    assert row["steering_max_cos"] == pytest.approx(1.0) and row["steering_shared"] is True and row["steering_p_holm"] < 0.05
    assert a["null_swap"] == "balanced" and a["null_seeds"]["ei"] != a["null_seeds"]["same"]  # each set its own draws
    assert "1 of 1 set pairs have a maximum |cos| over layers beyond" in a["conclusions"][1]


def test_unrelated_random_personas_are_at_chance(tiny_llama):
    stats = {f"r{s}": random_persona(tiny_llama, s) for s in (1, 2, 3)}
    sigs = {k: {p: s.signature(pole=p) for p, s in v.items()} for k, v in stats.items()}
    a = atlas(tiny_llama, sigs, per_text=stats, fraction=0.05, null_draws=10)
    for r in a["pairs"]:
        assert not r["shared"] and r["p_value"] > 0.05
        assert abs(r["jaccard"] - r["null_mean"]) < 3 * r["null_sd"]
        # chance for real masks is the label-swapped null, well above the random-density expectation: every
        # score carries |W|, so any two sets' top weights overlap more than two random masks do
        assert r["null_mean"] > r["expected_jaccard"]
        assert r["steering_shared_layers"] == [] and r["steering_shared"] is False and r["steering_p"] > 0.05
    # the random-density expectation in closed form: k kept of d per row, E|A & B| = k^2 / d
    n = e = 0.0
    for l in prunable_layers(tiny_llama):
        d_out, d_in = l.shape
        k = remove_count(d_in, 0.05)
        n, e = n + 2 * d_out * k, e + d_out * k * k / d_in
    assert a["overlap"]["expected_jaccard"]["all"][0][1] == pytest.approx(e / (n - e))
    assert a["multiple_comparisons"][0] == {"family": "atlas overlap", "method": "holm", "alpha": 0.05, "n_tests": 3}
    assert a["multiple_comparisons"][-1]["family"] == STEERING_PAIR_FAMILY and a["multiple_comparisons"][-1]["n_tests"] == 3


def test_two_random_masks_overlap_at_their_expectation(tiny_llama):
    a = random_mask(tiny_llama, sparsity=0.7, seed=1)
    b = random_like(random_mask(tiny_llama, sparsity=0.4, seed=2), seed=3)
    ov = pair_overlap(a, b)
    for g in ("all", "attn", "mlp"):
        s = ov["groups"][g]
        assert s["jaccard"] == pytest.approx(s["expected_jaccard"], rel=0.03)
    x = {"l": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)}
    y = {"l": torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)}
    s = pair_overlap(x, y)["layers"]["l"]
    assert (s["intersection"], s["size_a"], s["size_b"]) == (2, 3, 6) and s["jaccard"] == pytest.approx(2 / 7)
    assert s["expected_intersection"] == pytest.approx(2 * 2 / 4 + 1 * 4 / 4)


def test_top_contrastive_weights_pool_both_poles(tiny_llama, ei):
    sigs, _ = ei
    a, b = sigs.values()
    top = top_contrastive_weights(tiny_llama, (a, b), 0.1)
    assert all(torch.equal(top[k], m) for k, m in top_contrastive_weights(tiny_llama, (b, a), 0.1).items())
    for l in prunable_layers(tiny_llama):
        w = l.weight.detach()
        for kind in ("relu", "softplus"):
            sa, sb = contrastive_wanda_scores(w, a, b, l.name, kind)
            assert torch.equal(pooled_contrastive_scores(w, a, b, l.name, phi=kind), torch.maximum(sa, sb))
        want = topk_rows(w.abs().float() * contrastive_z(a, b, l.name).abs().float()[None, :],
                         remove_count(l.shape[1], 0.1), tiebreak=w)
        assert torch.equal(top[l.name], want)
        assert set(top[l.name].sum(1).tolist()) == {remove_count(l.shape[1], 0.1)}


def test_random_direction_p_and_the_results_record(tiny_llama, ei):
    c = np.array([0.0, 0.3, -0.8])
    assert np.allclose(random_direction_p(c, 3), 1 - np.abs(c))  # d = 3: the cosine is uniform on [-1, 1]
    from persona_circuits.results import Atlas

    sigs, st = ei
    a = atlas(tiny_llama, {"x": sigs, "y": sigs, "z": sigs}, fraction=0.1, null_draws=0)  # no per-text: no verdict
    assert a["overlap"]["p_value"][0][1] is None and "no label-swapped null" in a["conclusions"][0]
    assert a["steering"] is None
    rec = atlas_record(a)
    assert isinstance(rec, Atlas) and Atlas.from_dict(rec.to_dict()) == rec
    assert rec.overlaps[0].by == "all" and rec.overlaps[0].null_p95 is None
    with pytest.raises(AtlasError, match="at least two"):
        atlas(tiny_llama, {"x": sigs})
    with pytest.raises(AtlasError, match="per-text statistics missing for y"):
        atlas(tiny_llama, {"x": sigs, "y": sigs}, per_text={"x": st})


def test_atlas_figures(tiny_llama, ei):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from persona_circuits.reporting.figures.atlas import (fig_atlas_dict_layers, fig_atlas_dict_overlap,
                                                          fig_atlas_dict_steering)

    sigs, st = ei
    other = random_persona(tiny_llama, 5)
    a = atlas(tiny_llama, {"ei": sigs, "r": {p: s.signature(pole=p) for p, s in other.items()}, "ei2": sigs},
              per_text={"ei": st, "r": other, "ei2": st}, fraction=0.05, null_draws=3)
    for fig in (fig_atlas_dict_overlap(a), fig_atlas_dict_overlap(a, "mlp"), fig_atlas_dict_layers(a),
                fig_atlas_dict_steering(a)):
        assert isinstance(fig, Figure)
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text()]
        assert sizes and min(sizes) >= 8
    assert plt.get_fignums() == []
