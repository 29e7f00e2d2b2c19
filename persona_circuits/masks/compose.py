"""Compose persona masks and steering vectors: the 16 MBTI types from the four axes' poles.

A type (``INTJ``) names one pole on each bundled MBTI axis (``mbti-ei``: E/I, ``mbti-sn``: S/N, ``mbti-tf``:
T/F, ``mbti-jp``: J/P; the first letter is the axis's pole A). Its mask is built from those four pole masks,
of one method at one strength, by a rule that keeps each part's meaning. With ``M_i`` the keep-mask of part
``i`` (``True`` = kept, the representation of every :class:`~persona_circuits.masks.build.Mask`, removal masks
included):

* **keep** masks (Wanda, contrastive-Wanda, contrastive-sparse, random): the intersection of the kept
  weights, ``M = ∧_i M_i``; a weight survives only if every axis keeps it;
* **removal** masks (``contrastive-removal``, which store the weights they keep): the union of the removed
  weights, ``R = ∨_i ¬M_i``, stored as its keep-mask ``M = ¬R``. By De Morgan ``¬∨_i ¬M_i = ∧_i M_i``: in the
  keep representation both rules are the same AND; they differ in what they mean for the strength (a type's
  keep mask at sparsity ``ρ`` keeps at most ``1 − ρ`` of each row, its removal mask removes at most ``4ρ``);
* **soft** masks (gate ``g_i = M_i + γ_i (1 − M_i)``): the product of the gates, ``g = Π_i g_i``, i.e. a weight
  pruned by ``c`` of the parts is scaled by the product of their ``γ_i`` (``γ^c`` for one ``γ``). That is not a
  hard mask with one ``γ``, so the result is a :class:`GateMask`: ``apply_mask(model, gate_mask)`` (also through
  :class:`~persona_circuits.model.interventions.Intervention`) multiplies each weight in place by its composed gate,
  ``W ← W ⊙ g`` with ``g`` formed in float32 and cast to the weight's dtype (for one part this is
  ``apply_mask(model, M, gamma=γ)`` bit for bit), and restores the original weights bit-exactly on exit.

Steering composes by the sum of the signed axis vectors, ``v = Σ_i s_i v_i`` with ``s_i = +1`` for the axis's
pole A and ``−1`` for pole B (a persona vector ``v_i = mean(A) − mean(B)`` steers towards A with ``+c v_i``);
the vectors must come from the same layer. The sum is longer than each part (about ``2 |v_i|`` for four
unrelated directions of equal norm), so its coefficient is chosen again (e.g. by a damage target).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from .build import Mask, MaskConfig
from .registry import build_masks
from .statistics import record_persona_signatures
from ..data import PERSONAS_DIR, load_persona_set
from ..errors import MaskError
from ..model.loading import prunable_layers

if TYPE_CHECKING:
    from ..model.loading import Model

#: the bundled MBTI axes, each with the letters of its pole A and pole B
MBTI_AXES: tuple[tuple[str, str, str], ...] = (("mbti-ei", "E", "I"), ("mbti-sn", "S", "N"),
                                               ("mbti-tf", "T", "F"), ("mbti-jp", "J", "P"))
#: the 16 types, E/I first (``ESTJ``, ``ESTP``, ..., ``INFP``)
ALL_TYPES: tuple[str, ...] = tuple("".join(t) for t in itertools.product(*((a, b) for _, a, b in MBTI_AXES)))
RULES = ("keep", "removal", "soft")
REMOVAL_METHODS = ("contrastive-removal",)


class ComposeError(MaskError):
    """Masks or vectors cannot be composed (another model, a mixture of rules, an unknown MBTI type...)."""


# --------------------------------------------------------------------------------------------
# MBTI types


def check_type(type_str: str) -> str:
    """The type in capitals, or :class:`ComposeError` unless it is one of the 16 (``INTJ``, ``esfp``...)."""
    t = str(type_str).strip().upper()
    if t not in ALL_TYPES:
        raise ComposeError(f"unknown MBTI type {type_str!r}: four letters, one of E/I, S/N, T/F, J/P in that order "
                           f"(e.g. INTJ)")
    return t


@functools.cache
def _axis_poles(axis: str) -> tuple[str, str]:
    """Pole names (A, B) of a bundled axis, read from its ``persona.json``."""
    meta = json.loads((PERSONAS_DIR / axis / "persona.json").read_text(encoding="utf-8"))
    return meta["poles"][0]["name"], meta["poles"][1]["name"]


def mbti_type_poles(type_str: str) -> dict[str, str]:
    """``{axis set: pole name}`` of a type: ``INTJ`` -> ``{"mbti-ei": "introvert", "mbti-sn": "intuition",
    "mbti-tf": "thinking", "mbti-jp": "judging"}``."""
    t = check_type(type_str)
    return {axis: _axis_poles(axis)[0 if letter == a else 1] for letter, (axis, a, _) in zip(t, MBTI_AXES)}


def type_signs(type_str: str) -> dict[str, float]:
    """``{axis set: +1.0 (pole A) or -1.0 (pole B)}``: the signs of the axis steering vectors of a type."""
    t = check_type(type_str)
    return {axis: 1.0 if letter == a else -1.0 for letter, (axis, a, _) in zip(t, MBTI_AXES)}


def opposite_type(type_str: str) -> str:
    """The type with every letter flipped: ``INTJ`` -> ``ESFP``."""
    t = check_type(type_str)
    return "".join(b if letter == a else a for letter, (_, a, b) in zip(t, MBTI_AXES))


# --------------------------------------------------------------------------------------------
# Masks


@dataclass
class GateMask:
    """A soft mask composed of hard masks: weight ``(i, j)`` of a layer is scaled by ``Π_k g_k[i, j]`` with
    ``g_k = M_k + γ_k (1 − M_k)`` (a part without the layer leaves it unscaled). Applied by :meth:`apply` or by
    ``apply_mask(model, gate_mask)``; the gates are formed per layer when applied, so it stores only the parts'
    bits."""

    parts: list[Mask]
    gammas: list[float]
    config: MaskConfig
    is_gate_mask = True

    @property
    def layer_names(self) -> list[str]:
        return list(dict.fromkeys(n for p in self.parts for n in p.masks))

    def gate(self, name: str) -> Float[Tensor, "d_out d_in"]:
        """The composed gate of one layer, float32: ``Π_k where(M_k, 1, γ_k)``.

        With one ``γ`` for every part the gate is ``γ^c`` with ``c`` the number of parts that prune the weight:
        it is looked up in ``[1, γ, γ·γ, ...]`` (built by the same float32 products in the same order, so the
        values are the product's bit for bit) instead of multiplying one full-size factor per part."""
        parts = [(m.masks[name], g) for m, g in zip(self.parts, self.gammas) if name in m.masks]
        if not parts:
            raise ComposeError(f"no part of this gate mask covers layer {name}")
        if len({g for _, g in parts}) == 1:
            gamma = torch.tensor(parts[0][1], dtype=torch.float32)
            lut = [torch.tensor(1.0, dtype=torch.float32)]
            for _ in parts:
                lut.append(lut[-1] * gamma)
            pruned = sum((~m).to(torch.uint8) for m, _ in parts)
            return torch.stack(lut)[pruned.int()]
        g = None
        for m, gamma in parts:
            f = torch.where(m, 1.0, gamma)
            g = f if g is None else g * f
        return g

    def check_model(self, model) -> None:
        for m in self.parts:
            m.check_model(model)

    def density(self) -> float:
        """Fraction of the weights left unscaled (kept by every part): the density of the keep composition."""
        return compose_masks({str(i): m for i, m in enumerate(self.parts)}, rule="keep").density()

    @contextlib.contextmanager
    def apply(self, model) -> Iterator:
        """``W ← W ⊙ g`` for every covered layer, restored bit-exactly on exit (also on an exception)."""

        self.check_model(model)
        layers = {l.name: l for l in prunable_layers(model)}
        saved: list[tuple[Tensor, Tensor]] = []
        try:
            with torch.no_grad():
                for name in self.layer_names:
                    w = layers[name].weight
                    saved.append((w, w.detach().clone()))
                    w.mul_(self.gate(name).to(device=w.device, dtype=w.dtype))
            yield model
        finally:
            with torch.no_grad():
                for w, orig in reversed(saved):  # reverse: aliased layers end with the original
                    w.copy_(orig)


def _common(values: list):
    return values[0] if all(v == values[0] for v in values) else None


def infer_rule(parts: Mapping[str, Mask], gamma: float | Mapping[str, float] | None = None) -> str:
    """``soft`` when ``gamma`` is given, ``removal`` when every part is a removal mask, ``keep`` when none is."""
    if gamma is not None:
        return "soft"
    removal = [m.config.method in REMOVAL_METHODS for m in parts.values()]
    if all(removal):
        return "removal"
    if any(removal):
        raise ComposeError("cannot compose removal masks with keep masks (their strengths mean different things); "
                           "pass rule= to force one rule")
    return "keep"


def compose_masks(parts: Mapping[str, Mask], *, rule: str | None = None, gamma: float | Mapping[str, float] | None = None,
                  pole: str | None = None) -> Mask | GateMask:
    """Compose masks keyed by part (an axis): ``keep`` -> AND of the kept weights, ``removal`` -> union of the
    removed weights (stored as its keep-mask), ``soft`` -> a :class:`GateMask`, the product of the gates with
    ``gamma`` (one value, or one per part). ``rule`` is inferred by :func:`infer_rule` when not given. A layer
    absent from a part is dense in it. The result's ``config.extra["composed"]`` lists the parts (axis, pole,
    method, sparsity, calibration hash, density) and the rule.

    Args:
        parts: ``{part: Mask}``, e.g. one pole mask per MBTI axis, all of one method.
        rule: ``"keep"``, ``"removal"`` or ``"soft"`` (``None``: inferred from the masks' method).
        gamma: the soft masks' scale of the pruned weights (one value or ``{part: gamma}``); soft rule only.
        pole: the name of the composed mask.

    Raises:
        ComposeError: (a :class:`MaskError`) no parts, an unknown rule, a missing gamma or one outside [0, 1].
    """
    if not parts:
        raise ComposeError("nothing to compose")
    rule = infer_rule(parts, gamma) if rule is None else rule
    if rule not in RULES:
        raise ComposeError(f"unknown composition rule {rule!r}; choose one of {RULES}")
    _check_compatible(parts)
    if rule == "soft":
        gammas = _gammas(parts, 0.0 if gamma is None else gamma)
        return GateMask(list(parts.values()), gammas, _composed_config(parts, rule, pole, gammas))
    out: dict[str, Tensor] = {}
    for name in dict.fromkeys(n for m in parts.values() for n in m.masks):
        ms = [m.masks[name] for m in parts.values() if name in m.masks]
        if rule == "keep":  # intersection of the kept weights
            out[name] = torch.stack(ms).all(0)
        else:  # union of the removed weights, stored as what is kept
            out[name] = ~torch.stack([~m for m in ms]).any(0)
    return Mask(out, _composed_config(parts, rule, pole, None))


def _gammas(parts: Mapping[str, Mask], gamma: float | Mapping[str, float]) -> list[float]:
    if isinstance(gamma, Mapping):
        missing = [k for k in parts if k not in gamma]
        if missing:
            raise ComposeError(f"no gamma for part(s) {missing}")
        gs = [float(gamma[k]) for k in parts]
    else:
        gs = [float(gamma)] * len(parts)
    if not all(0.0 <= g <= 1.0 for g in gs):
        raise ComposeError(f"gamma must be in [0, 1], got {gs}")
    return gs


def _check_compatible(parts: Mapping[str, Mask]) -> None:
    ms = list(parts.values())
    if len({m.config.fingerprint for m in ms}) > 1:
        raise ComposeError("cannot compose masks of different models (their fingerprints differ)")
    shapes: dict[str, tuple] = {}
    for key, m in parts.items():
        for name, t in m.masks.items():
            if shapes.setdefault(name, tuple(t.shape)) != tuple(t.shape):
                raise ComposeError(f"part {key!r}: layer {name} has shape {tuple(t.shape)}, another part {shapes[name]}")


def _composed_config(parts: Mapping[str, Mask], rule: str, pole: str | None, gammas: list[float] | None) -> MaskConfig:
    cs = [m.config for m in parts.values()]
    h = hashlib.sha256("|".join(f"{k}:{c.calibration_hash}" for k, c in zip(parts, cs)).encode()).hexdigest()[:16]
    listing = [{"axis": str(k), "pole": c.pole, "method": c.method, "sparsity": c.sparsity, "dataset": c.dataset,
                "calibration_hash": c.calibration_hash, "density": m.density()}
               for (k, m), c in zip(parts.items(), cs)]
    extra = {"composed": {"rule": rule, "parts": listing, **({"gammas": gammas} if gammas is not None else {})}}
    sparsity = _common([c.sparsity for c in cs])
    return MaskConfig(method=_common([c.method for c in cs]) or "composed",
                      sparsity=float(sparsity) if sparsity is not None else 0.0, model_id=cs[0].model_id,
                      fingerprint=cs[0].fingerprint, modules=_common([c.modules for c in cs]) or "all",
                      statistic=_common([c.statistic for c in cs]), tokens=_common([c.tokens for c in cs]),
                      pole=pole if pole is not None else "+".join(str(c.pole) for c in cs),
                      poles=[str(c.pole) for c in cs], dataset="+".join(str(k) for k in parts), calibration_hash=h,
                      phi=_common([c.phi for c in cs]), tau=_common([c.tau for c in cs]),
                      text_stat=_common([c.text_stat for c in cs]), extra=extra)


def compose_type(axis_masks: Mapping[str, Mapping[str, Mask]], type_str: str, *, rule: str | None = None,
                 gamma: float | Mapping[str, float] | None = None) -> Mask | GateMask:
    """The mask of an MBTI type from ``{axis set: {pole: mask}}`` (e.g. each axis's ``build_masks`` output):
    the type's pole mask on each of the four axes, composed by :func:`compose_masks` and named after the type."""
    t = check_type(type_str)
    missing = [a for a, _, _ in MBTI_AXES if a not in axis_masks]
    if missing:
        raise ComposeError(f"composing {t} needs the masks of every MBTI axis; missing {', '.join(missing)}")
    parts = {}
    for axis, pole in mbti_type_poles(t).items():
        if pole not in axis_masks[axis]:
            raise ComposeError(f"{axis}: no mask for pole {pole!r} (have {', '.join(axis_masks[axis])})")
        parts[axis] = axis_masks[axis][pole]
    return compose_masks(parts, rule=rule, gamma=gamma, pole=t)


# --------------------------------------------------------------------------------------------
# Steering


def compose_steering(vectors: Mapping[str, Tensor], signs: Mapping[str, float] | str, *,
                     layers: Mapping[str, int] | None = None) -> Tensor:
    """``Σ_i s_i v_i`` over the parts (``[d_model]`` or ``[layer, d_model]`` each, one shape), summed in float64
    and returned in the first vector's dtype. ``signs``: ``{part: s_i}`` or an MBTI type (:func:`type_signs`).
    ``layers`` (``{part: layer}``): where each vector was taken; they must all be the same layer."""
    if isinstance(signs, str):
        signs = type_signs(signs)
    if not vectors:
        raise ComposeError("no steering vectors to compose")
    if set(vectors) != set(signs):
        raise ComposeError(f"vectors and signs name different parts: {sorted(vectors)} vs {sorted(signs)}")
    if layers is not None and len({layers[k] for k in vectors}) > 1:
        raise ComposeError(f"steering vectors from different layers cannot be summed: {dict(layers)}")
    shapes = {tuple(v.shape) for v in vectors.values()}
    if len(shapes) > 1:
        raise ComposeError(f"steering vectors of different shapes: {sorted(shapes)}")
    first = next(iter(vectors.values()))
    total = sum(float(signs[k]) * v.double() for k, v in vectors.items())
    return total.to(first.dtype)


# --------------------------------------------------------------------------------------------
# Building the axes


def build_axis_masks(model: Model, method: str, *, sparsity: float | None = None, calib_size: int | None = None,
                     tokens: str = "answer", batch_size: int = 16, seed: int = 0, progress: bool = False,
                     **mask_kwargs) -> dict[str, dict[str, Mask]]:
    """``{axis set: {pole: mask}}`` for every bundled MBTI axis: each axis's calibration items recorded and its
    masks built by :func:`~persona_circuits.masks.build.build_masks` (``mask_kwargs``: statistic, modules, phi, tau,
    text_stat), all at the same method and strength. Four calibration passes."""

    out = {}
    for axis, _, _ in MBTI_AXES:
        ps = load_persona_set(axis)
        sigs = record_persona_signatures(model, ps, calib_size=calib_size, tokens=tokens, batch_size=batch_size,
                                         progress=progress)
        out[axis] = build_masks(model, method, sigs, sparsity=sparsity, seed=seed, **mask_kwargs)
    return out
