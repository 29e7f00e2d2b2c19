import math

import numpy as np
from scipy import stats

from persona_circuits.study.verdicts import apply_verdicts


def _results(shifts: list[float], k: int = 10, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    for s in shifts:
        x = rng.standard_normal(k) * 0.1
        x = np.concatenate([x[: k // 2], -x[: k // 2]])  # exactly symmetric draws: the symmetry check keeps zero
        rows.append({"reached": True, "method": "steering", "shift": s, "shift_ci95": [s - 0.01, s + 0.01],
                     "null_shifts": x.tolist(), "null_draws": k})
    return {"sets": {"a": {"headline": {"matched": rows}}}}


def test_detectable_shift_after_holm_is_the_bound_at_the_strictest_step():
    m = 24
    res = apply_verdicts(_results([0.05] * m))
    assert res["null_symmetry"]["center_used"] == "zero"
    for r in res["sets"]["a"]["headline"]["matched"]:
        x = np.asarray(r["null_shifts"])
        sigma0 = math.sqrt((x ** 2).mean())
        assert math.isclose(r["detectable_shift_adjusted"], stats.t.ppf(1 - 0.05 / m, 10) * sigma0, rel_tol=1e-12)
        assert math.isclose(r["detectable_shift"], stats.t.ppf(0.95, 10) * sigma0, rel_tol=1e-12)
        assert r["detectable_shift_adjusted"] > 2 * r["detectable_shift"]


def test_a_contrast_above_the_adjusted_bound_passes_holm_whatever_the_others_and_one_below_may_not():
    base = apply_verdicts(_results([0.0] * 24))["sets"]["a"]["headline"]["matched"]
    above = [1.001 * r["detectable_shift_adjusted"] for r in base]
    between = [0.5 * (r["detectable_shift"] + r["detectable_shift_adjusted"]) for r in base]
    rows = apply_verdicts(_results([above[0]] + [0.0] * 23))["sets"]["a"]["headline"]["matched"]
    assert rows[0]["persona_specific_adjusted"] and not any(r["persona_specific_adjusted"] for r in rows[1:])
    rows = apply_verdicts(_results([between[0]] + [0.0] * 23))["sets"]["a"]["headline"]["matched"]
    assert rows[0]["persona_specific"] and not rows[0]["persona_specific_adjusted"]  # the control: it can fail
