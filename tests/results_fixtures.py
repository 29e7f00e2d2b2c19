"""Results for the tests of the results contract, the report and the figures: the committed results files
(version 1) and a version-2 file made from them with every field the new study adds (synthetic values)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SMOLLM = ROOT / "figures" / "results.json"
GEMMA = ROOT / "reports" / "gemma-3-270m" / "results.json"
AXES = ("mbti-ei", "mbti-sn", "mbti-tf", "mbti-jp")


def raw(path: Path = SMOLLM) -> dict:
    """A committed results.json as ``json.load`` returns it."""
    return json.loads(path.read_text(encoding="utf-8"))


def _v2_row(r: dict, rng) -> None:
    """Every version-2 field of a reached matched-damage row (the null on the row's own items)."""
    k = 10
    shifts = (r["null_shift_mean"] + r["null_shift_sd"] * rng.standard_normal(k)).tolist()
    spec = bool(r["persona_specific"])
    r.update(damage_kl_ci95=[0.9 * r["damage_kl"], 1.1 * r["damage_kl"]], damage_texts=list(range(24)),
             fit_texts=list(range(24, 32)), fit_damage_kl=r["target_kl"], within_tolerance=True,
             null_kind="label-swapped", null_draws=k, null_items=r["n"], null_shifts=shifts,
             null_damage_kl=[r["damage_kl"]] * k, null_strengths=[r["strength"]] * k, null_center="zero",
             null_mean_t=0.4, p_value=1 / 11 if spec else 0.5, p_adjusted=0.04 if spec else 1.0,
             persona_specific_adjusted=spec, detectable_shift=r["null_threshold"],
             strength_matched_null={"null_draws": 4, "null_items": 12, "null_shifts": r["null_shifts"],
                                    "null_damage_kl": r["null_damage_kl"], "null_threshold": r["null_threshold"],
                                    "persona_specific": spec, "shift": r["curve_shift"]})
    del r["curve_shift"], r["curve_shift_ci95"]
    if r["method"] == "steering":
        r["random_direction_null"] = {"null_draws": k, "null_shifts": shifts, "null_damage_kl": [r["damage_kl"]] * k,
                                      "null_strengths": [r["strength"]] * k, "null_threshold": r["null_threshold"],
                                      "p_value": 1 / 11, "persona_specific": True}
    for key in ("vs_prompt", "vs_steering"):
        if r.get(key):
            r[key].update(p_value=0.01, p_adjusted=0.03, verdict_adjusted=r[key]["verdict"])


def v2(path: Path = SMOLLM) -> dict:
    """The committed results upgraded to version 2, with every field the new study adds (synthetic values)."""
    from persona_circuits.results import upgrade

    d = upgrade(copy.deepcopy(raw(path)))
    rng = np.random.default_rng(0)
    for s in d["sets"].values():
        h = s["headline"]
        for r in h["matched"]:
            if r["reached"]:
                _v2_row(r, rng)
        for cond, p in h["points"].items():
            p["damage_kl_ci95"] = [0.9 * p["damage_kl"], 1.1 * p["damage_kl"]]
            if cond == "sft":
                p["trained"] = True
        if s["family"] == "ai":
            s["paper_table"] = [{"condition": c, "scoring": "released", "pole": "matching", "accuracy": 0.5 + 0.01 * i,
                                 "accuracy_ci95": [0.43, 0.57], "n": 200, "operating_point": "sparsity 0.5",
                                 "null_accuracies": [0.48, 0.52, 0.505] if "wanda" in c or "sparse" in c else None}
                                for i, c in enumerate(("prompt", "rag", "wanda", "contrastive-wanda",
                                                       "contrastive-sparse", "sft", "random-mask"))]
    d["multiple_comparisons"] = [{"family": "matched null tests", "method": "holm", "n_tests": 41, "n_raw": 15,
                                  "n_adjusted": 13}]
    d["types"] = types_block(rng)
    d["atlas"] = atlas_block(rng, list(d["sets"]))
    return d


def types_block(rng) -> dict:
    """A 16 x 4 table of composed-mask contrasts (synthetic)."""
    letters = [("E", "I"), ("S", "N"), ("T", "F"), ("J", "P")]
    rows = []
    for code in range(16):
        poles = [letters[i][(code >> (3 - i)) & 1] for i in range(4)]
        rows.append({"type": "".join(poles), "damage_kl": 0.1, "contrasts": [
            {"axis": ax, "pole": p, "shift": float(rng.normal(0.05, 0.05)), "shift_ci95": [-0.05, 0.15],
             "null_threshold": 0.1, "persona_specific": bool(i == 0 and code < 4)} for i, (ax, p) in enumerate(zip(AXES, poles))]})
    return {"axes": list(AXES), "rows": rows, "method": "contrastive-wanda", "n_items": 80, "null_draws": 10,
            "interference": [{"axis": ax, "alone_shift": 0.05, "composed_shift": 0.03, "change": -0.02,
                              "change_ci95": [-0.05, 0.01]} for ax in AXES]}


def atlas_block(rng, sets: list[str]) -> dict:
    """Jaccard matrices and steering cosines between the sets (synthetic, symmetric)."""
    n = len(sets)

    def sym(lo, hi):
        m = rng.uniform(lo, hi, (n, n))
        m = (m + m.T) / 2
        np.fill_diagonal(m, 1.0)
        return m.round(4).tolist()

    return {"method": "contrastive-wanda", "overlaps": [
        {"by": by, "sets": sets, "jaccard": sym(0.2, 0.5), "random_expectation": sym(0.33, 0.34),
         "null_p95": sym(0.35, 0.4)} for by in ("attn", "mlp")],
        "steering": {"sets": sets, "cosine": sym(-0.2, 0.6), "random_mean": 0.0, "random_p95": 0.1}}
