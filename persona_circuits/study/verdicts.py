"""The study's verdicts, made once every set is measured: null tests of the matched-damage table and the
multiple-comparison adjustment of each family of tests. :func:`apply_verdicts` takes the typed
:class:`~persona_circuits.results.StudyResults` (measured rows and null draws) and fills its verdict fields.

0. **The primary family and the calibration** (:mod:`.primary`): one test per (method, target) pooled over the
   sets (``results.primary``), and the false-positive rate of the tests measured on the placebos
   (``results.calibration``). Everything below is secondary.
1. **The zero centre.** Label-swapped nulls are centred on 0 by construction: a draw and its complement give
   opposite contrasts bit for bit (:mod:`persona_circuits.measure.nulls`, tested on a tiny model), so every row is
   tested with the zero centre and reports ``z = shift / null RMS`` with its interval. The pooled Stouffer
   check of the draws' means (``results.null_symmetry``) is kept as a description only (``center_used`` is ``zero``).
2. **Null tests** (:func:`~persona_circuits.measure.nulls.null_test`) of every reached row against its
   damage-matched label-swapped draws (and, for steering, its random directions, reported beside).
3. **Holm's adjustment** (:func:`~persona_circuits.measure.nulls.holm`) within each family: the table's null
   tests, and the paired differences (each mask row against the prompt and against steering at the same
   target). The conclusions count the adjusted verdicts.
4. **What a "no" after Holm means.** ``detectable_shift`` is the uncorrected bound (level 95 %). Holm's
   strictest step tests at ``α / m`` for ``m`` tests in the family, so a contrast above the bound at level
   ``1 − α / m`` (``detectable_shift_adjusted``, same centre and spread) passes Holm whatever the other rows
   give (its interval excluding 0); a smaller one may not. With ``K`` zero-centred draws the reference is a
   t with ``K`` degrees of freedom, heavy-tailed for small ``K``: with ``K = 10`` and ``m = 24`` the bound is
   ``3.69`` null spreads against ``1.81`` uncorrected. A "no" after Holm reads "not detectable above
   ``detectable_shift_adjusted``".
"""

from __future__ import annotations

from ..analysis.atlas import STEERING_PAIR_FAMILY
from ..measure.nulls import NullTest, holm, null_test, symmetry_check, zero_z
from ..results import (DamageMatchedNull, EstimatedCenter, MatchedRow, MultipleComparison, NullSymmetry, PairedDiff, StudyResults,
                       TypeAxisTest, TypesResult)
from .primary import PRIMARY_FAMILY, calibration, primary_family, with_row_z

ALPHA = 0.05


def adjusted_level(m: int) -> float:
    """The one-sided level of Holm's strictest step in a family of ``m`` tests, ``1 − α / m``."""
    return 1 - ALPHA / max(m, 1)


NULL_FAMILY = "matched-damage null tests (label-swapped, damage-matched)"
PAIRED_FAMILY = "paired differences (matched rows vs prompt and vs steering)"


def _all_rows(results: StudyResults) -> list[MatchedRow]:
    return [r for h in results.headlines().values() for r in h.matched]


def _rows(results: StudyResults) -> list[MatchedRow]:
    return [r for r in _all_rows(results) if r.reached and (r.null_draws or 0) >= 2]


def _with_test(rec: DamageMatchedNull, t: NullTest) -> DamageMatchedNull:
    """``rec`` with the fields a null test fills."""
    return rec.update(null_shift_mean=t.null_shift_mean, null_shift_sd=t.null_shift_sd, null_threshold=t.null_threshold,
                      null_z=t.null_z, null_p_perm=t.null_p_value, null_mean_t=t.null_mean_t, null_center=t.center,
                      p_value=t.p_value, detectable_shift=t.detectable_shift, persona_specific=t.persona_specific)


def _family(name: str, n_tests: int, n_raw: int, n_adjusted: int, method: str = "holm") -> MultipleComparison:
    return MultipleComparison(family=name, method=method, n_tests=n_tests, n_raw=int(n_raw), n_adjusted=int(n_adjusted))


def _row_verdicts(r: MatchedRow, center: str) -> None:
    ci = tuple(r.shift_ci95)
    with_row_z(r)
    _with_test(r, null_test(r.shift, r.null_shifts, shift_ci95=ci, center=center))
    est = null_test(r.shift, r.null_shifts, shift_ci95=ci, center="estimated")
    r.estimated_center = EstimatedCenter(null_threshold=est.null_threshold, p_value=est.p_value,
                                         persona_specific=est.persona_specific)
    rnd = r.random_direction_null
    if rnd is not None and len(rnd.null_shifts or []) >= 2:
        _with_test(rnd, null_test(r.shift, rnd.null_shifts, shift_ci95=ci, center=center))
    sm = r.strength_matched_null
    if sm is not None and len(sm.null_shifts or []) >= 2:
        t = null_test(sm.shift, sm.null_shifts, center="estimated")
        sm.update(null_threshold=t.null_threshold, persona_specific=t.persona_specific, p_value=t.p_value)


def apply_verdicts(results: StudyResults) -> StudyResults:
    """Fill every reached matched row's null test and adjusted verdicts; set ``results.primary``,
    ``results.calibration``, ``results.null_symmetry`` and ``results.multiple_comparisons``. Changes the records
    in place and returns ``results``."""
    rows = _rows(results)
    probe = [null_test(r.shift, r.null_shifts) for r in rows]
    sym = symmetry_check([t.null_mean_t for t in probe], [t.null_draws for t in probe])
    center = "zero"
    results.null_symmetry = NullSymmetry(**sym, center_used=center, role="description")
    results.primary = primary_family(results)
    results.calibration = calibration(results)
    for r in rows:
        _row_verdicts(r, center)
    adj, rej = holm([r.p_value for r in rows])
    level = adjusted_level(len(rows))
    for r, a, x in zip(rows, adj, rej):
        r.update(p_adjusted=a, persona_specific_adjusted=bool(x and r.shift_ci95[0] > 0),
                 detectable_shift_adjusted=null_test(r.shift, r.null_shifts, level=level, center=center).detectable_shift)
    prim = results.primary
    families = [_family(PRIMARY_FAMILY, len(prim), sum(t.p_value < ALPHA and t.statistic > 0 for t in prim),
                        sum(t.persona_specific for t in prim)),
                _family(NULL_FAMILY, len(rows), sum(bool(r.persona_specific) for r in rows),
                        sum(bool(r.persona_specific_adjusted) for r in rows))]
    pairs: list[PairedDiff] = [p for r in _all_rows(results) for p in (r.vs_prompt, r.vs_steering) if p is not None]
    adj, rej = holm([p.p_value for p in pairs])
    for p, a, x in zip(pairs, adj, rej):
        p.update(p_adjusted=a, verdict_adjusted=("higher" if p.diff > 0 else "lower") if x else "not distinguishable")
    families.append(_family(PAIRED_FAMILY, len(pairs), sum(p.verdict != "not distinguishable" for p in pairs),
                            sum(p.verdict_adjusted != "not distinguishable" for p in pairs)))
    families += _types_verdicts(results, center) + _atlas_families(results)
    results.multiple_comparisons = families
    return results


TYPES_FAMILY = "16-type null tests: one per (method, axis), mean over the type pairs"


def _axis_tests(t: TypesResult) -> list[TypeAxisTest]:
    """One test per axis of a types result: the letter-signed contrast averaged over the type pairs (the
    interference's ``composed_shift``, from the rows of the types with the axis's first letter) against the
    null RMS of one composed pair on that axis (conservative: see :mod:`.types`)."""
    out = []
    for axis in t.axes:
        cs = [c for r in t.rows if r.type[0] == "E" for c in r.contrasts if c.axis == axis]
        nulls = next((c.null_shifts for c in cs if len(c.null_shifts or []) >= 2), None)
        if not cs or nulls is None:
            continue
        shift = float(sum(c.shift for c in cs) / len(cs))
        z, p, k = zero_z(shift, nulls)
        out.append(TypeAxisTest(axis=axis, shift=shift, type_pairs=len(cs), null_draws=k, z=z, p_value=p))
    return out


def _types_verdicts(results: StudyResults, center: str) -> list[MultipleComparison]:
    """Per-contrast null tests of every (method, type, axis) (descriptive), and the family: one test per
    (method, axis) over its type pairs (``axis_tests`` of each types result), Holm over them."""
    tests: list[TypeAxisTest] = []
    for t in results.types or []:
        for r in t.rows:
            for c in r.contrasts:
                if len(c.null_shifts or []) >= 2:
                    tt = null_test(c.shift, c.null_shifts, shift_ci95=tuple(c.shift_ci95), center=center)
                    c.update(null_threshold=tt.null_threshold, p_value=tt.p_value, persona_specific=tt.persona_specific,
                             detectable_shift=tt.detectable_shift, null_center=center)
        t.axis_tests = _axis_tests(t)
        tests += t.axis_tests
    adj, rej = holm([c.p_value for c in tests])
    for c, a, x in zip(tests, adj, rej):
        c.update(p_adjusted=a, persona_specific_adjusted=bool(x and c.shift > 0))
    if not tests:
        return []
    return [_family(TYPES_FAMILY, len(tests), sum(c.p_value < ALPHA for c in tests),
                    sum(bool(c.persona_specific_adjusted) for c in tests))]


def _atlas_families(results: StudyResults) -> list[MultipleComparison]:
    """The atlas's own families (Holm over set pairs, and over pair-layer cosines), counted."""
    a = results.atlas
    if not a:
        return []
    out = []
    pairs = a.pairs or []
    for fam in a.multiple_comparisons or []:
        if fam.family == "atlas overlap" and fam.n_tests:
            out.append(_family(fam.family, fam.n_tests, sum(r.p_value is not None and r.p_value < fam.alpha for r in pairs),
                               sum(bool(r.shared) for r in pairs), fam.method))
        if fam.family == STEERING_PAIR_FAMILY and fam.n_tests:
            out.append(_family(fam.family, fam.n_tests, sum((r.steering_p or 1.0) < fam.alpha for r in pairs),
                               sum(bool(r.steering_shared) for r in pairs), fam.method))
    return out
