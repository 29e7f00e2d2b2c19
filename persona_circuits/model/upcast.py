"""bfloat16 on a CPU without native bfloat16: every matrix product computed in float32, rounded to bfloat16.

A bfloat16 model's matrix products (``F.linear``, ``matmul``, ``bmm``, ``einsum``...) are
computed natively on a CPU with AVX512-BF16 or AMX-BF16: bfloat16 inputs, products accumulated in float32,
the result rounded to bfloat16. On a CPU without them (AVX2 only, e.g. AMD EPYC Zen 3) torch falls back to
a generic kernel that does the same arithmetic, converting each element, at about a fifth of float32's speed
(15 against 67-122 GFLOP/s on Gemma-3-270M's shapes, AMD EPYC Zen 3, 2 cores; ``benchmarks/bench_bf16_upcast.py``).

:class:`Bf16ViaFloat32` computes those products the other way round: the bfloat16 operands are converted to
float32 (exactly: every bfloat16 is a float32), the float32 kernel runs, and the result is rounded to
bfloat16. It is the same arithmetic as the native and the generic kernels (exact products, float32 sums,
one rounding at the end); only the order of the float32 additions differs, as it already differs between
the native kernels of two CPU models (AMX against AVX512-BF16). Everything else (norms, activations, the
weights and every stored tensor) stays in bfloat16. Tensors that are not bfloat16, or not on the CPU, are
untouched: a float32 model computes bit for bit as without it.

So a bfloat16 study (its shards fixed to bfloat16 by the first one computed, :mod:`persona_circuits.cli.shard`)
can be continued on an AVX2-only CPU at about float32's speed instead of the generic kernel's. ``--dtype auto``
still picks float32 there for new work (float32 is as fast and more exact).

:func:`bf16_compute` is the switch: a context manager that enters :class:`Bf16ViaFloat32` when the model is
bfloat16 on a CPU without native bfloat16 (``PERSONA_BF16_COMPUTE=native`` keeps torch's own kernels), and
does nothing otherwise. The study (:func:`~persona_circuits.study.run.run_study`, every shard) and the
command line enter it; in a notebook::

    with bf16_compute(model):
        ...
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

#: the environment variable that turns the float32 path off (``native``) or on where it is off (``float32``)
ENV = "PERSONA_BF16_COMPUTE"

_F = torch.nn.functional
#: the matrix products computed in float32 (every way torch and Hugging Face models call them). Not
#: scaled-dot-product attention: torch's bfloat16 kernel rounds the attention probabilities to bfloat16 before
#: their product with the values (on every CPU), which a float32 attention would not do; it stays native.
PRODUCTS = frozenset({
    _F.linear, _F.bilinear,
    torch.matmul, torch.mm, torch.bmm, torch.addmm, torch.baddbmm, torch.addbmm, torch.einsum, torch.inner,
    torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.__rmatmul__, torch.Tensor.mm, torch.Tensor.bmm,
    torch.Tensor.addmm, torch.Tensor.baddbmm,
})

_ACTIVE = threading.local()


def _is_cpu_bf16(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype == torch.bfloat16 and x.device.type == "cpu"


def _down(x: Any) -> Any:
    return x.to(torch.bfloat16) if isinstance(x, torch.Tensor) and x.dtype == torch.float32 else x


#: a bfloat16 parameter of at least this many elements (an output embedding: Gemma-3-270M's is 262144 x 640) keeps
#: its float32 copy between products, instead of being converted at every call
KEEP_MIN = 1 << 24


class Bf16ViaFloat32(TorchFunctionMode):
    """A torch function mode: each product of :data:`PRODUCTS` with a bfloat16 CPU tensor among its
    arguments runs on float32 copies of its bfloat16 arguments, its float32 results rounded to bfloat16
    (see the module docstring). Autograd flows through the conversions. ``calls`` counts the products it
    converted, ``kept_hits`` the conversions saved.

    The float32 copy of a large parameter (:data:`KEEP_MIN`; in practice the output embedding, which no mask
    edits) is kept while the parameter is the same object with the same storage, shape and version counter
    (an in-place edit bumps it), so it equals a fresh conversion bit for bit; one such copy at a time (Gemma-3-270M:
    671 MB). Where autograd records (a parameter that requires a gradient, outside ``torch.no_grad``) it is converted
    afresh."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.kept_hits = 0  # conversions saved by the kept copy
        self._kept: tuple | None = None  # (weakref to the parameter, its key, the float32 copy)

    def _up(self, x: Any) -> Any:
        if not _is_cpu_bf16(x):
            return x
        if not isinstance(x, torch.nn.Parameter) or x.numel() < KEEP_MIN or (x.requires_grad and torch.is_grad_enabled()):
            return x.float()
        key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()), x._version)
        if self._kept is not None and self._kept[0]() is x and self._kept[1] == key:
            self.kept_hits += 1
            return self._kept[2]
        up = x.float()
        self._kept = (weakref.ref(x), key, up)
        return up

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in PRODUCTS:
            flat = [*args, *kwargs.values()]
            if isinstance(flat[0] if flat else None, str):  # einsum's equation
                flat = [*flat[1:]]
            if any(_is_cpu_bf16(a) or (isinstance(a, (list, tuple)) and any(_is_cpu_bf16(b) for b in a)) for a in flat):
                self.calls += 1
                out = func(*tree_map(self._up, args), **tree_map(self._up, kwargs))
                return tree_map(_down, out)
        return func(*args, **kwargs)


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether bfloat16 products are native on ``device`` (a CPU with AVX512-BF16 or AMX-BF16; any non-CPU
    device counts as native: the float32 path is for CPUs only)."""
    from .dtypes import cpu_bf16_features

    return torch.device(device).type != "cpu" or bool(cpu_bf16_features())


def wants_float32_products(model: Any) -> bool:
    """Whether :func:`bf16_compute` converts ``model``'s products: a bfloat16 model on a CPU without native
    bfloat16, unless ``PERSONA_BF16_COMPUTE=native``; ``PERSONA_BF16_COMPUTE=float32`` converts on any CPU."""
    try:
        p = next(model.parameters())
    except (StopIteration, AttributeError):
        return False
    if p.dtype != torch.bfloat16 or p.device.type != "cpu":
        return False
    how = os.environ.get(ENV, "auto").strip().lower()
    if how not in ("auto", "native", "float32"):
        from ..errors import ModelLoadError

        raise ModelLoadError(f"{ENV}={how!r}: use auto, native or float32")
    return how == "float32" or (how == "auto" and not native_bf16("cpu"))


def bf16_products(model: Any) -> str:
    """How ``model``'s bfloat16 products are computed under :func:`bf16_compute`: ``"float32"`` (converted),
    ``"native"`` (torch's kernels), or ``"n/a"`` for a model that is not bfloat16 on a CPU. Recorded with a
    study's machine."""
    try:
        p = next(model.parameters())
    except (StopIteration, AttributeError):
        return "n/a"
    if p.dtype != torch.bfloat16 or p.device.type != "cpu":
        return "n/a"
    return "float32" if wants_float32_products(model) else "native"


@contextlib.contextmanager
def bf16_compute(model: Any) -> Iterator[Bf16ViaFloat32 | None]:
    """Within the block, ``model``'s bfloat16 products run in float32 where :func:`wants_float32_products`
    says so (yields the mode); otherwise nothing changes (yields ``None``). Nested use enters it once."""
    if getattr(_ACTIVE, "mode", None) is not None or not wants_float32_products(model):
        yield getattr(_ACTIVE, "mode", None)
        return
    mode = Bf16ViaFloat32()
    _ACTIVE.mode = mode
    try:
        with mode:
            yield mode
    finally:
        _ACTIVE.mode = None
