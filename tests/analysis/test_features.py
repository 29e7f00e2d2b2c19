import torch

from persona_circuits.analysis.capability import neutral_texts
from persona_circuits.analysis.features import answer_embeddings, text_features
from persona_circuits.masks.statistics import record_signature


def record_calibration(model, pairs, **kw):
    from persona_circuits.masks.statistics import record_pairs

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


def test_answer_embeddings_by_hand(tiny_llama):
    from persona_circuits.data import encode_pair
    from persona_circuits.model.loading import get_tokenizer

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
