"""bfloat16 products in float32 (persona_circuits.model.upcast): the same arithmetic as torch's bfloat16 kernels
up to the order of the float32 sums; nothing else touched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from persona_circuits.errors import ModelLoadError
from persona_circuits.model import upcast
from persona_circuits.model.upcast import Bf16ViaFloat32, bf16_compute, bf16_products, wants_float32_products


def _bf16(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(torch.bfloat16)


def test_linear_is_the_float32_product_rounded_once():
    x, w, b = _bf16(5, 3, 64), _bf16(48, 64, seed=1), _bf16(48, seed=2)
    with Bf16ViaFloat32() as mode:
        y = F.linear(x, w, b)
    assert y.dtype == torch.bfloat16 and mode.calls == 1
    assert torch.equal(y, F.linear(x.float(), w.float(), b.float()).to(torch.bfloat16))
    native = F.linear(x, w, b)  # torch's own bfloat16 kernel: the same arithmetic, another summation order
    # a float32 sum rounded the other way: one unit in the last place (2^-7 relative at most), two with the bias
    # added after a rounding (as a kernel may); near zero the float32 sums' own error (~1e-6 here) dominates
    torch.testing.assert_close(y.float(), native.float(), rtol=2 ** -6, atol=1e-3)


@pytest.mark.parametrize("op", ["matmul", "operator", "bmm", "einsum", "einsum-list"])
def test_every_product_form_is_converted(op):
    a, b = _bf16(2, 4, 8), _bf16(2, 8, 4, seed=1)
    f = {"matmul": lambda: torch.matmul(a, b), "operator": lambda: a @ b, "bmm": lambda: torch.bmm(a, b),
         "einsum": lambda: torch.einsum("bij,bjk->bik", a, b), "einsum-list": lambda: torch.einsum("bij,bjk->bik", [a, b])}[op]
    with Bf16ViaFloat32() as mode:
        y = f()
    assert mode.calls == 1 and y.dtype == torch.bfloat16
    with Bf16ViaFloat32():
        assert torch.equal(f(), y)  # deterministic


def test_attention_stays_native():
    """torch's bfloat16 attention rounds its probabilities to bfloat16 before the product with the values; a
    float32 attention would not, so scaled-dot-product attention is left to torch's kernel."""
    q, k, v = _bf16(1, 2, 5, 8), _bf16(1, 2, 5, 8, seed=1), _bf16(1, 2, 5, 8, seed=2)
    with Bf16ViaFloat32() as mode:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert mode.calls == 0 and torch.equal(y, F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_float32_and_other_ops_are_untouched():
    x, w = torch.randn(4, 16), torch.randn(8, 16)
    with Bf16ViaFloat32() as mode:
        y = F.linear(x, w)
        z = torch.softmax(_bf16(3, 5), -1)  # not a product: bfloat16 as it is
    assert mode.calls == 0 and torch.equal(y, F.linear(x, w)) and torch.equal(z, torch.softmax(_bf16(3, 5), -1))


def test_gradients_flow_through_the_conversions():
    w = _bf16(8, 16).requires_grad_()
    with Bf16ViaFloat32():
        F.linear(_bf16(4, 16, seed=1), w).float().sum().backward()
    assert w.grad is not None and w.grad.dtype == torch.bfloat16 and w.grad.abs().sum() > 0


def test_when_it_applies(monkeypatch, tiny_llama):
    monkeypatch.delenv(upcast.ENV, raising=False)
    bf = torch.nn.Linear(4, 4).to(torch.bfloat16)
    f32 = torch.nn.Linear(4, 4)
    monkeypatch.setattr(upcast, "native_bf16", lambda device="cpu": False)
    assert wants_float32_products(bf) and bf16_products(bf) == "float32"
    assert not wants_float32_products(f32) and bf16_products(f32) == "n/a"
    assert not wants_float32_products(tiny_llama)  # a float32 model
    monkeypatch.setenv(upcast.ENV, "native")
    assert not wants_float32_products(bf) and bf16_products(bf) == "native"
    monkeypatch.setattr(upcast, "native_bf16", lambda device="cpu": True)
    monkeypatch.setenv(upcast.ENV, "auto")
    assert not wants_float32_products(bf)
    monkeypatch.setenv(upcast.ENV, "float32")
    assert wants_float32_products(bf)
    monkeypatch.setenv(upcast.ENV, "fast")
    with pytest.raises(ModelLoadError, match="PERSONA_BF16_COMPUTE='fast'"):
        wants_float32_products(bf)


def test_bf16_compute_is_entered_once_and_left(monkeypatch):
    monkeypatch.setenv(upcast.ENV, "float32")
    bf = torch.nn.Linear(16, 8).to(torch.bfloat16)
    x = _bf16(3, 16)
    with bf16_compute(bf) as outer:
        with bf16_compute(bf) as inner:
            y = bf(x)
        assert inner is outer and outer.calls == 1
    assert torch.equal(y, F.linear(x.float(), bf.weight.float(), bf.bias.float()).to(torch.bfloat16))
    with bf16_compute(torch.nn.Linear(2, 2)) as none:
        assert none is None
    with Bf16ViaFloat32() as probe:  # nothing left entered: a fresh mode sees the product
        bf(x)
    assert probe.calls == 1


def test_a_bfloat16_model_scores_as_with_torchs_kernels(tokenizer_dir, small_persona):
    """A whole bfloat16 model (tiny Llama): choice log-likelihoods with its products in float32 agree with torch's
    bfloat16 kernels far more closely than bfloat16 agrees with float32 (measured: 1e-6 against 8e-3 nats)."""
    from persona_circuits.measure.evaluation import score_choices
    from tests.conftest import make_tiny

    m = make_tiny("llama", tokenizer_dir, seed=3)
    items = small_persona.test
    f32 = score_choices(m, items).logp
    m.original_model.to(torch.bfloat16)
    native = score_choices(m, items).logp
    with Bf16ViaFloat32() as mode:
        ours = score_choices(m, items).logp
    assert mode.calls > 0
    dtype_gap = float((native - f32).abs().max())
    kernel_gap = float((ours - native).abs().max())
    assert dtype_gap > 0 and kernel_gap < 0.05 * dtype_gap, (kernel_gap, dtype_gap)


def test_a_large_parameters_float32_copy_is_kept_until_it_changes(monkeypatch):
    """The kept copy of a large parameter gives the products of a fresh conversion, bit for bit; an in-place
    edit (a mask), another parameter or a parameter that autograd records gets a fresh conversion."""
    monkeypatch.setattr(upcast, "KEEP_MIN", 100)
    head = torch.nn.Linear(16, 40, bias=False).to(torch.bfloat16)
    other = torch.nn.Linear(16, 40, bias=False).to(torch.bfloat16)
    x = _bf16(3, 16)

    def fresh(lin):
        return F.linear(x.float(), lin.weight.float()).to(torch.bfloat16)

    with torch.no_grad(), Bf16ViaFloat32() as mode:
        a, b = head(x), head(x)
        assert mode.kept_hits == 1 and torch.equal(a, fresh(head)) and torch.equal(b, a)
        head.weight[:, :8].zero_()  # an in-place edit bumps the version: converted again
        c = head(x)
        assert mode.kept_hits == 1 and torch.equal(c, fresh(head)) and not torch.equal(c, a)
        assert torch.equal(other(x), fresh(other)) and torch.equal(head(x), fresh(head)) and mode.kept_hits == 1
        small = torch.nn.Linear(16, 4).to(torch.bfloat16)
        small(x), small(x)
        with torch.enable_grad():  # autograd records: never kept
            head(x), head(x)
        assert mode.kept_hits == 1 and mode.calls == 9
