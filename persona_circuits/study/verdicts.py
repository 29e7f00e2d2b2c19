"""The study's verdicts, made once every set is measured: null tests of the matched-damage table and the
multiple-comparison adjustment of each family of tests.

1. **Symmetry of the nulls, tested before it is used.** Label-swapped nulls are centred on 0 by
   construction (:mod:`persona_circuits.nulls`). Every damage-matched row reports the t statistic of its
   null draws' mean against 0; :func:`~persona_circuits.nulls.symmetry_check` pools them over the table.
   Only if the pooled check does not reject (p ≥ 0.05) are the rows tested with the zero centre (one
   estimated parameter less, a tighter bound); otherwise with the estimated centre. Both are reported.
2. **Null tests** (:func:`~persona_circuits.nulls.null_test`) of every reached row against its
   damage-matched label-swapped draws (and, for steering, its random directions, reported beside).
3. **Holm's adjustment** (:func:`~persona_circuits.nulls.holm`) within each family: the table's null
   tests, and the paired differences (each mask row against the prompt and against steering at the same
   target). The conclusions count the adjusted verdicts.
"""

from __future__ import annotations

from ..nulls import holm, null_test, symmetry_check

NULL_FAMILY = "matched-damage null tests (label-swapped, damage-matched)"
PAIRED_FAMILY = "paired differences (matched rows vs prompt and vs steering)"


def _rows(results: dict) -> list[dict]:
    return [r for s in results["sets"].values() for r in (s.get("headline") or {}).get("matched", [])
            if r.get("reached") and r.get("null_draws", 0) >= 2]


def _test_fields(t, prefix: str = "") -> dict:
    return {f"{prefix}null_shift_mean": t.null_shift_mean, f"{prefix}null_shift_sd": t.null_shift_sd,
            f"{prefix}null_threshold": t.null_threshold, f"{prefix}null_z": t.null_z,
            f"{prefix}null_p_perm": t.null_p_value, f"{prefix}null_mean_t": t.null_mean_t,
            f"{prefix}null_center": t.center, f"{prefix}p_value": t.p_value,
            f"{prefix}detectable_shift": t.detectable_shift, f"{prefix}persona_specific": t.persona_specific}


def apply_verdicts(results: dict) -> dict:
    """Fill every reached matched row's null test and adjusted verdicts in place; add
    ``results["null_symmetry"]`` and ``results["multiple_comparisons"]``. Returns ``results``."""
    rows = _rows(results)
    probe = [null_test(r["shift"], r["null_shifts"]) for r in rows]
    sym = symmetry_check([t.null_mean_t for t in probe], [t.null_draws for t in probe])
    center = "zero" if sym["centered"] else "estimated"
    results["null_symmetry"] = {**sym, "center_used": center}
    for r in rows:
        ci = tuple(r["shift_ci95"])
        r.update(_test_fields(null_test(r["shift"], r["null_shifts"], shift_ci95=ci, center=center)))
        est = null_test(r["shift"], r["null_shifts"], shift_ci95=ci, center="estimated")
        r["estimated_center"] = {"null_threshold": est.null_threshold, "p_value": est.p_value,
                                 "persona_specific": est.persona_specific}
        rnd = r.get("random_direction_null")
        if rnd and len(rnd.get("null_shifts", [])) >= 2:
            t = null_test(r["shift"], rnd["null_shifts"], shift_ci95=ci, center=center)
            rnd.update({k: v for k, v in _test_fields(t).items()})
        sm = r.get("strength_matched_null")
        if sm and len(sm.get("null_shifts", [])) >= 2:
            t = null_test(sm["shift"], sm["null_shifts"], center="estimated")
            sm.update(null_threshold=t.null_threshold, persona_specific=t.persona_specific, p_value=t.p_value)
    adj, rej = holm([r["p_value"] for r in rows])
    for r, a, x in zip(rows, adj, rej):
        r["p_adjusted"] = a
        r["persona_specific_adjusted"] = bool(x and r["shift_ci95"][0] > 0)
    families = [{"family": NULL_FAMILY, "method": "holm", "n_tests": len(rows),
                 "n_raw": sum(bool(r["persona_specific"]) for r in rows),
                 "n_adjusted": sum(bool(r["persona_specific_adjusted"]) for r in rows)}]
    pairs = [r[k] for r in _all_rows(results) for k in ("vs_prompt", "vs_steering") if k in r]
    adj, rej = holm([p.get("p_value") for p in pairs])
    for p, a, x in zip(pairs, adj, rej):
        p["p_adjusted"] = a
        p["verdict_adjusted"] = ("higher" if p["diff"] > 0 else "lower") if x else "not distinguishable"
    families.append({"family": PAIRED_FAMILY, "method": "holm", "n_tests": len(pairs),
                     "n_raw": sum(p["verdict"] != "not distinguishable" for p in pairs),
                     "n_adjusted": sum(p["verdict_adjusted"] != "not distinguishable" for p in pairs)})
    results["multiple_comparisons"] = families
    return results


def _all_rows(results: dict) -> list[dict]:
    return [r for s in results["sets"].values() for r in (s.get("headline") or {}).get("matched", [])]
