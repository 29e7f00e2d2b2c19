"""Model loading: the converted-weights cache of GGUF models."""

from __future__ import annotations

import logging

import pytest
import torch

from persona_circuits import models


def _tiny(tokenizer_dir):
    from transformers import AutoTokenizer

    from tests.conftest import tiny_hf

    return tiny_hf("llama", 49152), AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch, tokenizer_dir):
    """A stand-in GGUF file whose 'de-quantisation' returns a tiny Llama; counts the slow loads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("PERSONA_CIRCUITS_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "pkg" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(bytes(range(256)) * 64)
    hf, tok = _tiny(tokenizer_dir)
    calls = {"gguf": 0}
    real_model, real_tok = AutoModelForCausalLM.from_pretrained, AutoTokenizer.from_pretrained

    def model_from(path, *a, gguf_file=None, dtype=None, **kw):
        if gguf_file is None:
            return real_model(path, *a, dtype=dtype, **kw)
        calls["gguf"] += 1
        assert dtype == torch.float32
        return _tiny(tokenizer_dir)[0]

    def tok_from(path, *a, gguf_file=None, **kw):
        return tok if gguf_file is not None else real_tok(path, *a, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", model_from)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", tok_from)
    return gguf, hf, calls


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_second_load_reads_the_cache_bit_identically(fake_gguf):
    gguf, ref, calls = fake_gguf
    hf1, tok1 = models._load_gguf_cached(gguf, torch.float32)
    folder = models.converted_cache_path(gguf)
    assert calls["gguf"] == 1 and (folder / "model.safetensors").is_file()
    hf2, tok2 = models._load_gguf_cached(gguf, torch.float32)
    assert calls["gguf"] == 1  # no second de-quantisation
    _same_weights(hf1, hf2)
    _same_weights(ref, hf2)
    assert hf2.lm_head.weight.data_ptr() == hf2.model.embed_tokens.weight.data_ptr() or \
        not hf2.config.tie_word_embeddings
    text = "<|im_start|>user\nHi, Ünïcode 😀<|im_end|>"
    assert tok1(text).input_ids == tok2(text).input_ids and tok1.chat_template == tok2.chat_template
    hb, _ = models._load_gguf_cached(gguf, torch.bfloat16)
    assert calls["gguf"] == 1
    for k, v in ref.state_dict().items():
        assert torch.equal(hb.state_dict()[k], v.to(torch.bfloat16)), k


def test_cache_key_follows_the_file(fake_gguf):
    gguf, _, _ = fake_gguf
    k = models.gguf_cache_key(gguf)
    assert k == models.gguf_cache_key(gguf)
    gguf.write_bytes(gguf.read_bytes()[:-1] + b"\x01")
    assert models.gguf_cache_key(gguf) != k


@pytest.mark.parametrize("damage", ["truncate", "garbage_config", "no_weights", "bad_manifest"])
def test_corrupt_cache_falls_back_and_is_rewritten(fake_gguf, damage, caplog):
    gguf, ref, calls = fake_gguf
    models._load_gguf_cached(gguf, torch.float32)
    folder = models.converted_cache_path(gguf)
    w = folder / "model.safetensors"
    if damage == "truncate":
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif damage == "garbage_config":
        (folder / "config.json").write_text("{not json")
    elif damage == "no_weights":
        w.unlink()
    else:
        (folder / models._MANIFEST).write_text("[")
    with caplog.at_level(logging.WARNING, logger="persona_circuits.model.loading"):
        hf, _ = models._load_gguf_cached(gguf, torch.float32)
    assert calls["gguf"] == 2 and "unusable" in caplog.text
    _same_weights(ref, hf)
    models._load_gguf_cached(gguf, torch.float32)  # rewritten: read from the cache again
    assert calls["gguf"] == 2


def test_unwritable_cache_does_not_stop_loading(fake_gguf, monkeypatch, tmp_path):
    gguf, ref, calls = fake_gguf
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PERSONA_CIRCUITS_CACHE", str(blocker / "sub"))  # parent is a file
    hf, _ = models._load_gguf_cached(gguf, torch.float32)
    _same_weights(ref, hf)
    assert calls["gguf"] == 1


@pytest.mark.slow
def test_real_model_cache_is_bit_identical_to_the_gguf(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from persona_circuits.data import encode_pair, load_persona_set

    monkeypatch.setenv("PERSONA_CIRCUITS_CACHE", str(tmp_path))
    gguf = models.embedded_gguf_path()
    first, tok1 = models._load_gguf_cached(gguf, torch.float32)  # de-quantised, cache written
    second, tok2 = models._load_gguf_cached(gguf, torch.float32)  # from the cache
    _same_weights(first, second)
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    cached_bf16, _ = models._load_gguf_cached(gguf, torch.bfloat16)
    _same_weights(direct, cached_bf16)
    for it in load_persona_set("mbti-ei").test[:5]:
        assert encode_pair(tok1, it.question, it.answer_a) == encode_pair(tok2, it.question, it.answer_a)


# ---- dtype "auto"

CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n\nprocessor\t: 1\n"


@pytest.mark.parametrize("extra,want", [("avx512_bf16 amx_tile", {"avx512_bf16"}), ("amx_bf16 amx_tile", {"amx_bf16"}),
                                        ("avx512_vnni", set())])
def test_bf16_flags_from_cpuinfo(extra, want):
    from persona_circuits.model.dtypes import bf16_flags

    assert bf16_flags(CPUINFO.format(extra=extra)) == frozenset(want)
    assert bf16_flags("processor\t: 0\nFeatures\t: fp asimd\n") is None  # no x86 flags line: torch's probes decide


@pytest.mark.parametrize("features,want", [({"amx_bf16"}, torch.bfloat16), ({"avx512_bf16", "amx_bf16"}, torch.bfloat16),
                                           (set(), torch.float32)])
def test_auto_dtype_on_the_cpu_follows_its_bf16_features(monkeypatch, features, want):
    from persona_circuits import dtypes

    monkeypatch.setattr(dtypes, "cpu_bf16_features", lambda: frozenset(features))
    choice = dtypes.choose_dtype("auto", "cpu")
    assert dtypes.resolve_dtype("auto", "cpu") == choice.dtype == want
    labels = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}
    assert choice.reason == ("auto: CPU has " + " and ".join(labels[f] for f in sorted(features)) if features
                             else "auto: CPU has neither AVX512-BF16 nor AMX-BF16")
    # an explicit dtype is never changed, whatever the hardware
    assert dtypes.resolve_dtype("float32", "cpu") == torch.float32 and dtypes.resolve_dtype("bf16") == torch.bfloat16
    assert dtypes.choose_dtype("float16").reason == "--dtype float16"


def test_auto_dtype_on_cuda_and_other_devices(monkeypatch):
    from persona_circuits import dtypes

    monkeypatch.setattr(dtypes, "_cuda_bf16", lambda index: index in (None, 0))
    assert dtypes.resolve_dtype("auto", "cuda") == torch.bfloat16 and dtypes.resolve_dtype("auto", "cuda:1") == torch.float32
    assert dtypes.resolve_dtype("auto", "meta") == torch.float32
    assert dtypes.device_of_map({"model.embed_tokens": 0, "lm_head": "cpu"}) == "cuda:0"
    assert dtypes.device_of_map({"": "cpu"}) == "cpu"


def test_unknown_dtype_is_a_clear_error():
    from persona_circuits.model.dtypes import resolve_dtype
    from persona_circuits.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="unknown dtype"):
        resolve_dtype("float8")


def test_load_model_auto_dtype(monkeypatch, tiny_model_dir, tokenizer_dir, caplog):
    from persona_circuits import dtypes
    from persona_circuits.options import DTYPE_LOGGER

    monkeypatch.setattr(dtypes, "cpu_bf16_features", lambda: frozenset({"amx_bf16"}))
    with caplog.at_level(logging.INFO, logger=DTYPE_LOGGER):
        m = models.load_model(str(tiny_model_dir))  # a folder: auto resolves for the device
    assert next(m.parameters()).dtype == torch.bfloat16 and m.persona_dtype.name == "bfloat16"
    assert "dtype bfloat16 (auto: CPU has AMX-BF16)" in caplog.text
    monkeypatch.setattr(dtypes, "cpu_bf16_features", lambda: frozenset())
    assert next(models.load_model(str(tiny_model_dir)).parameters()).dtype == torch.float32
    hf, tok = _tiny(tokenizer_dir)
    monkeypatch.setattr(dtypes, "cpu_bf16_features", lambda: frozenset({"amx_bf16"}))
    m = models.load_model(hf, tok, model_id="tiny")  # an already-loaded model keeps its own dtype under auto
    assert next(m.parameters()).dtype == torch.float32 and "own dtype" in m.persona_dtype.reason


def test_cpu_model_reads_the_first_processor_of_cpuinfo():
    from persona_circuits.model.dtypes import cpu_model

    info = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
            "model name\t: Intel(R) Xeon(R) Platinum 8480+\nstepping\t: 8\nflags\t\t: avx512_bf16 amx_bf16\n\n"
            "processor\t: 1\nmodel name\t: something else\n")
    assert cpu_model(info) == "Intel(R) Xeon(R) Platinum 8480+ (cpu family 6, model 143, stepping 8)"
    assert cpu_model("model name\t: Some CPU\n") == "Some CPU"
