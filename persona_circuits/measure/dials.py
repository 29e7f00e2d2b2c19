"""Strength dials: a method's interventions as a function of one scalar strength.

A dial maps a strength (keep-mask sparsity, removal fraction, soft-mask ``1 − γ``, steering coefficient, the
projection gate's ``s``) to the interventions of both poles; :func:`~persona_circuits.measure.damage.find_strength`
searches the strength whose mean KL damage on neutral text reaches a target. Damage is assumed to grow with
the strength between the dial's ``lo`` and ``hi``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from torch import Tensor

from ..masks.build import Mask
from ..masks.gate import WriterBias, mean_push, with_strength
from ..masks.registry import build_masks
from ..model.interventions import Intervention, ResidualSteering
from ..model.loading import Model
from ..model.steering_all import AllLayerSteering


@dataclass
class Dial:
    """A method's strength dial: ``make(strength)`` gives the interventions of both poles at that strength.

    Damage is assumed to grow with strength between ``lo`` and ``hi`` (searched on a log scale when
    ``log_scale``).
    """

    name: str
    make: Callable[[float], Sequence[Intervention]]
    lo: float
    hi: float
    log_scale: bool = True


def mask_dial(model: Model, method: str, signatures: Mapping, *, lo: float | None = None, hi: float | None = None,
              ranked=None, **mask_kwargs) -> Dial:
    """Sparsity dial of a mask method (keep-mask sparsity, or removal fraction for ``contrastive-removal``).

    Contrastive-Wanda and contrastive-removal dials sort each pole's scores once, on first use
    (:class:`~persona_circuits.masks.ranked.RankedContrast`, or the one given as ``ranked``, which a keep and a
    removal dial of the same signatures can share), and cut every strength's masks from the ranks; other
    methods build their masks at each strength.
    """
    removal = method == "contrastive-removal"
    lo = (1e-4 if removal else 1e-3) if lo is None else lo
    hi = (0.2 if removal else 0.9) if hi is None else hi
    ranked_kw = {k: v for k, v in mask_kwargs.items() if k in ("phi", "tau", "modules", "text_stat")}
    use_ranks = method in ("contrastive-wanda", "contrastive-removal") and len(signatures) == 2
    held: list = [] if ranked is None else [ranked]

    def masks_at(s: float) -> dict[str, Mask]:
        if not use_ranks:
            return build_masks(model, method, signatures, sparsity=s, **mask_kwargs)
        if not held:
            from ..masks.ranked import RankedContrast

            held.append(RankedContrast(model, *signatures.values(), **ranked_kw))
        return held[0].removal(s) if removal else held[0].keep(s)

    def make(s: float) -> list[Intervention]:
        return [Intervention(label=f"{method}:{p}@{s:.4g}", mask=m) for p, m in masks_at(s).items()]

    return Dial(method, make, lo, hi, True)


def soft_mask_dial(masks: Mapping[str, Mask] | Sequence[Mask], *, lo: float = 1e-3, hi: float = 1.0) -> Dial:
    """Soft-gate dial of fixed masks: strength ``1 − γ`` (``γ`` = kept fraction of the pruned weights)."""
    ms = list(masks.values()) if isinstance(masks, Mapping) else list(masks)

    def make(s: float) -> list[Intervention]:
        g = min(max(1.0 - s, 0.0), 1.0)
        return [Intervention(label=f"soft:{m.config.pole}@{g:.4g}", mask=m, gamma=g) for m in ms]

    return Dial("soft-mask", make, lo, hi, True)


def steering_dial(vector: Tensor, layer: int, *, lo: float = 0.1, hi: float = 32.0) -> Dial:
    """Steering-coefficient dial: pole A gets ``+c v``, pole B ``−c v`` after block ``layer``."""

    def make(c: float) -> list[Intervention]:
        return [Intervention(label=f"steer+@{c:.4g}", steer=ResidualSteering(vector, layer, c)),
                Intervention(label=f"steer-@{c:.4g}", steer=ResidualSteering(vector, layer, -c))]

    return Dial("steering", make, lo, hi, True)


def all_layer_steering_dial(vectors: Tensor, *, lo: float = 1e-3, hi: float = 1e3) -> Dial:
    """Every-layer steering dial (:mod:`~persona_circuits.model.steering_all`): pole A gets ``+c v_l``, pole B
    ``−c v_l`` after every block."""

    def make(c: float) -> list[Intervention]:
        return [Intervention(label=f"steer-all+@{c:.4g}", steer=AllLayerSteering(vectors, c)),
                Intervention(label=f"steer-all-@{c:.4g}", steer=AllLayerSteering(vectors, -c))]

    return Dial("steering-all", make, lo, hi, True)


def gate_dial(masks: Mapping, *, lo: float = 1e-4, hi: float = 0.99) -> Dial:
    """Projection-gate dial: the fixed selected sets of both poles, gated by ``γ = 1 − s``
    (:func:`~persona_circuits.masks.gate.projection_gate_masks`)."""

    def make(s: float) -> list[Intervention]:
        return [Intervention(label=f"gate:{p}@{s:.4g}", mask=m, gamma=1.0 - m.config.sparsity)
                for p, m in with_strength(masks, s).items()]

    return Dial("projection-gate", make, lo, hi, True)


def gate_bias_dial(model: Model, masks: Mapping, signatures: Mapping, *, lo: float = 1e-4, hi: float = 0.99) -> Dial:
    """The gate's mean-push control (:func:`~persona_circuits.masks.gate.mean_push`): at strength ``s`` each pole's writers get the bias
    ``s · b`` of its gated weights instead of the gate."""
    unit = {p: mean_push(model, m, signatures) for p, m in masks.items()}

    def make(s: float) -> list[Intervention]:
        return [Intervention(label=f"gate-bias:{p}@{s:.4g}", steer=WriterBias(b, s)) for p, b in unit.items()]

    return Dial("gate-bias", make, lo, hi, True)
