import math

import numpy as np
import pytest
import torch

from persona_circuits.errors import MaskError, ModelMismatchError
from persona_circuits.masks.build import (MASK_WEIGHTS_FILENAME, Mask, contrastive_sparse_masks,
                                          contrastive_wanda_masks, keep_count, load_masks, random_mask, save_masks,
                                          topk_rows, wanda_mask)
from persona_circuits.masks.registry import build_masks
from persona_circuits.model.loading import prunable_layers
from persona_circuits.masks.statistics import record_signature

A = [("How do you spend a free evening?", "Out with a big group of friends, the louder the better."),
     ("A party invitation arrives.", "I say yes at once and bring two friends along."),
     ("Lunch break?", "Chatting with everyone in the canteen.")]
B = [("How do you spend a free evening?", "At home with a book and a cup of tea, quietly."),
     ("A party invitation arrives.", "I thank them and probably stay in to recharge."),
     ("Lunch break?", "A short walk on my own.")]


@pytest.fixture(scope="module")
def sigs(tiny_llama):
    return (record_signature(tiny_llama, A, pole="a"), record_signature(tiny_llama, B, pole="b"))


def loop_topk(scores, tiebreak, k, eligible=None):
    """Plain reference: for every row sort (score desc, |tiebreak| desc, index asc) and keep k."""
    s, t = scores.tolist(), tiebreak.abs().tolist()
    out = torch.zeros(scores.shape, dtype=torch.bool)
    for i, row in enumerate(s):
        cols = [j for j in range(len(row)) if eligible is None or bool(eligible[i, j])]
        cols.sort(key=lambda j: (-row[j], -t[i][j], j))
        for j in cols[:k]:
            out[i, j] = True
    return out


def test_topk_rows_matches_loop_with_ties():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (7, 13), generator=g).float()  # many exact ties
    tb = torch.randint(0, 3, (7, 13), generator=g).float()      # ties in the tiebreak too
    for k in (0, 1, 5, 12, 13):
        assert torch.equal(topk_rows(scores, k, tiebreak=tb), loop_topk(scores, tb, k))
    elig = torch.rand(7, 13, generator=g) > 0.4
    for k in (0, 3, 6, 13):
        assert torch.equal(topk_rows(scores, k, tiebreak=tb, eligible=elig), loop_topk(scores, tb, k, elig))


def test_keep_count_is_floor():
    assert keep_count(576, 0.5) == 288 and keep_count(10, 0.3) == 7 and keep_count(1536, 0.7) == 460
    assert keep_count(64, 0.0) == 64


def test_wanda_mask_matches_loop_formula(tiny_llama, sigs):
    a = sigs[0]
    for statistic in ("l2", "mean_abs", "rms"):
        m = wanda_mask(tiny_llama, a, sparsity=0.4, statistic=statistic)
        for l in prunable_layers(tiny_llama)[:4]:
            w = l.weight.detach()
            act = a.statistic(l.name, statistic)
            score = torch.tensor([[abs(float(w[i, j])) * float(act[j]) for j in range(w.shape[1])] for i in range(w.shape[0])])
            assert torch.equal(m.masks[l.name], loop_topk(score, w, math.floor(0.6 * w.shape[1])))


def test_contrastive_wanda_matches_loop_formula(tiny_llama, sigs):
    a, b = sigs
    ma, mb = contrastive_wanda_masks(tiny_llama, a, b, sparsity=0.5, phi="relu", text_stat="l2")
    for l in prunable_layers(tiny_llama)[:3]:
        w = l.weight.detach()
        mu_a, mu_b = a.l2_mean(l.name), b.l2_mean(l.name)
        z = (mu_a - mu_b) / (a.l2_var(l.name) + b.l2_var(l.name) + 1e-6).sqrt()
        k = w.shape[1] // 2
        sa = w.abs() * torch.clamp(z, min=0).float()[None]
        sb = w.abs() * torch.clamp(-z, min=0).float()[None]
        assert torch.equal(ma.masks[l.name], loop_topk(sa, w, k))
        assert torch.equal(mb.masks[l.name], loop_topk(sb, w, k))
    sa2, _ = contrastive_wanda_masks(tiny_llama, a, b, sparsity=0.5, phi="softplus", tau=2.0)
    assert sa2.config.phi == "softplus" and sa2.config.tau == 2.0


def test_contrastive_sparse_paper_is_disjoint_and_follows_formula(tiny_llama, sigs):
    a, b = sigs
    for rho in (0.3, 0.6):
        ma, mb = contrastive_sparse_masks(tiny_llama, a, b, sparsity=rho, variant="paper")
        for l in prunable_layers(tiny_llama):
            assert not (ma.masks[l.name] & mb.masks[l.name]).any()
        l = prunable_layers(tiny_llama)[0]
        w = l.weight.detach()
        sa = w.abs() * a.l2_mean(l.name).float()[None]
        sb = w.abs() * b.l2_mean(l.name).float()[None]
        na, nb = sa / sa.sum(1, keepdim=True), sb / sb.sum(1, keepdim=True)
        k = keep_count(w.shape[1], rho)
        assert torch.equal(ma.masks[l.name], loop_topk((na - nb).abs(), w, k, na > nb))
        assert torch.equal(mb.masks[l.name], loop_topk((na - nb).abs(), w, k, nb > na))


def released_loop(sig_a, sig_b, w, sparsity):
    """The released code's contrastive-sparse (contra.py), as a loop: token-pooled mean/variance of each
    channel, eps 1e-6, per row torch.topk for the seek mask, then torch.topk with the seek entries at -inf."""
    d_in = w.shape[1]
    keep_k = max(1, int(d_in * (1.0 - sparsity)))
    score = []
    for j in range(d_in):
        ms = float(sig_a.sums["L"]["sum"][j]) / sig_a.n_tokens
        mr = float(sig_b.sums["L"]["sum"][j]) / sig_b.n_tokens
        vs = max(float(sig_a.sums["L"]["sumsq"][j]) / sig_a.n_tokens - ms * ms, 0.0)
        vr = max(float(sig_b.sums["L"]["sumsq"][j]) / sig_b.n_tokens - mr * mr, 0.0)
        score.append(abs(ms - mr) / math.sqrt(vs + vr + 1e-6))
    S = w.abs().double() * torch.tensor(score, dtype=torch.float64)[None]
    M = torch.zeros(S.shape, dtype=torch.bool)
    M_r = torch.zeros(S.shape, dtype=torch.bool)
    for i in range(S.shape[0]):
        M[i, torch.topk(S[i], k=keep_k).indices] = True
        s_r = S[i].clone()
        s_r[M[i]] = -float("inf")
        M_r[i, torch.topk(s_r, k=keep_k).indices] = True
    return M, M_r


@pytest.mark.parametrize("rho", [0.3, 0.7])
def test_contrastive_sparse_released_matches_a_loop_of_the_released_algorithm(tiny_llama, sigs, rho):
    a, b = sigs
    ma, mb = contrastive_sparse_masks(tiny_llama, a, b, sparsity=rho, variant="released")
    for l in prunable_layers(tiny_llama)[:4]:
        w = l.weight.detach()
        la = type(a)({"L": a.sums[l.name]}, a.n_tokens, a.n_texts, a.model_id, a.fingerprint, "")
        lb = type(b)({"L": b.sums[l.name]}, b.n_tokens, b.n_texts, b.model_id, b.fingerprint, "")
        ref_a, ref_b = released_loop(la, lb, w, rho)
        k = keep_count(w.shape[1], rho)
        assert torch.equal(ma.masks[l.name], ref_a)
        got_b = mb.masks[l.name]
        assert (got_b.sum(1) == k).all() and (ref_b.sum(1) == k).all()
        if 2 * k <= w.shape[1]:  # no fill from the seek mask's (-inf, arbitrarily ordered) entries
            assert torch.equal(got_b, ref_b)
            assert not (ma.masks[l.name] & got_b).any()
        else:  # B holds every entry outside A, plus 2k - d_in of A's (the released order among them is arbitrary)
            assert torch.equal(got_b & ~ma.masks[l.name], ref_b & ~ref_a)
            assert ((got_b & ma.masks[l.name]).sum(1) == 2 * k - w.shape[1]).all()


@pytest.mark.parametrize("method", ["wanda", "contrastive-wanda", "contrastive-sparse-released", "random"])
def test_exact_per_row_sparsity(tiny_model, method):
    s = {"a": record_signature(tiny_model, A, pole="a"), "b": record_signature(tiny_model, B, pole="b")}
    for rho in (0.0, 0.25, 0.5, 0.9):
        masks = build_masks(tiny_model, method, s, sparsity=rho)
        for m in masks.values():
            for name, mm in m.masks.items():
                k = keep_count(mm.shape[1], rho)
                assert (mm.sum(1) == k).all(), (name, rho)


def test_masks_are_deterministic(tiny_llama, sigs):
    s = {"a": sigs[0], "b": sigs[1]}
    for method in ("wanda", "contrastive-wanda", "contrastive-sparse", "random"):
        m1, m2 = build_masks(tiny_llama, method, s, sparsity=0.5), build_masks(tiny_llama, method, s, sparsity=0.5)
        for p in m1:
            for k in m1[p].masks:
                assert torch.equal(m1[p].masks[k], m2[p].masks[k])


def test_modules_scope_and_no_embeddings(tiny_llama, sigs):
    m = wanda_mask(tiny_llama, sigs[0], sparsity=0.5, modules="mlp")
    assert m.masks and all(".mlp." in k for k in m.masks)
    m = wanda_mask(tiny_llama, sigs[0], sparsity=0.5)
    assert all(k.startswith("blocks.") for k in m.masks)
    assert len(m.masks) == 7 * 2


@pytest.mark.parametrize("rho", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_sparsity(tiny_llama, sigs, rho):
    with pytest.raises(MaskError):
        wanda_mask(tiny_llama, sigs[0], sparsity=rho)


def test_save_load_roundtrip_and_size(tiny_llama, sigs, tmp_path):
    m = wanda_mask(tiny_llama, sigs[0], sparsity=0.5)
    m.save(tmp_path / "m")
    back = Mask.load(tmp_path / "m")
    assert back.config == m.config
    for k in m.masks:
        assert torch.equal(back.masks[k], m.masks[k])
    bits = (tmp_path / "m" / MASK_WEIGHTS_FILENAME).stat().st_size * 8 / m.n_weights
    assert bits < 1.5  # bit-packed (header included; ~1.0 on a real model)
    save_masks(tmp_path / "pair", {"a": m, "b": random_mask(tiny_llama, sparsity=0.5)})
    pair = load_masks(tmp_path / "pair")
    assert set(pair) == {"a", "b"} and pair["b"].config.method == "random"


def test_corrupt_mask_file(tiny_llama, sigs, tmp_path):
    m = wanda_mask(tiny_llama, sigs[0], sparsity=0.5)
    m.save(tmp_path / "m")
    f = tmp_path / "m" / MASK_WEIGHTS_FILENAME
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(MaskError, match="corrupt"):
        Mask.load(tmp_path / "m")
    (tmp_path / "m" / "mask_config.json").write_text("{not json")
    with pytest.raises(MaskError):
        Mask.load(tmp_path / "m")


def test_mask_for_another_model_is_refused(tiny_llama, tiny_gpt2, sigs):
    m = wanda_mask(tiny_llama, sigs[0], sparsity=0.5)
    with pytest.raises(ModelMismatchError):
        m.check_model(tiny_gpt2)
    with pytest.raises(ModelMismatchError):
        wanda_mask(tiny_gpt2, sigs[0], sparsity=0.5)


def test_save_into_missing_parent_leaves_nothing(tiny_llama, tmp_path):
    from persona_circuits.errors import OutputError

    m = random_mask(tiny_llama, sparsity=0.5)
    with pytest.raises(OutputError):
        m.save(tmp_path / "missing" / "m")
    assert not (tmp_path / "missing").exists()


def test_random_mask_seeded(tiny_llama):
    a, b, c = (random_mask(tiny_llama, sparsity=0.5, seed=s) for s in (1, 1, 2))
    k = next(iter(a.masks))
    assert torch.equal(a.masks[k], b.masks[k]) and not torch.equal(a.masks[k], c.masks[k])
    assert np.isclose(a.density(), 0.5)


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.3])
def test_removal_masks_remove_exactly_the_requested_count_per_row(tiny_model, fraction):
    from persona_circuits.masks.build import contrastive_removal_masks, remove_count
    from persona_circuits import scoring

    a, b = record_signature(tiny_model, A, pole="a"), record_signature(tiny_model, B, pole="b")
    ma, mb = contrastive_removal_masks(tiny_model, a, b, sparsity=fraction)
    assert ma.config.method == "contrastive-removal" and ma.config.pole == "a" and mb.config.pole == "b"
    for l in prunable_layers(tiny_model):
        n = remove_count(l.shape[1], fraction)
        assert n >= 1
        assert ((~ma.masks[l.name]).sum(1) == n).all() and ((~mb.masks[l.name]).sum(1) == n).all()
    # pole A's mask removes the top of pole B's contrastive score (and vice versa)
    l = prunable_layers(tiny_model)[2]
    w = l.weight.detach()
    sa, sb = scoring.contrastive_wanda_scores(w, a, b, l.name)
    n = remove_count(w.shape[1], fraction)
    assert torch.equal(~ma.masks[l.name], loop_topk(sb, w, n))
    assert torch.equal(~mb.masks[l.name], loop_topk(sa, w, n))


def test_build_masks_knows_removal_and_text_stat(tiny_llama, sigs):
    s = {"a": sigs[0], "b": sigs[1]}
    l2 = build_masks(tiny_llama, "contrastive-removal", s, sparsity=0.1, text_stat="l2")
    rms = build_masks(tiny_llama, "contrastive-removal", s, sparsity=0.1)
    assert rms["a"].config.text_stat == "rms" and l2["a"].config.text_stat == "l2"  # rms is the default
    assert any(not torch.equal(l2["a"].masks[k], rms["a"].masks[k]) for k in l2["a"].masks)
    with pytest.raises(MaskError, match="per-text statistic"):
        build_masks(tiny_llama, "contrastive-wanda", s, sparsity=0.1, text_stat="median")


def test_random_like_matches_every_rows_count_and_is_seeded(tiny_llama, sigs):
    from persona_circuits.masks.build import random_like

    ma, _ = contrastive_sparse_masks(tiny_llama, *sigs, sparsity=0.3, variant="paper")  # sparser than nominal
    r1, r2, r3 = random_like(ma, seed=1), random_like(ma, seed=1), random_like(ma, seed=2)
    for k, m in ma.masks.items():
        assert torch.equal(r1.masks[k].sum(1), m.sum(1))
        assert torch.equal(r1.masks[k], r2.masks[k])
    assert any(not torch.equal(r1.masks[k], r3.masks[k]) for k in ma.masks)
    assert abs(r1.density() - ma.density()) < 1e-12 and ma.density() < 0.7
    assert r1.config.method == "random" and r1.config.extra["matched_to"] == "contrastive-sparse"


def test_a_mask_shares_its_signatures_provenance(tiny_llama, sigs):
    """One provenance record for signatures and masks: a Wanda mask's is its signature's (the model's id and
    fingerprint included); a pair's masks keep the model and tokens, with their own pole; the model check of a
    signature on another model goes through it."""
    from persona_circuits.masks.provenance import Provenance

    m = wanda_mask(tiny_llama, sigs[0], sparsity=0.5)
    assert isinstance(m.config.provenance, Provenance) and m.config.provenance == sigs[0].provenance
    a, b = contrastive_wanda_masks(tiny_llama, sigs[0], sigs[1], sparsity=0.3)
    for mask, sig in ((a, sigs[0]), (b, sigs[1])):
        p = mask.config.provenance
        assert (p.model_id, p.fingerprint, p.tokens, p.pole) == (sig.model_id, sig.fingerprint, sig.tokens, sig.pole)
    other = Provenance(model_id="other", fingerprint="x")
    with pytest.raises(ModelMismatchError, match="different models"):
        sigs[0].provenance.check_same_model(other)
