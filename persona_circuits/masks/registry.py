"""The mask methods by name, and :func:`build_masks`, which builds any of them.

Each method is a :class:`MaskMethod`: whether it needs a persona pair (the contrastive methods and the
projection gate select one pole's weights against the other's) and a builder ``(model, signatures, options)
-> {pole: Mask}``. :data:`REGISTRY` holds the package's methods, one per name of
:data:`~persona_circuits.options.METHODS` (the command line's ``--method`` choices), and
:func:`register_mask_method` adds one: a researcher's own method is then built, saved, loaded, applied and dialled
(:func:`~persona_circuits.measure.dials.mask_dial`) like the paper's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor

from ..errors import MaskError
from ..model.loading import Model
from ..options import DEFAULT_SPARSITY, METHODS
from .build import (Mask, contrastive_removal_masks, contrastive_sparse_masks, contrastive_wanda_masks, random_mask,
                    wanda_mask)
from .gate import projection_gate_masks
from .statistics import DEFAULT_STATISTIC, DEFAULT_TEXT_STAT, ActivationSignature


@dataclass(frozen=True)
class MaskOptions:
    """What :func:`build_masks` passes to a builder (each builder reads the fields its method uses).

    Args:
        sparsity: the method's strength dial (fraction removed per row; the removed fraction of
            ``contrastive-removal``; the gate strength ``s`` of ``projection-gate``).
        statistic: the activation statistic of ``|W| · a``.
        modules: ``"all"``, ``"attn"`` or ``"mlp"``.
        phi: the contrastive score's non-linearity.
        tau: the contrastive score's temperature.
        seed: the draw of ``random``.
        text_stat: the per-text statistic of the contrastive z-score.
        directions: ``[n_layers, d_model]`` pole A's minus pole B's mean residual after every block
            (``projection-gate`` only).
    """

    sparsity: float
    statistic: str = DEFAULT_STATISTIC
    modules: str = "all"
    phi: str = "relu"
    tau: float = 2.0
    seed: int = 0
    text_stat: str = DEFAULT_TEXT_STAT
    directions: Tensor | None = None


#: ``(model, {pole: signature}, options) -> {pole: Mask}``
Builder = Callable[[Model, Mapping[str, ActivationSignature], MaskOptions], dict[str, Mask]]


@dataclass(frozen=True)
class MaskMethod:
    """One mask method.

    Args:
        name: the method's name (``build_masks(model, name, ...)``).
        pair: whether it needs exactly two poles.
        build: the builder (:data:`Builder`).
        default_sparsity: the strength ``build_masks`` uses when none is given.
    """

    name: str
    pair: bool
    build: Builder
    default_sparsity: float


def _wanda(model, sigs, o: MaskOptions) -> dict[str, Mask]:
    return {p: wanda_mask(model, s, sparsity=o.sparsity, statistic=o.statistic, modules=o.modules) for p, s in sigs.items()}


def _random(model, sigs, o: MaskOptions) -> dict[str, Mask]:
    return {p: random_mask(model, sparsity=o.sparsity, modules=o.modules, seed=o.seed + i, pole=p)
            for i, p in enumerate(sigs)}


def _pair(fn: Callable[..., tuple[Mask, Mask]]) -> Builder:
    """A builder from a pair function ``fn(model, sig_a, sig_b, options) -> (mask_a, mask_b)``."""

    def build(model, sigs, o: MaskOptions) -> dict[str, Mask]:
        (pa, a), (pb, b) = sigs.items()
        ma, mb = fn(model, a, b, o)
        return {pa: ma, pb: mb}

    return build


def _gate(model, a, b, o: MaskOptions):
    if o.directions is None:
        raise MaskError("projection-gate needs the residual directions (directions=[n_layers, d_model])")
    return projection_gate_masks(model, a, b, o.directions, strength=o.sparsity, modules=o.modules)


def _contrastive(fn):
    return lambda model, a, b, o: fn(model, a, b, sparsity=o.sparsity, phi=o.phi, tau=o.tau, modules=o.modules,
                                     text_stat=o.text_stat)


def _sparse(variant: str):
    return lambda model, a, b, o: contrastive_sparse_masks(model, a, b, sparsity=o.sparsity, statistic=o.statistic,
                                                           modules=o.modules, variant=variant)


_BUILDERS: dict[str, tuple[bool, Builder]] = {
    "wanda": (False, _wanda),
    "contrastive-wanda": (True, _pair(_contrastive(contrastive_wanda_masks))),
    "contrastive-sparse": (True, _pair(_sparse("paper"))),
    "contrastive-sparse-released": (True, _pair(_sparse("released"))),
    "contrastive-removal": (True, _pair(_contrastive(contrastive_removal_masks))),
    "random": (False, _random),
    "projection-gate": (True, _pair(_gate)),
}
#: name -> method, for every name of :data:`~persona_circuits.options.METHODS` (in that order)
REGISTRY: dict[str, MaskMethod] = {m: MaskMethod(m, *_BUILDERS[m], DEFAULT_SPARSITY[m]) for m in METHODS}


def register_mask_method(method: MaskMethod, *, replace: bool = False) -> MaskMethod:
    """Add ``method`` to :data:`REGISTRY` (``replace``: allow a name already there). Returns it.

    Raises:
        MaskError: the name is taken and ``replace`` is false.
    """
    if method.name in REGISTRY and not replace:
        raise MaskError(f"mask method {method.name!r} is already registered (replace=True to replace it)")
    REGISTRY[method.name] = method
    return method


def build_masks(model: Model, method: str, signatures: Mapping[str, ActivationSignature], *, sparsity: float | None = None,
                statistic: str = DEFAULT_STATISTIC, modules: str = "all", phi: str = "relu", tau: float = 2.0,
                seed: int = 0, text_stat: str = DEFAULT_TEXT_STAT, directions: Tensor | None = None) -> dict[str, Mask]:
    """Masks of every pole for ``method`` (a name of :data:`REGISTRY`), keyed by pole name.

    ``sparsity`` is the method's strength dial: the fraction removed per row (keep-masks), or the
    fraction of top opposite-pole weights removed per row (``contrastive-removal``), or the gate strength
    ``s`` of ``projection-gate`` (its selected weights are applied with ``gamma = 1 − s``:
    :mod:`~persona_circuits.masks.gate`).

    Args:
        model: the loaded model (:func:`~persona_circuits.model.loading.load_model`); only its weights are read.
        method: ``wanda``, ``contrastive-wanda``, ``contrastive-sparse``, ``contrastive-sparse-released``,
            ``contrastive-removal``, ``random``, ``projection-gate``, or a method added with :func:`register_mask_method`.
        signatures: ``{pole: ActivationSignature}`` from
            :func:`~persona_circuits.masks.statistics.record_persona_signatures` (any number of poles for
            ``wanda`` and ``random``; the pair methods need exactly two).
        sparsity: the strength dial above; ``None`` takes the method's default (``default_sparsity``).
        statistic, text_stat: the activation statistic of ``|W| · a`` and the per-text statistic of the z-score.
        modules: ``"all"``, ``"attn"`` or ``"mlp"``: which linear layers get a mask (the others stay dense).
        phi, tau: the contrastive score's non-linearity and temperature.
        seed: for ``random`` only.
        directions: for ``projection-gate`` only (required): pole A's minus pole B's mean residual after every
            block, ``[n_layers, d_model]`` (:func:`~persona_circuits.masks.gate.gate_directions`).

    Returns:
        ``{pole name: Mask}``.

    Raises:
        MaskError: an unknown method, the wrong number of poles for it, or ``projection-gate`` without directions.
    """
    m = REGISTRY.get(method)
    if m is None:
        raise MaskError(f"unknown method {method!r}; choose one of {tuple(REGISTRY)}")
    if m.pair and len(signatures) != 2:
        raise MaskError(f"{method} needs a persona pair (two poles), got {len(signatures)}")
    opts = MaskOptions(sparsity=m.default_sparsity if sparsity is None else sparsity, statistic=statistic,
                       modules=modules, phi=phi, tau=tau, seed=seed, text_stat=text_stat, directions=directions)
    return m.build(model, signatures, opts)
