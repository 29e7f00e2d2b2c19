import math

import numpy as np
from scipy import stats

from persona_circuits.study.verdicts import apply_verdicts

from ..results_fixtures import minimal_results


def _results(shifts: list[float], k: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in shifts:
        x = rng.standard_normal(k) * 0.1
        x = np.concatenate([x[: k // 2], -x[: k // 2]])  # exactly symmetric draws: the symmetry check keeps zero
        rows.append({"reached": True, "method": "steering", "shift": s, "shift_ci95": [s - 0.01, s + 0.01],
                     "null_shifts": x.tolist(), "null_draws": k})
    return minimal_results({"a": rows})


def test_detectable_shift_after_holm_is_the_bound_at_the_strictest_step():
    m = 24
    res = apply_verdicts(_results([0.05] * m))
    assert res.null_symmetry.center_used == "zero"
    for r in res.sets["a"].headline.matched:
        x = np.asarray(r.null_shifts)
        sigma0 = math.sqrt((x ** 2).mean())
        assert math.isclose(r.detectable_shift_adjusted, stats.t.ppf(1 - 0.05 / m, 10) * sigma0, rel_tol=1e-12)
        assert math.isclose(r.detectable_shift, stats.t.ppf(0.95, 10) * sigma0, rel_tol=1e-12)
        assert r.detectable_shift_adjusted > 2 * r.detectable_shift


def test_a_contrast_above_the_adjusted_bound_passes_holm_whatever_the_others_and_one_below_may_not():
    base = apply_verdicts(_results([0.0] * 24)).sets["a"].headline.matched
    above = [1.001 * r.detectable_shift_adjusted for r in base]
    between = [0.5 * (r.detectable_shift + r.detectable_shift_adjusted) for r in base]
    rows = apply_verdicts(_results([above[0]] + [0.0] * 23)).sets["a"].headline.matched
    assert rows[0].persona_specific_adjusted and not any(r.persona_specific_adjusted for r in rows[1:])
    rows = apply_verdicts(_results([between[0]] + [0.0] * 23)).sets["a"].headline.matched
    assert rows[0].persona_specific and not rows[0].persona_specific_adjusted  # the control: it can fail


def _types(method: str, shift: float, k: int = 10, seed: int = 0) -> dict:
    """A synthetic 16-type result: every type's contrast ``shift`` towards its letter on every axis."""
    from persona_circuits.masks.compose import ALL_TYPES

    rng = np.random.default_rng(seed)
    axes = ["mbti-ei", "mbti-sn", "mbti-tf", "mbti-jp"]
    nulls = {a: (rng.standard_normal(k) * 0.1).tolist() for a in axes}
    rows = [{"type": t, "reached": True, "contrasts": [
        {"axis": a, "pole": a[-2], "shift": shift, "shift_ci95": [shift - 0.01, shift + 0.01], "null_shifts": nulls[a]}
        for a in axes]}
        for t in ALL_TYPES]
    return {"method": method, "axes": axes, "rows": rows, "null_draws": k}


def test_the_types_family_is_one_test_per_method_and_axis_and_the_report_says_so():
    from persona_circuits.reporting.report.types_atlas import types_section
    from persona_circuits.study.verdicts import TYPES_FAMILY

    res = apply_verdicts(minimal_results(types=[_types("soft-mask", 0.5), _types("steering", 0.0, seed=1)]))
    fam = next(f for f in res.multiple_comparisons if f.family == TYPES_FAMILY)
    assert fam.n_tests == 8 and sum(len(t.axis_tests) for t in res.types) == 8
    soft, steer = res.types
    assert all(a.type_pairs == 8 and a.persona_specific_adjusted for a in soft.axis_tests)
    assert not any(a.persona_specific_adjusted for a in steer.axis_tests)
    text = "\n".join(types_section(res.types))
    assert "one test per (method, axis), 8 in this run" in text and "Persona-specific after Holm: 4 of 4 axes." in text
