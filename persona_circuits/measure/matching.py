"""Bring a strength dial to a target damage, fitted on one set of neutral texts and reported on another.

A matched-damage comparison asks what a method does to the persona *at a stated cost to the model*. The
cost is the KL damage on neutral text (:func:`~persona_circuits.measure.damage.kl_damage`). Two sets of neutral
texts are used, and they are disjoint:

* the **fit** texts choose the strength: :func:`fit_strengths` searches each target on them only;
* the **held-out** texts measure the damage that is reported (:func:`held_out_damage`, with a
  bootstrap interval over texts), so the reported damage is not the quantity the search minimised.

The search (:func:`fit_strengths`) uses that damage grows with strength on every dial, roughly as a power
of it. A dial's own measured points ``(s, d)`` give the next strength by log-log interpolation between the
two that bracket the target; with one point, by a step along the log-log slope of a *prior* curve (the
real pair's curve, for a null draw: null draws have the same kind of dial but no curve of their own);
with none, the prior curve's own interpolation at the target. Every point it measures serves every target
of the same dial. A target is *reached* when a measured fit damage lies within ``reach_tol`` of it (a
strength at the end of the dial's range that stays short of it is "not reached": nothing is extrapolated
into a reported number).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..results import HeldOutDamage, StrengthFit
from .damage import NeutralReference, kl_damage, ratio_ci
from .dials import Dial

if TYPE_CHECKING:
    from ..model.loading import Model

#: Fit tolerance: the search stops when the fit damage is within this relative distance of the target.
FIT_TOL = 0.10
#: A target is reached, and a held-out damage is "within tolerance", within this relative distance.
REACH_TOL = 0.25
DEFAULT_SLOPE = 2.0  # KL grows quadratically with a small perturbation


def _log_dist(d: float, target: float) -> float:
    return abs(math.log(max(d, 1e-12) / target))


def loglog_slope(points: Sequence[tuple[float, float]], damage: float) -> float:
    """``d log(damage) / d log(strength)`` of a measured curve near ``damage`` (the segment whose damages
    bracket it, else the nearest segment), clamped to [0.25, 8]; :data:`DEFAULT_SLOPE` without a segment."""
    pts = sorted((s, d) for s, d in points if s > 0 and d > 0)
    segs = [(a, b) for a, b in zip(pts, pts[1:]) if a[0] != b[0] and a[1] != b[1]]
    if not segs:
        return DEFAULT_SLOPE
    ld = math.log(max(damage, 1e-12))

    def dist(seg):
        lo, hi = sorted((math.log(seg[0][1]), math.log(seg[1][1])))
        return 0.0 if lo <= ld <= hi else min(abs(ld - lo), abs(ld - hi))

    (s0, d0), (s1, d1) = min(segs, key=dist)
    slope = (math.log(d1) - math.log(d0)) / (math.log(s1) - math.log(s0))
    return float(min(max(slope, 0.25), 8.0))


def _interpolate(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """Log-log interpolation between the two measured points (in order of strength) whose damages bracket
    ``target``; ``None`` when none do."""
    pts = sorted((s, d) for s, d in points if s > 0)
    for (s0, d0), (s1, d1) in zip(pts, pts[1:]):
        if min(d0, d1) <= target <= max(d0, d1):
            if d0 <= 0 or d1 <= 0 or d0 == d1:
                return s0 if abs(d0 - target) <= abs(d1 - target) else s1
            f = (math.log(target) - math.log(d0)) / (math.log(d1) - math.log(d0))
            return math.exp(math.log(s0) + f * (math.log(s1) - math.log(s0)))
    return None


def next_strength(own: Sequence[tuple[float, float]], prior: Sequence[tuple[float, float]], target: float,
                  dial: Dial) -> float:
    """The next strength to measure for ``target`` (see the module docstring), within the dial's range."""
    s = _interpolate(own, target)
    if s is None:
        usable = [(a, d) for a, d in own if a > 0 and d > 0]
        if usable:
            a, d = min(usable, key=lambda p: _log_dist(p[1], target))
            s = a * (target / d) ** (1.0 / loglog_slope(prior or own, d))
        else:
            s = _interpolate(prior, target)
            if s is None:
                near = [(a, d) for a, d in prior if a > 0 and d > 0]
                if not near:
                    return math.sqrt(dial.lo * dial.hi) if dial.log_scale else (dial.lo + dial.hi) / 2
                a, d = min(near, key=lambda p: _log_dist(p[1], target))
                s = a * (target / d) ** (1.0 / loglog_slope(prior, d))
    return float(min(max(s, dial.lo), dial.hi))


def pair_fit_damage(model: Model, dial: Dial, strength: float, reference: NeutralReference) -> float:
    """Mean KL damage of the dial's pair at ``strength`` on ``reference`` (no interval: a fitting step)."""
    return float(np.mean([kl_damage(model, iv, reference, n_boot=1)[0] for iv in dial.make(strength)]))


def fit_strengths(model: Model, dial: Dial, targets: Sequence[float], fit_ref: NeutralReference, *,
                  prior: Sequence[tuple[float, float]] = (), own: Sequence[tuple[float, float]] = (),
                  start: Sequence[float | None] | None = None, tol: float = FIT_TOL, reach_tol: float = REACH_TOL,
                  max_evals: int = 4) -> list[StrengthFit]:
    """For each target damage, the strength whose damage on ``fit_ref`` comes closest to it.

    Args:
        prior: ``(strength, damage)`` of a related curve (the real pair's, for a null draw), measured on
            the same fit texts: it supplies the starting strength and the log-log slope.
        own: points of this very dial already measured on the fit texts (e.g. its curve).
        start: per target, a first strength to measure when no own point brackets the target (e.g. the
            strength earlier draws of the same null needed: draws of one null are alike).
        max_evals: damage measurements per target at most (points measured for one target serve the next).
    """
    history = [(float(s), float(d)) for s, d in own]
    out = []
    for ti, target in enumerate(targets):
        if not target > 0:
            raise ValueError(f"target damage must be > 0, got {target}")
        tried: set[float] = set()
        first = start[ti] if start is not None else None
        for _ in range(max_evals):
            if any(within(d, target, tol) for _, d in history):
                break
            if first is not None and _interpolate(history, target) is None:
                s, first = float(min(max(first, dial.lo), dial.hi)), None
            else:
                s = next_strength(history, prior, target, dial)
            key = round(s, 12)
            if key in tried or any(math.isclose(s, h, rel_tol=1e-9) for h, _ in history):
                break  # the dial's end, or no progress: nothing new to measure
            tried.add(key)
            history.append((s, pair_fit_damage(model, dial, s, fit_ref)))
        if not history:
            out.append(StrengthFit(target_kl=target, reached=False))
            continue
        s, d = min(history, key=lambda h: _log_dist(h[1], target))
        ok = within(d, target, reach_tol)
        out.append(StrengthFit(target_kl=target, reached=ok, strength=s if ok else None, fit_damage_kl=d,
                               history=list(history)))
    return out


def held_out_damage(model: Model, interventions: Sequence, reference: NeutralReference, *, seed: int = 0,
                    n_boot: int = 2000) -> HeldOutDamage:
    """Mean KL damage of a pair (or any set of interventions) on ``reference``, with a bootstrap 95 %
    interval over texts of the pair's mean (both poles' per-text KL resampled together)."""
    res = [kl_damage(model, iv, reference, n_boot=1) for iv in interventions]
    per_text = np.mean([r[3] for r in res], axis=0)
    n = reference.n_pred
    return HeldOutDamage(damage_kl=float(per_text.sum() / n.sum()), damage_kl_ci95=ratio_ci(per_text, n, n_boot=n_boot, seed=seed),
                         per_pole=[float(r[0]) for r in res])


def within(damage: float, target: float, tol: float = REACH_TOL) -> bool:
    """Whether ``damage`` lies within ``±tol`` of ``target`` (relative: ``|d − t| ≤ tol · t``)."""
    return abs(damage - target) <= tol * target
