import numpy as np
import pytest
import torch

from persona_circuits.analysis.ablation import (group_layers, layer_groups, random_removal, removal_comparison,
                                                removal_count, removed_per_row, restore_ablation,
                                                top_contrastive_removal, top_wanda_removal)
from persona_circuits.analysis.capability import general_choice_items, neutral_texts, perplexity
from persona_circuits.analysis.features import answer_embeddings, text_features
from persona_circuits.analysis.overlap import mask_overlap, random_expectation
from persona_circuits.analysis.probes import decode_intervention, layer_probes, probes_with_baselines
from persona_circuits.analysis.similarity import split_half_reliability
from persona_circuits.data import ChoiceItem
from persona_circuits.interventions import ResidualSteering, apply_mask, steering
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


def record_calibration(model, pairs, **kw):
    from persona_circuits.statistics import record_pairs

    return record_pairs(model, pairs, residuals=True, **kw)


def test_calibration_record_matches_signature(tiny_model):
    """One pass keeps per-text statistics and residuals (record_pairs(..., residuals=True))."""
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
    plain = record_signature(tiny_model, pairs, batch_size=2)  # residuals do not change the statistics
    torch.testing.assert_close(plain.sums[layer]["sum"], sig.sums[layer]["sum"])
    pred = record_calibration(tiny_model, pairs, batch_size=2, tokens="predict").signature()
    assert pred.n_tokens == sig.n_tokens and pred.tokens == "predict"  # the predicting positions, one per answer token
    assert not torch.equal(pred.sums[layer]["sum"], sig.sums[layer]["sum"])


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


def _texts(y, rng, lexical: bool):
    words = np.array(["apple", "banana", "cherry", "river", "stone", "cloud"])
    out = [" ".join(rng.choice(words, 6)) for _ in y]
    return [t + (" loud party" if (lexical and v == 0) else " quiet book" if lexical else "") for t, v in zip(out, y)]


def test_probes_against_baselines():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    yt = np.r_[np.zeros(30, int), np.ones(30, int)]
    x, xt = rng.normal(size=(80, 2, 8)), rng.normal(size=(60, 2, 8))
    x[:, 1, 0] += 3 * y
    xt[:, 1, 0] += 3 * yt
    emb, embt = rng.normal(size=(80, 4)), rng.normal(size=(60, 4))
    groups = np.r_[np.arange(30), np.arange(30)]  # held-out item i holds text i and text 30 + i
    # words carry no label: layer 1 beats both baselines, layer 0 does not
    r = probes_with_baselines(x, y, xt, yt, train_texts=_texts(y, rng, False), test_texts=_texts(yt, rng, False),
                              train_embed=emb, test_embed=embt, test_groups=groups)
    assert [row["informative"] for row in r["layers"]] == [False, True]
    assert r["bag_of_words"]["test_accuracy"] < 0.75 and r["n_items"] == 30 and r["n_comparisons"] == 2
    lo, hi = r["layers"][1]["test_accuracy_ci95"]
    assert lo <= r["layers"][1]["test_accuracy"] <= hi
    # words carry the label: the same layer is accurate but not informative
    r = probes_with_baselines(x, y, xt, yt, train_texts=_texts(y, rng, True), test_texts=_texts(yt, rng, True),
                              train_embed=emb, test_embed=embt, test_groups=groups)
    assert r["bag_of_words"]["test_accuracy"] == 1.0 and r["layers"][1]["test_accuracy"] > 0.85
    assert not any(row["informative"] for row in r["layers"]) and r["better_baseline"] == "bag_of_words"


def test_answer_embeddings_by_hand(tiny_llama):
    from persona_circuits.data import encode_pair
    from persona_circuits.models import get_tokenizer

    pairs = [("Hi?", "Hello there, friend."), ("Plans?", "Staying in.")]
    e = answer_embeddings(tiny_llama, pairs)
    enc = encode_pair(get_tokenizer(tiny_llama), *pairs[1])
    ref = tiny_llama.W_E[torch.tensor(enc.ids[enc.answer_start:])].mean(0)
    torch.testing.assert_close(e[1], ref.detach().float())
    assert e.shape == (2, tiny_llama.cfg.d_model)


def test_text_features_exclude_prefix_and_padding(tiny_llama):
    texts = neutral_texts(3)
    f = text_features(tiny_llama, texts, batch_size=3)
    one = text_features(tiny_llama, texts[1:2], batch_size=1)
    torch.testing.assert_close(f[1], one[0], rtol=1e-4, atol=1e-4)  # padding changes nothing
    assert f.shape == (3, tiny_llama.cfg.n_layers, tiny_llama.cfg.d_model)
    assert not torch.allclose(text_features(tiny_llama, texts, prefix="You love parties."), f)


def test_neutral_text_decoding(tiny_llama):
    texts = neutral_texts(16)
    same = decode_intervention(tiny_llama, None, None, texts, n_boot=200)
    assert all(r["accuracy"] == 0.5 and not r["decodable"] for r in same["layers"])
    m = random_mask(tiny_llama, sparsity=0.3, seed=0)
    same_mask = decode_intervention(tiny_llama, lambda: apply_mask(tiny_llama, m), lambda: apply_mask(tiny_llama, m),
                                    texts, n_boot=200)
    assert all(r["accuracy"] == 0.5 for r in same_mask["layers"])
    v = torch.randn(tiny_llama.cfg.d_model, generator=torch.Generator().manual_seed(0))
    steer = decode_intervention(tiny_llama, None, lambda: steering(tiny_llama, ResidualSteering(v, 0, 10.0)), texts,
                                n_boot=200)
    assert all(r["accuracy"] > 0.9 and r["decodable"] for r in steer["layers"])
    assert all(0.3 <= r["shuffled_accuracy"] <= 0.7 for r in steer["layers"])  # the control does not leak
    assert steer["n_texts"] == 16 and steer["folds"] == 5
    heavy = random_mask(tiny_llama, sparsity=0.9, seed=1)
    masked = decode_intervention(tiny_llama, None, lambda: apply_mask(tiny_llama, heavy), texts, n_boot=200)
    assert masked["layers"][-1]["accuracy"] > 0.8
    prompts = decode_intervention(tiny_llama, "You love parties.", "You love quiet evenings.", texts, n_boot=200)
    assert len(prompts["layers"]) == tiny_llama.cfg.n_layers


def test_stability_and_removal(tiny_llama):
    pa = [("Q1", "Loud party!"), ("Q2", "Big group."), ("Q3", "Everyone!")]
    pb = [("Q1", "Quiet book."), ("Q2", "Alone."), ("Q3", "Home.")]
    ra, rb = record_calibration(tiny_llama, pa), record_calibration(tiny_llama, pb)
    st = bootstrap_stability(tiny_llama, ra, rb, ["a", "b"], method="contrastive-wanda", sparsity=0.5, n_boot=3)
    assert len(st["pairwise_jaccard"]) == 3 and 0 <= st["mean_jaccard"] <= 1
    m = top_contrastive_removal(tiny_llama, ra.signature(pole="a"), rb.signature(pole="b"), 0.1)
    for mm in m.masks.values():
        d_in = mm.shape[1]
        assert ((~mm).sum(1) == d_in - keep_count(d_in, 0.1)).all()  # 10 % removed, not 90 %
    assert layer_groups(30, 6)[0] == [0, 1, 2, 3, 4] and sum(map(len, layer_groups(30, 4))) == 30
    assert group_layers(m, kind="mlp") == {n for n in m.masks if ".mlp." in n}


def test_capability_sets_and_perplexity(tiny_llama):
    assert len(neutral_texts()) >= 120 and len(general_choice_items()) >= 150
    p = perplexity(tiny_llama, neutral_texts(3))
    assert p["n_texts"] == 3 and p["perplexity"] > 1 and np.isclose(np.log(p["perplexity"]), p["mean_nll"])


def _recs(model):
    pa = [("Q1", "Loud party!"), ("Q2", "Big group of friends."), ("Q3", "Everyone come along!")]
    pb = [("Q1", "Quiet book."), ("Q2", "Alone at home."), ("Q3", "Home, with tea.")]
    return record_calibration(model, pa).signature(pole="a"), record_calibration(model, pb).signature(pole="b")


@pytest.mark.parametrize("q", [0.001, 0.05, 0.3])
def test_removals_match_counts_per_row(tiny_llama, q):
    sa, sb = _recs(tiny_llama)
    kinds = [top_contrastive_removal(tiny_llama, sa, sb, q), top_contrastive_removal(tiny_llama, sb, sa, q),
             top_wanda_removal(tiny_llama, sa, sb, q), random_removal(tiny_llama, q, seed=0),
             random_removal(tiny_llama, q, seed=1)]
    counts = [removed_per_row(m) for m in kinds]
    for c in counts[1:]:
        assert set(c) == set(counts[0])
        for name in c:
            assert torch.equal(c[name], counts[0][name])
    for name, c in counts[0].items():
        assert (c == removal_count(kinds[0].masks[name].shape[1], q)).all()
    assert not torch.equal(kinds[0].masks[name], kinds[2].masks[name]) or q < 0.01


ITEMS = [ChoiceItem(f"i{i}", q, a, b) for i, (q, a, b) in enumerate([
    ("Friday night?", "A big party with everyone.", "A book at home."),
    ("Lunch?", "With the whole team.", "Alone, in the park."),
    ("Holiday?", "A group tour.", "A quiet cabin."),
    ("Weekend?", "Festival with friends.", "Gardening by myself.")])]


def test_removal_comparison_and_restore(tiny_llama):
    sa, sb = _recs(tiny_llama)
    r = removal_comparison(tiny_llama, ITEMS, sa, sb, [0.05], n_boot=200)
    row = r["rows"][0]
    assert r["matched_count_per_row"] and row["removed_total"] == sum(row["removed_per_layer"].values())
    assert set(row["shift_vs_dense"]) == {"remove-b-top", "remove-a-top", "wanda-pooled", "random-0", "random-1"}
    assert row["contrastive_contrast"]["n"] == len(ITEMS)
    ma, mb = random_mask(tiny_llama, sparsity=0.5, seed=0), random_mask(tiny_llama, sparsity=0.5, seed=1)
    groups = [("block 0", group_layers(ma, blocks=[0])), ("all MLP", group_layers(ma, kind="mlp"))]
    skipped = restore_ablation(tiny_llama, ITEMS, ma, mb, groups, gate=False, n_boot=200)
    assert skipped["rows"] == [] and "did not pass" in skipped["skipped"]
    done = restore_ablation(tiny_llama, ITEMS, ma, mb, groups, gate=True, n_boot=200)
    assert [x["restored"] for x in done["rows"]] == ["block 0", "all MLP"] and done["skipped"] is None
    full = done["full_contrast"]["shift"]
    assert done["rows"][0]["fraction_of_full"] == pytest.approx(done["rows"][0]["contrast"]["shift"] / full)
    # everything restored: the contrast vanishes
    everything = restore_ablation(tiny_llama, ITEMS, ma, mb, [("all", set(ma.masks))], gate=True, n_boot=200)
    assert everything["rows"][0]["contrast"]["shift"] == 0.0
    thr = restore_ablation(tiny_llama, ITEMS, ma, mb, groups, gate=abs(full) + 1.0, n_boot=200)
    assert not thr["gate"]["passed"] and thr["gate"]["threshold"] == abs(full) + 1.0


def test_restore_gate_given_as_a_test_result(tiny_llama):
    from persona_circuits.analysis.ablation import _gate

    full = {"shift": 0.5, "shift_ci95": [0.1, 0.9]}
    g = _gate(full, {"test": "null_test", "passed": False, "null_threshold": 0.7})
    assert g["passed"] is False and g["null_threshold"] == 0.7  # the caller's null test wins over CI > 0
    assert _gate(full, None)["passed"] is True
    with pytest.raises(ValueError):
        _gate(full, {"passed": True})
