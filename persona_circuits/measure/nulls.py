"""Null conditions for the pole contrast, and the test that calls a contrast persona-specific.

Any two different masks move the model's per-token preference between two answers consistently across
items, so a pole contrast whose interval excludes 0 says only that the two conditions differ. The
question is whether the *persona* moves it. Nulls answer it by building the same kind of condition
from data that carries no persona difference:

* **label-swapped pairs** (:func:`label_swapped_signatures`, :func:`null_mask_pairs`): each
  calibration item's two answers are assigned to two pseudo-poles, exactly ``⌊n/2⌋`` items swapped
  (``swap="balanced"``, the default) or one fair coin per item (``swap="coins"``, the older design), and
  the same method at the same strength builds a mask pair from the pseudo-poles. Per-text statistics are
  reused, so a draw costs no forward pass. Swapping every item gives the negated contrast, so the null is
  centred on 0 by construction;
* **random-direction steering** of the same norm as the persona vector (:func:`random_directions`);
* **random mask pairs** with the same per-row density as each pole's mask (:func:`random_pairs_like`).

:func:`null_test` compares the real contrast with the null draws' contrasts. Two centres:

* ``center="estimated"``: the normal-theory one-sided 95 % *prediction* bound of a new null draw,
  ``mean + t(0.95, K−1) · sd · sqrt(1 + 1/K)`` (the null's mean and spread estimated from the ``K``
  draws; with ``K = 2`` the factor is 7.7 sd, with ``K = 10`` it is 1.9 sd);
* ``center="zero"``: the null is known to be centred on 0, so only its spread is estimated,
  ``σ̂₀ = sqrt(Σ x_k² / K)`` (``K`` degrees of freedom), and the bound is ``t(0.95, K) · σ̂₀``.

**Balanced swaps: a sign-flip test whose draws carry no persona.** Write item ``i``'s two calibration
texts' difference (pole A minus pole B, in any statistic that is a mean over texts: a residual, a
signature's moments) as ``δ_i = μ + ε_i``, ``μ`` the persona and ``ε_i`` the item's own part. A draw with
signs ``s_i = ±1`` (``−1``: item swapped) gives pseudo-poles whose difference of means is
``(1/n) Σ s_i δ_i = (S/n) μ + (1/n) Σ s_i ε_i`` with ``S = Σ s_i``. With fair coins ``S`` is of order
``√n``, so every draw carries a random-sign share ``(S/n) μ`` of the persona, of the same order as its noise
part: the null spread grows with ``|μ|`` and a draw brought to the real pair's damage (a strength several
times the real one) can carry as much persona as the real pair. With exactly ``⌊n/2⌋`` items swapped, ``S =
0`` for even ``n`` (``S = 1`` for odd ``n``: a share ``μ/n``), so the mean share is gone; what stays is
``(1/n) Σ s_i ε_i``, the spread of the items' own persona projections, as in a paired test, which is the
right null. How much the null shrinks depends on the items' signal-to-noise, so the study reports it per set
and lets the calibration decide (below).

*Validity under the null hypothesis.* Under H0 (no persona: ``μ = 0``, and the items' two texts
exchangeable) every relabelling has the same distribution as the real labelling, so the real pair is one
more draw of the same distribution: coins and balanced swaps are both valid sign-flip tests. A balanced draw
conditions on ``S = 0``; the real labelling has ``S = n``, and under H0 a draw's statistic depends on ``S``
only through terms of order ``1/n`` (the ``ε_i`` are centred and their signs independent of the rest up to
the constraint ``Σ s_i = 0``, which correlates two signs at ``−1/(n−1)``), so the balanced reference is valid
up to ``O(1/n)``. The known caveat (Southworth, Kim & Owen 2009, *Properties of balanced permutations*,
J. Comput. Biol. 16): a reference built from balanced permutations alone is not a group, and its tests can
be anti-conservative, markedly so for small ``n`` and small ``α``. The study does not take this on trust: every
balanced draw is itself a placebo (a relabelling under which the poles differ by nothing), tested against the
row's other draws exactly as the real pair is (:func:`loo_z`), and the share of placebos called
persona-specific is the measured false-positive rate (``results["calibration"]``,
:mod:`persona_circuits.study.primary`).

**Why label-swapped nulls are centred on 0, exactly (antithetic draws).** A draw's complement (every item's
assignment flipped: pseudo-poles A and B exchanged) assigns every text to the other pseudo-pole, so it builds
the same two masks (or steering directions) with their pole labels exchanged: every per-item contrast changes
sign, ``d_i → −d_i``, bit for bit (the masks of a pair are built by the same code from exchanged inputs;
``tests/measure/test_nulls.py`` checks it on a tiny model, :func:`complement`). Under balanced swaps with even ``n`` the
complement of a draw is as likely as the draw itself (``⌊n/2⌋ = n − ⌊n/2⌋``), and under coins always, so the
null distribution of the contrast is symmetric about 0 by construction, and a damage-matched draw keeps this
(the mean damage of a pair does not depend on which mask is called A). The study therefore uses the zero
centre: the spread is ``σ̂₀ = sqrt(Σ x_k² / K)`` (``K`` degrees of freedom), and the contrast's ``z`` is
``shift / σ̂₀``. The pooled Stouffer check of the draws' means (:func:`symmetry_check`) is no longer a
pre-check (the rows' draws now have their own seeds, and the antithetic argument does not need it); it is kept
for older results. Random steering directions are symmetric the same way (``v`` and ``−v`` are equally likely).

**Seeds.** :func:`derive_seed` gives every row, type test, atlas set and paper-table condition its own seed
from the study seed and the row's identity (a hash, stable across processes and machines), so their draws are
independent and their verdicts can be combined.

A contrast is persona-specific when it lies above the bound and its own bootstrap interval excludes 0.
``p_value`` is the one-sided p-value of the same t reference (so ``p < 0.05`` exactly when the contrast
is above the bound); it is continuous, which a multiple-comparison adjustment (:func:`holm`) needs. The
permutation p-value ``(1 + #{null ≥ shift}) / (K + 1)`` is reported next to it; it cannot go below
``1 / (K + 1)``. ``detectable_shift`` is the bound itself: the smallest contrast this test could have
called persona-specific, so a "no" reads "not detectable above +0.xx".
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from ..errors import MaskError
from ..masks.build import Mask, random_like
from ..masks.registry import build_masks
from ..masks.statistics import ActivationSignature, PerTextStats

if TYPE_CHECKING:
    from ..model.loading import Model

NULL_KINDS = ("label-swapped", "random-mask", "random-steering")


SWAPS = ("balanced", "coins")


def derive_seed(study_seed: int, *parts: str | int | float) -> int:
    """A 63-bit seed of ``parts`` (a row's identity, e.g. ``("matched", set, method, target)``) under the study
    seed: SHA-256 of their text, never Python's salted ``hash()``, so it is the same in every process."""

    text = "\x1f".join([str(int(study_seed)), *(repr(p) if isinstance(p, float) else str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def label_swap_indices(n: int, seed: int, swap: str = "balanced") -> tuple[Tensor, Tensor]:
    """Row indices into ``concat(pole A texts, pole B texts)`` of two pseudo-poles.

    Item ``i`` gives its pole-A text to pseudo-pole A and its pole-B text to pseudo-pole B, or, when it is
    swapped, the other way round. ``swap="balanced"``: exactly ``⌊n/2⌋`` items swapped, the set chosen
    uniformly (a seeded random permutation); ``"coins"``: each item swapped by its own fair coin (the older
    design, whose draws carry a random share of the persona: see the module docstring).
    """
    if swap not in SWAPS:
        raise MaskError(f"swap must be one of {SWAPS}, got {swap!r}")
    g = torch.Generator().manual_seed(int(seed) % (2 ** 63))
    if swap == "coins":
        flip = torch.rand(n, generator=g) < 0.5
    else:
        flip = torch.zeros(n, dtype=torch.bool)
        flip[torch.randperm(n, generator=g)[: n // 2]] = True
    i = torch.arange(n)
    return torch.where(flip, i + n, i), torch.where(flip, i, i + n)


def complement(ia: Tensor, ib: Tensor) -> tuple[Tensor, Tensor]:
    """The antithetic draw of ``(ia, ib)``: every item's assignment flipped (the two pseudo-poles exchanged)."""
    return ib, ia


def label_swapped_signatures(stats_a: PerTextStats, stats_b: PerTextStats, *, draws: int, seed: int = 0,
                             poles: Sequence[str] = ("A", "B"), dataset: str | None = None,
                             calibration_hash: str = "", swap: str = "balanced") -> list[dict[str, ActivationSignature]]:
    """``draws`` label-swapped signature pairs (keyed by the real pole names) from per-text statistics.

    ``stats_a`` and ``stats_b`` must hold the two answers of the same calibration items, row by row. Draw ``d``
    uses ``label_swap_indices(n, seed + d, swap)``.
    """
    if len(stats_a) != len(stats_b):
        raise MaskError(f"label swapping needs both answers of every calibration item: {len(stats_a)} vs {len(stats_b)} texts")
    both = stats_a.concat(stats_b)
    out = []
    for d in range(draws):
        ia, ib = label_swap_indices(len(stats_a), seed + d, swap)
        h = f"{calibration_hash}:swap{seed + d}" + ("" if swap == "coins" else f":{swap}")
        out.append({poles[0]: both.signature(ia, pole=poles[0], dataset=dataset, calibration_hash=h),
                    poles[1]: both.signature(ib, pole=poles[1], dataset=dataset, calibration_hash=h)})
    return out


def null_mask_pairs(model: Model, method: str, stats_a: PerTextStats, stats_b: PerTextStats, *, draws: int, seed: int = 0,
                    poles: Sequence[str] = ("A", "B"), dataset: str | None = None, calibration_hash: str = "",
                    swap: str = "balanced", **mask_kwargs) -> list[dict[str, Mask]]:
    """Label-swapped null mask pairs of ``method`` at the same strength (``mask_kwargs`` as :func:`build_masks`)."""
    out = []
    for d, sigs in enumerate(label_swapped_signatures(stats_a, stats_b, draws=draws, seed=seed, poles=poles,
                                                      dataset=dataset, calibration_hash=calibration_hash, swap=swap)):
        masks = build_masks(model, method, sigs, **mask_kwargs)
        for m in masks.values():
            m.config.extra.update(null="label-swapped", null_draw=d, null_seed=seed + d, null_swap=swap)
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


def label_swapped_directions(features_a: Tensor, features_b: Tensor, *, draws: int, seed: int = 0,
                             swap: str = "balanced") -> Tensor:
    """``[draws, layer, d_model]`` difference-of-means directions of label-swapped pseudo-poles: the steering
    counterpart of :func:`label_swapped_signatures` (same swaps for the same ``seed`` and ``swap``).

    ``features_a`` and ``features_b`` (``[n, layer, d_model]``) hold the two answers of the same
    calibration items, row by row.
    """
    if len(features_a) != len(features_b):
        raise MaskError(f"label swapping needs both answers of every calibration item: {len(features_a)} vs {len(features_b)} texts")
    both = torch.cat([features_a, features_b])
    out = []
    for d in range(draws):
        ia, ib = label_swap_indices(len(features_a), seed + d, swap)
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


def zero_z(shift: float, null_shifts: Sequence[float]) -> tuple[float | None, float | None, int]:
    """``(z, p, df)`` of a contrast against zero-centred null draws: ``z = shift / σ̂₀`` with
    ``σ̂₀ = sqrt(Σ x_k² / K)``, one-sided ``p = P(t_K > z)`` (exact when the draws and the contrast are
    independent normals of the same spread, which the calibration checks); ``(None, None, K)`` for ``K < 2``."""

    x = np.asarray(list(null_shifts), float)
    k = len(x)
    if k < 2:
        return None, None, k
    rms = float(np.sqrt((x ** 2).mean()))
    z = shift / rms if rms > 0 else (math.inf if shift > 0 else -math.inf if shift < 0 else 0.0)
    return float(z), float(stats.t.sf(z, k)), k


def loo_z(null_shifts: Sequence[float]) -> np.ndarray:
    """Each draw as a placebo, tested like the real pair: draw ``k``'s contrast over the null RMS of the *other*
    ``K − 1`` draws (so numerator and denominator are independent, as they are for the real pair); under the
    null each is a ``t`` with ``K − 1`` degrees of freedom. ``[K]`` z values (empty for ``K < 3``)."""
    x = np.asarray(list(null_shifts), float)
    k = len(x)
    if k < 3:
        return np.zeros(0)
    rest = np.sqrt(np.maximum((x ** 2).sum() - x ** 2, 0.0) / (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rest > 0, x / rest, np.sign(x) * np.inf)


_GRID_HALF, _GRID_STEP = 400.0, 0.02


@functools.lru_cache(maxsize=32)
def _t_sum_cdf(dfs: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Grid and CDF of the sum of independent ``t`` variables with degrees of freedom ``dfs`` (FFT
    convolution of their densities on ``[−400, 400]`` at step 0.02; the tail beyond is below 1e-6 for
    ``df ≥ 2``)."""

    x = np.arange(-_GRID_HALF, _GRID_HALF + _GRID_STEP / 2, _GRID_STEP)
    size = len(dfs) * (len(x) - 1) + 1
    n_fft = 1 << (size - 1).bit_length()
    spec = np.ones(n_fft // 2 + 1, complex)
    for df in dfs:
        spec *= np.fft.rfft(stats.t.pdf(x, df) * _GRID_STEP, n_fft)
    mass = np.clip(np.fft.irfft(spec, n_fft)[:size], 0.0, None)
    grid = len(dfs) * x[0] + _GRID_STEP * np.arange(size)
    return grid, (np.cumsum(mass) - mass / 2) / mass.sum()  # each grid point holds half its cell's mass


def mean_t_sf(value: float, dfs: Sequence[int]) -> float:
    """``P(mean of independent t_{df} > value)``, one ``df`` per term: the reference of a mean of ``z`` values
    of independent rows (a single term is Student's ``t``)."""

    dfs = tuple(sorted(int(d) for d in dfs))
    if not dfs:
        raise ValueError("mean_t_sf needs at least one term")
    if len(dfs) == 1:
        return float(stats.t.sf(value, dfs[0]))
    if not math.isfinite(value):
        return 0.0 if value > 0 else 1.0
    grid, cdf = _t_sum_cdf(dfs)
    return float(min(1.0, max(0.0, 1.0 - np.interp(value * len(dfs), grid, cdf))))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """The exact (Clopper-Pearson) two-sided binomial interval of ``k`` successes in ``n`` independent trials."""

    if n <= 0:
        return None
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return [lo, hi]
