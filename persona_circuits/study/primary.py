"""The study's primary family and its calibration on placebos: pure functions of the typed results (no model), so
``persona-circuits verdicts`` and the merge of study shards recompute them from the stored draws.

**Primary family, declared before any number is seen** (:data:`PRIMARY_METHODS`). One test per (method, target
damage) for each method of :data:`PRIMARY_METHODS` that has a reached matched row, pooled over the run's sets:

* each set's row gives ``z_s = shift_s / σ̂_s``, its contrast over the zero-centred RMS of its ``K_s``
  damage-matched label-swapped draws (:func:`~persona_circuits.measure.nulls.zero_z`; the zero centre is exact by the
  antithetic argument of :mod:`persona_circuits.measure.nulls`);
* the statistic is ``Z = mean_s z_s``. Under the null hypothesis a row's contrast is one more draw of its
  null, so with normal contrasts ``z_s`` is a Student ``t`` on ``K_s`` degrees of freedom (numerator and
  denominator independent); the rows use independent draws (own seeds) on different sets, so the reference
  of ``Z`` is the mean of independent ``t_{K_s}`` (:func:`~persona_circuits.measure.nulls.mean_t_sf`, by numerical
  convolution). A rank p-value cannot go below ``1 / (K + 1)`` with ``K = 10`` draws, hence the parametric
  reference; whether it holds is what the calibration measures;
* Holm over the family (a handful of tests); a test is "persona-specific" when its adjusted p-value is below
  ``α = 0.05`` and ``Z > 0``.

A **yes** says: at that damage, the method's real pole pair moves the held-out choices towards the pole by more
than relabelled calibration data (same method, same damage, no persona) does, on average over the sets, at a
family-wise error rate of 5 %. A **no** says only that this average was not detectably above the null's
spread: it is no claim that the effect is absent in any set.

**Calibration on placebos.** Every label-swapped draw is itself a placebo: a relabelling under which the two
"poles" differ by nothing. It is tested exactly as the real pair (same statistic, same reference, uncorrected
level ``α``) against the row's *other* draws (:func:`~persona_circuits.measure.nulls.loo_z`, ``K − 1`` degrees of
freedom, so its numerator and denominator are independent as the real pair's are). The share of placebos
called persona-specific is the measured false-positive rate of the per-row test, with its Clopper-Pearson
interval. The placebos of one row share their reference draws, so they are positively correlated: the
interval that treats them as independent (``rate_ci95``) is too narrow; ``rate_ci95_rows`` treats each row as
one trial (too wide), and the truth lies between. The primary statistic gets its own placebos: draw ``k`` of
every set's row pooled the same way (``K`` placebos per primary test).

Both take the typed :class:`~persona_circuits.results.StudyResults` and return records:
:func:`primary_family` a list of :class:`~persona_circuits.results.PrimaryTest`, :func:`calibration` a
:class:`~persona_circuits.results.MethodCalibration` per method (``placebos, false_positives, rate, rate_ci95,
rate_ci95_rows, rows``, the targets pooled, the sets, ``by_target`` and the primary statistic's own placebos).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..measure.nulls import clopper_pearson, holm, loo_z, mean_t_sf, zero_z
from ..results import MethodCalibration, PlaceboRate, PrimaryTest, TargetCalibration

if TYPE_CHECKING:
    from ..results import MatchedRow, StudyResults

ALPHA = 0.05
#: The primary family's methods (declared before the numbers): one test per (method, target) among these. The
#: projection gate and every-layer steering (issue 24) were added before any study computed them; the gate's
#: mean-push control (``gate-bias``) is a control, not a claim, and stays secondary.
PRIMARY_METHODS = ("steering", "soft-mask", "contrastive-wanda", "contrastive-removal", "projection-gate", "steering-all")
PRIMARY_FAMILY = "primary: one test per (method, target), mean over sets of z = contrast / null RMS"


def tested_rows(results: StudyResults) -> list[tuple[str, MatchedRow]]:
    """``(set, row)`` of every reached matched row with at least two null draws."""
    return [(name, r) for name, h in results.headlines().items() for r in h.matched
            if r.reached and len(r.null_shifts or []) >= 2]


def with_row_z(row: MatchedRow) -> MatchedRow:
    """``row`` with its ``z`` (contrast / zero-centred null RMS), its interval ``z_ci95`` (the contrast's interval
    over the same RMS), its own one-sided ``z_p_value`` (``t`` on ``K`` degrees of freedom) and ``null_rms``."""
    z, p, k = zero_z(row.shift, row.null_shifts)
    rms = float(np.sqrt(np.mean(np.square(row.null_shifts))))
    ci = [c / rms for c in row.shift_ci95] if rms > 0 else None
    return row.update(z=z, z_ci95=ci, z_p_value=p, null_rms=rms)


def _groups(results: StudyResults, methods=PRIMARY_METHODS) -> dict[tuple[str, float | None], list[tuple[str, MatchedRow]]]:
    out: dict = {}
    for name, r in tested_rows(results):
        if r.method in methods:
            t = r.target_kl
            out.setdefault((r.method, None if t is None else float(t)), []).append((name, r))
    return dict(sorted(out.items(), key=lambda kv: (methods.index(kv[0][0]), kv[0][1] or 0.0)))


def primary_family(results: StudyResults) -> list[PrimaryTest]:
    """The primary tests (see the module docstring), Holm-adjusted, in the order of :data:`PRIMARY_METHODS`."""
    measured = []  # (method, target, statistic, p, sets, draws) per test, before Holm
    for (method, target), rows in _groups(results).items():
        zs = [zero_z(r.shift, r.null_shifts) for _, r in rows]
        stat = float(np.mean([z for z, _, _ in zs]))
        measured.append((method, target, stat, mean_t_sf(stat, [k for _, _, k in zs]), [n for n, _ in rows],
                         [k for _, _, k in zs]))
    adj, rej = holm([m[3] for m in measured], alpha=ALPHA)
    return [PrimaryTest(method=method, target_kl=target, statistic=stat, p_value=p, p_adjusted=a,
                        persona_specific=bool(x and stat > 0), sets=sets, null_draws=draws)
            for (method, target, stat, p, sets, draws), a, x in zip(measured, adj, rej)]


def _rate(fp: int, n: int, rows: int | None = None, kind: type[PlaceboRate] = PlaceboRate, **fields) -> PlaceboRate:
    """``fp`` false positives among ``n`` placebos (over ``rows`` rows) as a :class:`PlaceboRate` (or its subclass
    ``kind`` with its own ``fields``)."""
    out = kind(placebos=int(n), false_positives=int(fp), rate=fp / n if n else None, rate_ci95=clopper_pearson(fp, n),
               **fields)
    if rows is not None:
        out.update(rows=rows, rate_ci95_rows=clopper_pearson(int(round(fp / n * rows)), rows) if n and rows else None)
    return out


def _row_placebos(row: MatchedRow) -> np.ndarray:
    """The one-sided p-values of the row's draws as placebos (leave one out, ``t`` on ``K − 1`` df)."""
    from scipy import stats

    z = loo_z(row.null_shifts)
    return stats.t.sf(z, len(z) - 1) if len(z) else z


def _primary_placebos(rows: list[MatchedRow]) -> tuple[int, int]:
    """Draw ``k`` of every set's row pooled like the real statistic (``k`` below every row's draw count)."""
    zs = [loo_z(r.null_shifts) for r in rows]
    k = min((len(z) for z in zs), default=0)
    if k == 0:
        return 0, 0
    stat = np.mean([z[:k] for z in zs], axis=0)
    dfs = [len(z) - 1 for z in zs]
    return int(sum(mean_t_sf(float(s), dfs) < ALPHA for s in stat)), k


def calibration(results: StudyResults) -> dict[str, MethodCalibration]:
    """The placebo false-positive rates per method (see the module docstring)."""
    by_method: dict[str, list[TargetCalibration]] = {}
    sums: dict[str, np.ndarray] = {}  # per method: false positives, placebos, rows, primary false positives, primary placebos
    methods = tuple(dict.fromkeys([*PRIMARY_METHODS, *sorted({r.method for _, r in tested_rows(results)})]))
    for (method, target), rows in _groups(results, methods).items():
        ps = [_row_placebos(r) for _, r in rows]
        fp, n = int(sum((p < ALPHA).sum() for p in ps)), int(sum(len(p) for p in ps))
        n_rows = sum(len(p) > 0 for p in ps)
        pfp, pn = _primary_placebos([r for _, r in rows])
        by_method.setdefault(method, []).append(_rate(fp, n, n_rows, TargetCalibration, target_kl=target,
                                                      sets=[s for s, _ in rows], primary=_rate(pfp, pn)))
        sums[method] = sums.get(method, 0) + np.array([fp, n, n_rows, pfp, pn])
    out = {}
    for method, targets in by_method.items():
        fp, n, n_rows, pfp, pn = (int(x) for x in sums[method])
        out[method] = _rate(fp, n, n_rows, MethodCalibration, target_kl=[t.target_kl for t in targets],
                            sets=sorted({s for t in targets for s in t.sets}), by_target=targets, primary=_rate(pfp, pn))
    return out
