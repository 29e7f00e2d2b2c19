import numpy as np
import pytest
import torch

from persona_circuits.analysis.ablation import group_layers, layer_groups, top_contrastive_removal
from persona_circuits.analysis.capability import general_choice_items, neutral_texts, perplexity
from persona_circuits.analysis.features import record_calibration
from persona_circuits.analysis.overlap import mask_overlap, random_expectation
from persona_circuits.analysis.probes import layer_probes
from persona_circuits.analysis.similarity import layer_cosine
from persona_circuits.analysis.sparsity import sparsity_profile
from persona_circuits.analysis.stability import bootstrap_stability
from persona_circuits.masks import Mask, MaskConfig, keep_count, random_mask
from persona_circuits.statistics import record_signature


def _mask(d):
    return Mask({k: torch.tensor(v, dtype=torch.bool) for k, v in d.items()}, MaskConfig("x", 0.5, "m", "f"))


def test_overlap_counts_by_hand():
    a = _mask({"blocks.0.attn.q": [[1, 1, 0, 0]], "blocks.0.mlp.in": [[1, 0, 1, 0]]})
    b = _mask({"blocks.0.attn.q": [[1, 0, 1, 0]], "blocks.0.mlp.in": [[1, 0, 1, 0]]})
    ov = mask_overlap(a, b)
    assert ov["overall"]["difference_rate"] == 2 / 8
    assert ov["overall"]["jaccard"] == 3 / 5
    assert ov["by_module"]["attn"]["difference_rate"] == 0.5 and ov["by_module"]["mlp"]["difference_rate"] == 0.0
    assert random_expectation(0.5)["difference_rate"] == 0.5


def test_random_masks_match_the_expectation(tiny_llama):
    ov = mask_overlap(random_mask(tiny_llama, sparsity=0.3, seed=0), random_mask(tiny_llama, sparsity=0.3, seed=1))
    assert abs(ov["overall"]["difference_rate"] - ov["random_expectation"]["difference_rate"]) < 0.02


def test_sparsity_profile(tiny_llama):
    prof = sparsity_profile(random_mask(tiny_llama, sparsity=0.25))
    assert abs(prof["overall"] - 0.25) < 0.01
    assert set(prof["by_module"]) >= {"attn", "mlp", "attn.q", "mlp.out"}
    assert [r["block"] for r in prof["per_block"]] == [0, 1]


def test_calibration_record_matches_signature(tiny_model):
    pairs = [("Hi?", "Hello there, friend."), ("Plans?", "Staying in."), ("Food?", "Soup, always soup.")]
    rec = record_calibration(tiny_model, pairs, batch_size=2)
    sig = record_signature(tiny_model, pairs, batch_size=2)
    s2 = rec.signature()
    assert (s2.n_tokens, s2.n_texts) == (sig.n_tokens, sig.n_texts)
    for layer in sig.sums:
        for k in ("sum", "sumsq", "sumabs", "l2_sum"):
            torch.testing.assert_close(s2.sums[layer][k], sig.sums[layer][k], rtol=1e-4, atol=1e-5)
    sub = rec.signature([0, 2])
    ref = record_signature(tiny_model, [pairs[0], pairs[2]])
    torch.testing.assert_close(sub.l2_mean(layer), ref.l2_mean(layer), rtol=1e-4, atol=1e-5)
    assert rec.resid.shape == (3, tiny_model.cfg.n_layers, tiny_model.cfg.d_model)


def test_probes_separate_separable_data_and_control_is_chance():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    x = rng.normal(size=(80, 2, 8))
    x[:, 1, 0] += 3 * y  # layer 1 carries the label
    yt = np.r_[np.zeros(30, int), np.ones(30, int)]
    xt = rng.normal(size=(60, 2, 8))
    xt[:, 1, 0] += 3 * yt
    res = layer_probes(x, y, xt, yt)
    assert res[1]["test_accuracy"] > 0.9 and res[1]["cv_accuracy"] > 0.9
    assert res[0]["test_accuracy"] < 0.75 and res[1]["shuffled_test_accuracy"] < 0.75


def test_layer_cosine():
    a = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])
    b = torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]]])
    r = layer_cosine(a, b)
    assert abs(r[0]["cosine"]) < 1e-9 and r[0]["cosine_centered"] == pytest.approx(-1.0)


def test_stability_and_removal(tiny_llama):
    pa = [("Q1", "Loud party!"), ("Q2", "Big group."), ("Q3", "Everyone!")]
    pb = [("Q1", "Quiet book."), ("Q2", "Alone."), ("Q3", "Home.")]
    ra, rb = record_calibration(tiny_llama, pa), record_calibration(tiny_llama, pb)
    st = bootstrap_stability(tiny_llama, ra, rb, ["a", "b"], method="contrastive-wanda", sparsity=0.5, n_boot=3)
    assert len(st["pairwise_jaccard"]) == 3 and 0 <= st["mean_jaccard"] <= 1
    m = top_contrastive_removal(tiny_llama, ra.signature(pole="a"), rb.signature(pole="b"), 0.1)
    for mm in m.masks.values():
        d_in = mm.shape[1]
        assert ((~mm).sum(1) == d_in - keep_count(d_in, 0.9)).all()
    assert layer_groups(30, 6)[0] == [0, 1, 2, 3, 4] and sum(map(len, layer_groups(30, 4))) == 30
    assert group_layers(m, kind="mlp") == {n for n in m.masks if ".mlp." in n}


def test_capability_sets_and_perplexity(tiny_llama):
    assert len(neutral_texts()) >= 120 and len(general_choice_items()) >= 150
    p = perplexity(tiny_llama, neutral_texts(3))
    assert p["n_texts"] == 3 and p["perplexity"] > 1 and np.isclose(np.log(p["perplexity"]), p["mean_nll"])
