"""The study's verdicts, made once every set is measured: null tests of the matched-damage table and the
multiple-comparison adjustment of each family of tests.

0. **The primary family and the calibration** (:mod:`.primary`): one test per (method, target) pooled over the
   sets (``results["primary"]``), and the false-positive rate of the tests measured on the placebos
   (``results["calibration"]``). Everything below is secondary.
1. **The zero centre.** Label-swapped nulls are centred on 0 by construction: a draw and its complement give
   opposite contrasts bit for bit (:mod:`persona_circuits.measure.nulls`, tested on a tiny model), so every row is
   tested with the zero centre and reports ``z = shift / null RMS`` with its interval. The pooled Stouffer
   check of the draws' means (``null_symmetry``) is kept as a description only (``center_used`` is ``zero``).
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
from ..measure.nulls import holm, null_test, symmetry_check, zero_z
from .primary import PRIMARY_FAMILY, calibration, primary_family, row_z

ALPHA = 0.05


def adjusted_level(m: int) -> float:
    """The one-sided level of Holm's strictest step in a family of ``m`` tests, ``1 − α / m``."""
    return 1 - ALPHA / max(m, 1)


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
    ``results["primary"]``, ``results["calibration"]``, ``results["null_symmetry"]`` and
    ``results["multiple_comparisons"]``. Returns ``results``."""
    rows = _rows(results)
    probe = [null_test(r["shift"], r["null_shifts"]) for r in rows]
    sym = symmetry_check([t.null_mean_t for t in probe], [t.null_draws for t in probe])
    center = "zero"
    results["null_symmetry"] = {**sym, "center_used": center, "role": "description"}
    results["primary"] = primary_family(results)
    results["calibration"] = calibration(results)
    for r in rows:
        ci = tuple(r["shift_ci95"])
        r.update(row_z(r))
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
    level = adjusted_level(len(rows))
    for r, a, x in zip(rows, adj, rej):
        r["p_adjusted"] = a
        r["persona_specific_adjusted"] = bool(x and r["shift_ci95"][0] > 0)
        r["detectable_shift_adjusted"] = null_test(r["shift"], r["null_shifts"], level=level, center=center).detectable_shift
    prim = results["primary"]
    families = [{"family": PRIMARY_FAMILY, "method": "holm", "n_tests": len(prim), "n_raw": sum(
                     t["p_value"] < ALPHA and t["statistic"] > 0 for t in prim),
                 "n_adjusted": sum(t["persona_specific"] for t in prim)},
                {"family": NULL_FAMILY, "method": "holm", "n_tests": len(rows),
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
    families += _types_verdicts(results, center) + _atlas_families(results)
    results["multiple_comparisons"] = families
    return results


TYPES_FAMILY = "16-type null tests: one per (method, axis), mean over the type pairs"


def _axis_tests(t: dict) -> list[dict]:
    """One test per axis of a types result: the letter-signed contrast averaged over the type pairs (the
    interference's ``composed_shift``, from the rows of the types with the axis's first letter) against the
    null RMS of one composed pair on that axis (conservative: see :mod:`.types`)."""
    out = []
    for axis in t["axes"]:
        cs = [c for r in t["rows"] if r["type"][0] == "E" for c in r["contrasts"] if c["axis"] == axis]
        nulls = next((c["null_shifts"] for c in cs if len(c.get("null_shifts") or []) >= 2), None)
        if not cs or nulls is None:
            continue
        shift = float(sum(c["shift"] for c in cs) / len(cs))
        z, p, k = zero_z(shift, nulls)
        out.append({"axis": axis, "shift": shift, "type_pairs": len(cs), "null_draws": k, "z": z, "p_value": p})
    return out


def _types_verdicts(results: dict, center: str) -> list[dict]:
    """Per-contrast null tests of every (method, type, axis) (descriptive), and the family: one test per
    (method, axis) over its type pairs (``axis_tests`` of each types result), Holm over them."""
    tests = []
    for t in results.get("types") or []:
        for r in t["rows"]:
            for c in r["contrasts"]:
                if len(c.get("null_shifts", [])) >= 2:
                    tt = null_test(c["shift"], c["null_shifts"], shift_ci95=tuple(c["shift_ci95"]), center=center)
                    c.update(null_threshold=tt.null_threshold, p_value=tt.p_value, persona_specific=tt.persona_specific,
                             detectable_shift=tt.detectable_shift, null_center=center)
        t["axis_tests"] = _axis_tests(t)
        tests += t["axis_tests"]
    adj, rej = holm([c["p_value"] for c in tests])
    for c, a, x in zip(tests, adj, rej):
        c["p_adjusted"], c["persona_specific_adjusted"] = a, bool(x and c["shift"] > 0)
    if not tests:
        return []
    return [{"family": TYPES_FAMILY, "method": "holm", "n_tests": len(tests),
             "n_raw": sum(c["p_value"] < ALPHA for c in tests),
             "n_adjusted": sum(bool(c["persona_specific_adjusted"]) for c in tests)}]


def _atlas_families(results: dict) -> list[dict]:
    """The atlas's own families (Holm over set pairs, and over pair-layer cosines), counted."""
    a = results.get("atlas")
    if not a:
        return []
    out = []
    for fam in a.get("multiple_comparisons", []):
        if fam["family"] == "atlas overlap" and fam["n_tests"]:
            out.append({"family": fam["family"], "method": fam["method"], "n_tests": fam["n_tests"],
                        "n_raw": sum(r["p_value"] is not None and r["p_value"] < fam["alpha"] for r in a["pairs"]),
                        "n_adjusted": sum(bool(r["shared"]) for r in a["pairs"])})
        if fam["family"] == STEERING_PAIR_FAMILY and fam["n_tests"]:
            out.append({"family": fam["family"], "method": fam["method"], "n_tests": fam["n_tests"],
                        "n_raw": sum((r.get("steering_p") or 1.0) < fam["alpha"] for r in a["pairs"]),
                        "n_adjusted": sum(bool(r.get("steering_shared")) for r in a["pairs"])})
    return out


def _all_rows(results: dict) -> list[dict]:
    return [r for s in results["sets"].values() for r in (s.get("headline") or {}).get("matched", [])]
