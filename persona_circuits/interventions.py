"""Interventions on a loaded model: masks (hard or soft), restored exactly on exit.

``with apply_mask(model, mask): ...`` multiplies each masked weight in place, ``W ← W ⊙ M`` (or
``W ⊙ (M + γ(1 − M))`` for a soft gate), and copies the original values back on exit, also when the
body raises. Switching persona is switching masks: nothing is reloaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from jaxtyping import Float
from torch import Tensor

from .errors import MaskError
from .masks import Mask
from .models import prunable_layers


@contextlib.contextmanager
def apply_mask(model, mask: Mask | None, *, gamma: float = 0.0, dense_layers: set[str] | frozenset = frozenset()) -> Iterator:
    """Apply ``mask`` to ``model`` in place for the duration of the block.

    Args:
        mask: the mask (``None`` applies nothing, for uniform code over conditions).
        gamma: soft gate: pruned weights are scaled by ``gamma`` instead of zeroed (``0 ≤ γ ≤ 1``).
        dense_layers: names of masked layers to leave dense (ablation: restore one layer).
    """
    if mask is None:
        yield model
        return
    if not 0.0 <= gamma <= 1.0:
        raise MaskError(f"gamma must be in [0, 1], got {gamma}")
    mask.check_model(model)
    layers = {l.name: l for l in prunable_layers(model)}
    saved: list[tuple[Tensor, Tensor]] = []
    try:
        with torch.no_grad():
            for name, m in mask.masks.items():
                if name in dense_layers:
                    continue
                w = layers[name].weight
                saved.append((w, w.detach().clone()))
                m = m.to(w.device)
                if gamma == 0.0:
                    w.masked_fill_(~m, 0.0)
                else:
                    w.mul_(torch.where(m, 1.0, gamma).to(w.dtype))
        yield model
    finally:
        with torch.no_grad():
            for w, orig in saved:
                w.copy_(orig)


class ResidualSteering:
    """Adds ``coef · v`` to the residual stream after block ``layer`` (activation steering)."""

    def __init__(self, vector: Float[Tensor, "d_model"], layer: int, coef: float) -> None:
        self.vector, self.layer, self.coef = vector, layer, coef

    def hooks(self) -> list:
        v = self.vector

        def fn(x, hook):
            return x + self.coef * v.to(x.dtype)

        return [(f"blocks.{self.layer}.hook_out", fn)]


@contextlib.contextmanager
def steering(model, steer: ResidualSteering | None) -> Iterator:
    """Context manager that keeps a :class:`ResidualSteering` hook on ``model``."""
    if steer is None:
        yield model
        return
    with model.hooks(fwd_hooks=steer.hooks()):
        yield model


def weights_snapshot(model) -> Mapping[str, Tensor]:
    """Copies of every prunable weight (for bit-exact restore checks)."""
    return {l.name: l.weight.detach().clone() for l in prunable_layers(model)}
