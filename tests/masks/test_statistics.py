import pytest
import torch

from persona_circuits.data import encode_pair
from persona_circuits.errors import ModelMismatchError, SignatureError
from persona_circuits.model.loading import prunable_layers
from persona_circuits.masks.statistics import load_signatures, record_signature, save_signatures

PAIRS = [("How was your day?", "Great, I met lots of friends."), ("Plans tonight?", "A quiet book at home."),
         ("Favourite food?", "Pasta."), ("What do you do at a party when you know nobody there at all?",
                                         "I introduce myself to the host and then find a small group to join.")]


def naive_sums(model, pairs, tokens):
    """Reference: one text per forward pass, activations from run_with_cache, float64 loops."""
    tok = model.tokenizer
    layers = prunable_layers(model)
    ref = {l.name: {k: torch.zeros(l.shape[1], dtype=torch.float64) for k in ("sum", "sumsq", "sumabs", "l2_sum")} for l in layers}
    n_tok = n_txt = 0
    for q, a in pairs:
        e = encode_pair(tok, q, a)
        ids = torch.tensor([e.ids])
        _, cache = model.run_with_cache(ids, names_filter=lambda n: n.endswith(".hook_in"))
        start = e.answer_start if tokens == "answer" else 0
        n_tok += len(e.ids) - start
        n_txt += 1
        for l in layers:
            x = cache[l.hook_name][0].double()
            x = x.reshape(x.shape[0], -1)[start:]
            r = ref[l.name]
            r["sum"] += x.sum(0)
            r["sumsq"] += (x * x).sum(0)
            r["sumabs"] += x.abs().sum(0)
            r["l2_sum"] += x.pow(2).sum(0).sqrt()
    return ref, n_tok, n_txt


@pytest.mark.parametrize("tokens", ["answer", "all"])
def test_signature_matches_naive_reference(tiny_model, tokens):
    sig = record_signature(tiny_model, PAIRS, tokens=tokens, batch_size=3)
    ref, n_tok, n_txt = naive_sums(tiny_model, PAIRS, tokens)
    assert sig.n_tokens == n_tok and sig.n_texts == n_txt
    assert set(sig.sums) == set(ref)
    for layer, r in ref.items():
        for k, v in r.items():
            torch.testing.assert_close(sig.sums[layer][k], v, rtol=1e-5, atol=1e-5)
    layer = next(iter(ref))
    torch.testing.assert_close(sig.l2_mean(layer), ref[layer]["l2_sum"] / n_txt)
    torch.testing.assert_close(sig.rms(layer), (ref[layer]["sumsq"] / n_tok).sqrt())
    torch.testing.assert_close(sig.mean_abs(layer), ref[layer]["sumabs"] / n_tok)


def test_padding_does_not_change_statistics(tiny_llama):
    one = record_signature(tiny_llama, PAIRS, batch_size=1)
    batched = record_signature(tiny_llama, PAIRS, batch_size=4)
    for layer in one.sums:
        for k in one.sums[layer]:
            torch.testing.assert_close(one.sums[layer][k], batched.sums[layer][k], rtol=1e-5, atol=1e-5)


def test_merge_equals_recording_the_union(tiny_llama):
    a = record_signature(tiny_llama, PAIRS[:2], batch_size=2)
    b = record_signature(tiny_llama, PAIRS[2:], batch_size=2)
    both = record_signature(tiny_llama, PAIRS, batch_size=2)
    m = a.merge(b)
    assert m.n_tokens == both.n_tokens and m.n_texts == both.n_texts
    for layer in m.sums:
        torch.testing.assert_close(m.l2_var(layer), both.l2_var(layer), rtol=1e-5, atol=1e-6)


def test_merge_refuses_other_model(tiny_llama, tiny_gpt2):
    with pytest.raises(ModelMismatchError):
        record_signature(tiny_llama, PAIRS[:1]).merge(record_signature(tiny_gpt2, PAIRS[:1]))


def test_recording_is_deterministic(tiny_llama):
    a = record_signature(tiny_llama, PAIRS, batch_size=2)
    b = record_signature(tiny_llama, PAIRS, batch_size=2)
    for layer in a.sums:
        for k in a.sums[layer]:
            assert torch.equal(a.sums[layer][k], b.sums[layer][k])


def test_save_load_roundtrip(tiny_llama, tmp_path):
    sig = record_signature(tiny_llama, PAIRS, pole="p", dataset="d")
    path = save_signatures(tmp_path / "s.safetensors", {"p": sig, "q": sig})
    back = load_signatures(path)
    assert set(back) == {"p", "q"}
    s = back["p"]
    assert (s.model_id, s.calibration_hash, s.n_tokens, s.pole) == (sig.model_id, sig.calibration_hash, sig.n_tokens, "p")
    for layer in sig.sums:
        assert torch.equal(s.sums[layer]["l2_sum"], sig.sums[layer]["l2_sum"])


def test_corrupt_signature_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(SignatureError):
        load_signatures(bad)


def test_hook_that_never_fires_is_an_error(tiny_llama, monkeypatch):
    from persona_circuits import statistics
    from persona_circuits.model.loading import LinearLayer

    real = statistics.prunable_layers

    def with_ghost(model, modules="all"):
        layers = real(model, modules)
        l0 = layers[0]
        ghost = LinearLayer("blocks.0.attn.ghost", 0, "attn", "q", "blocks.0.hook_resid_pre", l0.module, False)
        return layers + [ghost]

    # a hook point that exists but fires... and one whose hook is registered yet never called:
    monkeypatch.setattr(statistics, "prunable_layers", with_ghost)
    orig_hooks = tiny_llama.hooks

    def dropping_hooks(fwd_hooks=(), **kw):
        return orig_hooks(fwd_hooks=[h for h in fwd_hooks if h[0] != "blocks.0.hook_resid_pre"], **kw)

    monkeypatch.setattr(tiny_llama, "hooks", dropping_hooks)
    with pytest.raises(SignatureError, match="did not fire"):
        record_signature(tiny_llama, PAIRS[:1])


def test_empty_calibration_is_an_error(tiny_llama):
    with pytest.raises(SignatureError):
        record_signature(tiny_llama, [])


def test_per_text_rms_statistics_match_a_loop(tiny_llama):
    from persona_circuits.masks.statistics import record_pairs

    stats = record_pairs(tiny_llama, PAIRS, batch_size=3)
    sig = stats.signature()
    tok = tiny_llama.tokenizer
    layer = prunable_layers(tiny_llama)[5]
    rms, msq = torch.zeros(layer.shape[1], dtype=torch.float64), torch.zeros(layer.shape[1], dtype=torch.float64)
    for q, a in PAIRS:
        e = encode_pair(tok, q, a)
        _, cache = tiny_llama.run_with_cache(torch.tensor([e.ids]), names_filter=lambda n: n == layer.hook_name)
        x = cache[layer.hook_name][0].double().reshape(len(e.ids), -1)[e.answer_start:]
        r = (x.pow(2).sum(0) / x.shape[0]).sqrt()
        rms += r
        msq += r * r
    torch.testing.assert_close(sig.text_mean(layer.name, "rms"), rms / len(PAIRS), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sig.text_var(layer.name, "rms"), (msq / len(PAIRS) - (rms / len(PAIRS)) ** 2).clamp_min(0),
                               rtol=1e-4, atol=1e-6)


def test_rms_statistic_is_length_invariant_and_l2_is_not(tiny_llama):
    """The same answer repeated k times: per-text L2 grows like sqrt(k) (for a repeated pattern), RMS stays put."""
    from persona_circuits.masks.statistics import record_pairs

    short = [("Say it.", "yes yes yes yes")]
    long = [("Say it.", " ".join(["yes"] * 64))]
    s, l = record_pairs(tiny_llama, short).signature(), record_pairs(tiny_llama, long).signature()
    name = prunable_layers(tiny_llama)[-1].name
    ratio_l2 = float((l.text_mean(name, "l2") / s.text_mean(name, "l2")).median())
    ratio_rms = float((l.text_mean(name, "rms") / s.text_mean(name, "rms")).median())
    assert ratio_l2 > 2.5  # 16x the tokens
    assert 0.5 < ratio_rms < 2.0


def test_predict_selection_is_the_answer_selection_shifted_by_one(tiny_llama):
    from persona_circuits.data import pad_batches
    from persona_circuits.masks.statistics import record_pairs, selection_mask

    enc = [encode_pair(tiny_llama.tokenizer, q, a) for q, a in PAIRS]
    b = pad_batches(enc, tiny_llama.tokenizer.pad_token_id, 4)[0]
    ans = selection_mask(b.attention_mask, b.answer_mask, "answer")
    pred = selection_mask(b.attention_mask, b.answer_mask, "predict")
    assert torch.equal(pred.sum(1), ans.sum(1))  # as many positions as answer tokens
    assert torch.equal(pred[:, :-1], ans[:, 1:])
    for r, i in enumerate(b.index):  # the first predicting position is the last prompt token
        assert bool(pred[r, enc[i].answer_start - 1]) and not bool(pred[r, len(enc[i].ids) - 1])
    one_token = [("Is this you?", "Yes")]
    st = record_pairs(tiny_llama, one_token, tokens="predict")
    assert int(st.n_tok[0]) == 1
    with pytest.raises(SignatureError):
        record_pairs(tiny_llama, one_token, tokens="sideways")


def test_per_text_signature_of_a_subset_equals_recording_the_subset(tiny_llama):
    from persona_circuits.masks.statistics import record_pairs

    stats = record_pairs(tiny_llama, PAIRS, batch_size=2)
    sub = stats.signature([1, 3])
    ref = record_signature(tiny_llama, [PAIRS[1], PAIRS[3]], batch_size=2)
    assert (sub.n_tokens, sub.n_texts) == (ref.n_tokens, ref.n_texts)
    for layer in ref.sums:
        for k in ref.sums[layer]:
            torch.testing.assert_close(sub.sums[layer][k], ref.sums[layer][k], rtol=1e-5, atol=1e-5)
    both = stats.concat(stats)
    assert len(both) == 2 * len(PAIRS)
    torch.testing.assert_close(both.signature([0, 4]).sums[layer]["l2_sum"], 2 * stats.signature([0]).sums[layer]["l2_sum"])
