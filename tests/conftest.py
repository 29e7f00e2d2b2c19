"""Shared fixtures: tiny randomly initialised Llama and GPT-2 models (offline, fast), the real
default model (session-scoped, used by tests marked ``slow``) and the scripts of ``analyses/``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


@pytest.fixture
def analysis_script():
    """A loader of the scripts of ``analyses/`` (not a package) as modules: ``analysis_script("swap_change")``."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ANALYSES / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


def shared_data(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"reference data not present: {p}")
    return p


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The default model's tokenizer (from its GGUF file), saved to a folder: it carries a chat template."""
    from transformers import AutoTokenizer

    from persona_circuits.model.loading import embedded_gguf_path

    gguf = embedded_gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    out = tmp_path_factory.mktemp("tok")
    tok.save_pretrained(out)
    return out


def tiny_hf(kind: str, vocab: int, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if kind == "llama":
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
        return LlamaForCausalLM(cfg).eval()
    cfg = GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=512)
    return GPT2LMHeadModel(cfg).eval()


def make_tiny(kind: str, tokenizer_dir: Path, seed: int = 0):
    from transformers import AutoTokenizer

    from persona_circuits import load_model

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return load_model(tiny_hf(kind, len(tok), seed), tok, model_id=f"tiny-{kind}")


@pytest.fixture(scope="session")
def tiny_llama(tokenizer_dir):
    return make_tiny("llama", tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_gpt2(tokenizer_dir):
    return make_tiny("gpt2", tokenizer_dir)


@pytest.fixture(params=["llama", "gpt2"])
def tiny_model(request, tiny_llama, tiny_gpt2):
    return tiny_llama if request.param == "llama" else tiny_gpt2


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny Llama saved as a Hugging Face folder, for CLI tests (``--model DIR``)."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny_llama")
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tiny_hf("llama", len(tok)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def real_model():
    """The default model in float32 (``dtype="auto"`` would make the tests' numbers depend on the CPU)."""
    from persona_circuits import load_model

    return load_model(dtype="float32")


@pytest.fixture
def small_persona():
    """A small persona pair in the package's own format, in memory."""
    from persona_circuits.data import load_persona_set

    return load_persona_set("mbti-ei").subset(calib_size=12, test_size=6)
