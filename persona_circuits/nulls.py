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

:func:`null_test` compares the real contrast with the null draws' contrasts: persona-specific when
the contrast lies above the one-sided 95 % *prediction* bound of a new null draw,
``mean + t(0.95, K−1) · sd · sqrt(1 + 1/K)`` (a normal-theory bound that accounts for estimating the
null's mean and spread from ``K`` draws; with ``K = 2`` the factor is 7.7 sd, with ``K = 10`` it is
1.9 sd), and its own bootstrap interval excludes 0. The distance in null standard deviations and a
permutation p-value ``(1 + #{null ≥ shift}) / (K + 1)`` are reported next to it; the p-value cannot go
below ``1 / (K + 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from .errors import MaskError
from .masks import Mask, build_masks, random_like
from .statistics import ActivationSignature, PerTextStats

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


def null_mask_pairs(model, method: str, stats_a: PerTextStats, stats_b: PerTextStats, *, draws: int, seed: int = 0,
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


@dataclass
class NullTest:
    """A pole contrast against its null draws."""

    shift: float
    null_shift_mean: float | None
    null_shift_sd: float | None
    null_draws: int
    null_threshold: float | None
    null_z: float | None
    null_p_value: float | None
    persona_specific: bool

    def to_dict(self) -> dict:
        return asdict(self)


def null_test(shift: float, null_shifts: Sequence[float], *, shift_ci95: tuple[float, float] | None = None,
              level: float = 0.95) -> NullTest:
    """Is ``shift`` above what the null draws produce? (see the module docstring for the rule)."""
    from scipy import stats

    x = np.asarray(list(null_shifts), dtype=float)
    k = len(x)
    if k == 0:
        return NullTest(shift, None, None, 0, None, None, None, False)
    mean = float(x.mean())
    p = float((1 + (x >= shift).sum()) / (k + 1))
    if k < 2:
        return NullTest(shift, mean, None, k, None, None, p, False)
    sd = float(x.std(ddof=1))
    thr = mean + float(stats.t.ppf(level, k - 1)) * sd * math.sqrt(1 + 1 / k)
    z = (shift - mean) / sd if sd > 0 else (math.inf if shift > mean else -math.inf if shift < mean else 0.0)
    ci_ok = shift_ci95 is None or shift_ci95[0] > 0
    return NullTest(shift, mean, sd, k, thr, float(z), p, bool(shift > thr and ci_ok))
