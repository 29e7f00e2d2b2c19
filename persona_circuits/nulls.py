"""Null conditions for the pole contrast, and the test that calls a contrast persona-specific.

Any two different masks move the model's per-token preference between two answers consistently across
items, so a pole contrast whose interval excludes 0 says only that the two conditions differ. The
question is whether the *persona* moves it. Nulls answer it by building the same kind of condition
from data that carries no persona difference:

* **label-swapped pairs** (:func:`label_swapped_signatures`, :func:`null_mask_pairs`): each
  calibration item's two answers are assigned to two pseudo-poles by a fair coin, and the same method
  at the same strength builds a mask pair from the pseudo-poles. Per-text statistics are reused, so a
  draw costs no forward pass. Swapping every coin gives the negated contrast, so the null is centred
  on 0 by construction;
* **random-direction steering** of the same norm as the persona vector (:func:`random_directions`);
* **random mask pairs** with the same per-row density as each pole's mask (:func:`random_pairs_like`).

:func:`null_test` compares the real contrast with the null draws' contrasts. Two centres:

* ``center="estimated"``: the normal-theory one-sided 95 % *prediction* bound of a new null draw,
  ``mean + t(0.95, K−1) · sd · sqrt(1 + 1/K)`` (the null's mean and spread estimated from the ``K``
  draws; with ``K = 2`` the factor is 7.7 sd, with ``K = 10`` it is 1.9 sd);
* ``center="zero"``: the null is known to be centred on 0, so only its spread is estimated,
  ``σ̂₀ = sqrt(Σ x_k² / K)`` (``K`` degrees of freedom), and the bound is ``t(0.95, K) · σ̂₀``.

**Why label-swapped nulls are centred on 0, exactly.** A draw is a vector of fair coins, one per
calibration item. Its complement (every coin flipped) is an equally likely draw that assigns every text
to the other pseudo-pole, so it builds the same two masks (or steering directions) with their pole labels
exchanged: every per-item contrast changes sign, ``d_i → −d_i``, bit for bit (the masks of a pair are
built by the same code from exchanged inputs; ``tests/test_nulls.py`` checks it). The distribution of
the null contrast over draws is therefore symmetric about 0. A damage-matched draw keeps this: the mean
damage of a pair does not depend on which mask is called A, so both a draw and its complement are brought
to the same strength. The same holds for random steering directions (``v`` and ``−v`` are equally likely).
What the argument does not cover is a bug or an asymmetry in how a particular run builds its draws, so
it is tested on the data: every null test reports ``null_mean_t``, the t statistic of the draws' mean
against 0, and the study pools these over its rows (:func:`symmetry_check`) before it uses the zero
centre; where the pooled check rejects, it falls back to the estimated centre.

A contrast is persona-specific when it lies above the bound and its own bootstrap interval excludes 0.
``p_value`` is the one-sided p-value of the same t reference (so ``p < 0.05`` exactly when the contrast
is above the bound); it is continuous, which a multiple-comparison adjustment (:func:`holm`) needs. The
permutation p-value ``(1 + #{null ≥ shift}) / (K + 1)`` is reported next to it; it cannot go below
``1 / (K + 1)``. ``detectable_shift`` is the bound itself: the smallest contrast this test could have
called persona-specific, so a "no" reads "not detectable above +0.xx".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from .errors import MaskError
from .masks import Mask, build_masks, random_like
from .statistics import ActivationSignature, PerTextStats

if TYPE_CHECKING:
    from .models import Model

NULL_KINDS = ("label-swapped", "random-mask", "random-steering")


def label_swap_indices(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Row indices into ``concat(pole A texts, pole B texts)`` of two pseudo-poles.

    Item ``i`` gives its pole-A text to pseudo-pole A and its pole-B text to pseudo-pole B, or, with
    probability 1/2, the other way round.
    """
    g = torch.Generator().manual_seed(int(seed))
    swap = torch.rand(n, generator=g) < 0.5
    i = torch.arange(n)
    return torch.where(swap, i + n, i), torch.where(swap, i, i + n)


def label_swapped_signatures(stats_a: PerTextStats, stats_b: PerTextStats, *, draws: int, seed: int = 0,
                             poles: Sequence[str] = ("A", "B"), dataset: str | None = None,
                             calibration_hash: str = "") -> list[dict[str, ActivationSignature]]:
    """``draws`` label-swapped signature pairs (keyed by the real pole names) from per-text statistics.

    ``stats_a`` and ``stats_b`` must hold the two answers of the same calibration items, row by row.
    """
    if len(stats_a) != len(stats_b):
        raise MaskError(f"label swapping needs both answers of every calibration item: {len(stats_a)} vs {len(stats_b)} texts")
    both = stats_a.concat(stats_b)
    out = []
    for d in range(draws):
        ia, ib = label_swap_indices(len(stats_a), seed + d)
        h = f"{calibration_hash}:swap{seed + d}"
        out.append({poles[0]: both.signature(ia, pole=poles[0], dataset=dataset, calibration_hash=h),
                    poles[1]: both.signature(ib, pole=poles[1], dataset=dataset, calibration_hash=h)})
    return out


def null_mask_pairs(model: Model, method: str, stats_a: PerTextStats, stats_b: PerTextStats, *, draws: int, seed: int = 0,
                    poles: Sequence[str] = ("A", "B"), dataset: str | None = None, calibration_hash: str = "",
                    **mask_kwargs) -> list[dict[str, Mask]]:
    """Label-swapped null mask pairs of ``method`` at the same strength (``mask_kwargs`` as :func:`build_masks`)."""
    out = []
    for d, sigs in enumerate(label_swapped_signatures(stats_a, stats_b, draws=draws, seed=seed, poles=poles,
                                                      dataset=dataset, calibration_hash=calibration_hash)):
        masks = build_masks(model, method, sigs, **mask_kwargs)
        for m in masks.values():
            m.config.extra.update(null="label-swapped", null_draw=d, null_seed=seed + d)
        out.append(masks)
    return out


def random_pairs_like(mask_a: Mask, mask_b: Mask, *, draws: int, seed: int = 0) -> list[dict[str, Mask]]:
    """Random mask pairs whose every row keeps as many weights as the matching pole's mask."""
    out = []
    for d in range(draws):
        pair = {}
        for j, m in enumerate((mask_a, mask_b)):
            r = random_like(m, seed=seed + 2 * d + j)
            r.config.extra.update(null="random-mask", null_draw=d)
            pair[m.config.pole or ("A", "B")[j]] = r
        out.append(pair)
    return out


def random_directions(vector: Tensor, *, draws: int, seed: int = 0) -> Tensor:
    """``[draws, d]`` directions uniform on the sphere, each with the norm of ``vector`` (steering null)."""
    g = torch.Generator().manual_seed(int(seed))
    r = torch.randn(draws, vector.numel(), generator=g, dtype=torch.float64)
    r = r / r.norm(dim=1, keepdim=True) * float(vector.double().norm())
    return r.to(vector.dtype).reshape(draws, *vector.shape)


def label_swapped_directions(features_a: Tensor, features_b: Tensor, *, draws: int, seed: int = 0) -> Tensor:
    """``[draws, layer, d_model]`` difference-of-means directions of label-swapped pseudo-poles: the steering
    counterpart of :func:`label_swapped_signatures` (same coins for the same ``seed``).

    ``features_a`` and ``features_b`` (``[n, layer, d_model]``) hold the two answers of the same
    calibration items, row by row.
    """
    if len(features_a) != len(features_b):
        raise MaskError(f"label swapping needs both answers of every calibration item: {len(features_a)} vs {len(features_b)} texts")
    both = torch.cat([features_a, features_b])
    out = []
    for d in range(draws):
        ia, ib = label_swap_indices(len(features_a), seed + d)
        out.append(both[ia].mean(0) - both[ib].mean(0))
    return torch.stack(out) if out else both.new_zeros((0, *both.shape[1:]))


CENTERS = ("estimated", "zero")


@dataclass
class NullTest:
    """A pole contrast against its null draws (see the module docstring for the rule)."""

    shift: float
    null_shift_mean: float | None
    null_shift_sd: float | None
    null_draws: int
    null_threshold: float | None
    null_z: float | None
    null_p_value: float | None  # permutation p-value, (1 + #{null >= shift}) / (K + 1)
    persona_specific: bool
    center: str = "estimated"
    p_value: float | None = None  # t reference of the bound: p < 0.05 exactly when shift > null_threshold
    detectable_shift: float | None = None
    null_mean_t: float | None = None  # the draws' mean against 0 (the symmetry check)

    def to_dict(self) -> dict:
        return asdict(self)


def null_test(shift: float, null_shifts: Sequence[float], *, shift_ci95: tuple[float, float] | None = None,
              level: float = 0.95, center: str = "estimated") -> NullTest:
    """Is ``shift`` above what the null draws produce? (see the module docstring for the rule).

    Args:
        shift: the real condition's contrast (e.g. :attr:`ContrastResult.shift`).
        null_shifts: the same contrast of each null draw, on the same items.
        shift_ci95: the real contrast's interval over items, stored with the result.
        level: the one-sided confidence of the bound.
        center: ``"estimated"`` (the null mean is estimated from the draws) or ``"zero"`` (the null is taken as
            centred at 0, which label swapping implies; check it with :func:`symmetry_check` first).

    Returns:
        A :class:`NullTest`: the bound, the verdict, a t-based p-value and the smallest detectable shift.
    """
    from scipy import stats

    if center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}, got {center!r}")
    x = np.asarray(list(null_shifts), dtype=float)
    k = len(x)
    if k == 0:
        return NullTest(shift, None, None, 0, None, None, None, False, center)
    mean = float(x.mean())
    perm = float((1 + (x >= shift).sum()) / (k + 1))
    if k < 2:
        return NullTest(shift, mean, None, k, None, None, perm, False, center)
    sd = float(x.std(ddof=1))
    mean_t = mean / (sd / math.sqrt(k)) if sd > 0 else 0.0
    if center == "zero":
        loc, scale, df = 0.0, float(math.sqrt((x ** 2).mean())), k
    else:
        loc, scale, df = mean, sd * math.sqrt(1 + 1 / k), k - 1
    thr = loc + float(stats.t.ppf(level, df)) * scale
    z = (shift - mean) / sd if sd > 0 else (math.inf if shift > mean else -math.inf if shift < mean else 0.0)
    p = float(stats.t.sf((shift - loc) / scale, df)) if scale > 0 else (0.0 if shift > loc else 1.0)
    ci_ok = shift_ci95 is None or shift_ci95[0] > 0
    return NullTest(shift, mean, sd, k, thr, float(z), perm, bool(shift > thr and ci_ok), center, p, thr, float(mean_t))


def symmetry_check(mean_ts: Sequence[float], draws: Sequence[int]) -> dict:
    """Pooled test that null draws are centred on 0: each row's ``null_mean_t`` (t with ``K − 1`` degrees of
    freedom) is turned into a two-sided p-value and a z score; Stouffer's ``Σz / sqrt(n)`` tests a common
    shift of the centre, and the share of rows with ``p < 0.05`` is reported next to the 5 % expected."""
    from scipy import stats

    t = np.asarray(mean_ts, float)
    k = np.asarray(draws, float)
    if len(t) == 0:
        return {"n_rows": 0, "stouffer_z": None, "p_value": None, "share_rejected": None, "centered": True}
    p_one = stats.t.sf(t, k - 1)
    z = stats.norm.isf(np.clip(p_one, 1e-300, 1.0))
    zs = float(z.sum() / math.sqrt(len(z)))
    p = float(2 * stats.norm.sf(abs(zs)))
    rejected = float((2 * np.minimum(p_one, 1 - p_one) < 0.05).mean())
    return {"n_rows": int(len(t)), "stouffer_z": zs, "p_value": p, "share_rejected": rejected, "centered": bool(p >= 0.05)}


def holm(p_values: Sequence[float | None], *, alpha: float = 0.05) -> tuple[list[float | None], list[bool | None]]:
    """Holm's step-down adjustment of a family of p-values (``None`` entries are left out of the family).

    Sorted ascending, ``p_(i)`` (``i = 1..m``) is adjusted to ``max_{j ≤ i} min(1, (m − j + 1) p_(j))``; a
    test is rejected when its adjusted p-value is below ``alpha``. Controls the family-wise error rate at
    ``alpha`` under any dependence between the tests. Returns ``(adjusted p-values, rejected)`` in input order.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    adj: list[float | None] = [None] * len(p_values)
    rej: list[bool | None] = [None] * len(p_values)
    if not idx:
        return adj, rej
    p = np.asarray([p_values[i] for i in idx], float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    for j, i in enumerate(idx):
        adj[i] = float(out[j])
        rej[i] = bool(out[j] < alpha)
    return adj, rej
