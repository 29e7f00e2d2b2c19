"""Interventions on a loaded model: masks (hard or soft), steering, restored exactly on exit.

``with apply_mask(model, mask): ...`` multiplies each masked weight in place, ``W ← W ⊙ M`` (or
``W ⊙ (M + γ(1 − M))`` for a soft gate), and copies the original values back on exit, also when the
body raises. Switching persona is switching masks: nothing is reloaded.

:class:`Intervention` puts every way of changing the model behind one object (a mask, a soft mask,
residual steering, a system prompt, a LoRA adapter, or nothing), so that damage and alignment are
measured the same way for all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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
    # Backups go to buffers preallocated once per model and reused (a fresh 0.4 GB clone per switch
    # spends most of its time in page faults); a nested apply_mask on the same model gets its own.
    pool = getattr(model, "_persona_backup_pool", None)
    if pool is None or pool.get("busy"):
        pool = {"busy": False, "bufs": {}}
        if getattr(model, "_persona_backup_pool", None) is None:
            model._persona_backup_pool = pool
    pool["busy"] = True
    saved: list[tuple[Tensor, Tensor]] = []
    try:
        with torch.no_grad():
            for name, m in mask.masks.items():
                if name in dense_layers:
                    continue
                w = layers[name].weight
                buf = pool["bufs"].get(name)
                if buf is None or buf.shape != w.shape or buf.dtype != w.dtype or buf.device != w.device \
                        or buf.stride() != w.stride():
                    buf = pool["bufs"][name] = torch.empty_like(w)
                buf.copy_(w)
                saved.append((w, buf))
                m = m.to(w.device)
                if gamma == 0.0:
                    _zero_pruned(w, m)
                else:
                    w.mul_(torch.where(m, 1.0, gamma).to(w.dtype))
        yield model
    finally:
        with torch.no_grad():
            # reverse order: when two layer names alias one weight storage, the later backup was taken
            # after the earlier layer's mask was applied; restoring last-to-first ends with the original
            for w, orig in reversed(saved):
                w.copy_(orig)
        pool["busy"] = False


_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _zero_pruned(w: Tensor, keep: Tensor) -> None:
    """``w.masked_fill_(~keep, 0.0)``, bit for bit, in one pass: the weight's bits (read as integers)
    times 0 or 1 are +0.0 or unchanged (also for NaN, inf and -0.0). Twice as fast as ``masked_fill_``
    with an inverted mask on CPU."""
    if w.is_floating_point() and not w.is_complex() and keep.dtype == torch.bool and w.element_size() in _INT_OF_SIZE:
        w.view(_INT_OF_SIZE[w.element_size()]).mul_(keep)
    else:
        w.masked_fill_(~keep, 0.0)


class ResidualSteering:
    """Adds ``coef · v`` to the residual stream after block ``layer`` (activation steering)."""

    def __init__(self, vector: Float[Tensor, " d_model"], layer: int, coef: float) -> None:
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


@dataclass
class Intervention:
    """One condition of the model: any combination of a (soft) mask, residual steering, a system prompt
    and a LoRA adapter; all ``None`` is the dense model.

    Weight and hook changes are made by :meth:`active`; the system prompt is part of the input, so
    functions that build inputs (:func:`~persona_circuits.evaluation.score_choices` via ``system=``,
    :func:`~persona_circuits.damage.kl_damage`) read :attr:`system` themselves.
    """

    label: str = "dense"
    mask: Mask | None = None
    gamma: float = 0.0
    steer: ResidualSteering | None = None
    system: str | None = None
    lora: Any = None  # persona_circuits.baselines.LoRA

    @contextlib.contextmanager
    def active(self, model) -> Iterator:
        with contextlib.ExitStack() as stack:
            stack.enter_context(apply_mask(model, self.mask, gamma=self.gamma))
            stack.enter_context(steering(model, self.steer))
            if self.lora is not None:
                stack.enter_context(self.lora.active())
            yield model

    @property
    def is_dense(self) -> bool:
        return self.mask is None and self.steer is None and not self.system and self.lora is None
