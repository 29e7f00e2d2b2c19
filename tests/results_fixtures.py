"""Results for the tests of the results contract, the report and the figures: the committed results files
(version 1) and a version-2 file made from them in the shapes the rebuilt study writes (synthetic values, the
verdicts made by the study's own :func:`persona_circuits.study.verdicts.apply_verdicts`).

A real quick run's ``results.json`` is over 300 KB, so it is not committed; :func:`v2` builds the same shapes
(``study/matched.py``, ``paper_table.py``, ``types.py``, ``atlas.py``) from the committed version-1 file."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: the committed full run (version 2), from which REPORT.md is built
COMMITTED = ROOT / "figures" / "results.json"
GEMMA = ROOT / "reports" / "gemma-3-270m" / "results.json"
#: the schema-1 results of the earlier full run (seven sets), kept as the fixture the synthetic version-2 results are built from
V1_SMOLLM = ROOT / "tests" / "data" / "results_v1_smollm.json"
SMOLLM = V1_SMOLLM
AXES = (("mbti-ei", "E", "I"), ("mbti-sn", "S", "N"), ("mbti-tf", "T", "F"), ("mbti-jp", "J", "P"))
K = 6  # label-swapped draws per matched row
FIT, HELD = list(range(8, 16)), list(range(8))


def minimal_results(sets: dict[str, list[dict]] | None = None, types: list[dict] | None = None):
    """Typed :class:`~persona_circuits.results.StudyResults` holding only what the verdicts read: each set's
    matched rows (``{set: [row fields]}``; ``target_kl`` defaults to 0.02) and the 16-type results; every other
    required field is filled with a placeholder."""
    from persona_circuits.results import load_results

    settings = {"tokens": "answer", "statistic": "mean", "modules": "all", "sparsity": 0.5, "calib_size": 8,
                "rag_k": 2, "seed": 0}
    out = {"schema": 2, "meta": {"model": "synthetic", "config": settings}, "sets": {
        name: {"family": "mbti", "poles": ["A", "B"], "n_calibration": 8, "n_test": 8, "conditions": [],
               "contrasts": [], "headline": {"targets": [0.02], "curves": {}, "points": {}, "n_items_curve": 8,
                                            "n_items_table": 8, "null_draws": 0, "n_damage_texts": 8,
                                            "matched": [{"target_kl": 0.02, **r} for r in rows]}}
        for name, rows in (sets or {}).items()}}
    if types is not None:
        out["types"] = types
    return load_results(out)


def raw(path: Path = SMOLLM) -> dict:
    """A committed results.json as ``json.load`` returns it."""
    return json.loads(path.read_text(encoding="utf-8"))


def _draws(rng, sd: float, n: int = K) -> list[float]:
    return (sd * rng.standard_normal(n)).tolist()


def _null_block(rng, r: dict, kind: str, sd: float) -> dict:
    """The raw fields of ``_null_block`` in ``study/matched.py`` (before the verdicts)."""
    return {"null_kind": kind, "null_draws": K, "null_items": r["n"], "null_draws_not_reached": 0,
            "null_shifts": _draws(rng, sd), "null_damage_kl": [r["damage_kl"] * (1 + 0.02 * i) for i in range(K)],
            "null_strengths": [r["strength"] * (1 + 0.1 * i) for i in range(K)],
            "null_fit_damage_kl": [r["target_kl"]] * K}


def _v2_row(r: dict, rng, outside: bool) -> None:
    """A reached matched row as ``study/matched.py`` writes it (its null tests are filled by the verdicts)."""
    sd = max(r["null_shift_sd"], 0.005)
    old = {k: r.pop(k) for k in ("null_shifts", "null_damage_kl", "null_shift_mean", "null_shift_sd", "null_threshold",
                                 "persona_specific", "curve_shift", "curve_shift_ci95")}
    r.update(damage_kl_ci95=[0.9 * r["damage_kl"], 1.1 * r["damage_kl"]], fit_texts=FIT, damage_texts=HELD,
             fit_damage_kl=r["target_kl"], within_tolerance=not outside, **_null_block(rng, r, "label-swapped", sd),
             strength_matched_null={"null_draws": len(old["null_shifts"]), "null_items": 12, "shift": old["curve_shift"],
                                    "null_shifts": old["null_shifts"], "null_damage_kl": old["null_damage_kl"],
                                    "damage_kl": r["target_kl"]})
    if outside:
        r["damage_kl"] = 1.5 * r["target_kl"]
    if r["method"] == "steering":
        r["random_direction_null"] = _null_block(rng, r, "random-direction", 2 * sd)
    for key in ("vs_prompt", "vs_steering"):
        if r.get(key):
            lo, hi = r[key]["ci95"]
            r[key]["p_value"] = 0.001 if lo > 0 or hi < 0 else 0.5


def _paper_table(rng, n: int, sft: bool) -> list[dict]:
    """An AI set's paper table in the shape of ``study/paper_table.py``."""
    def row(cond, acc, **extra):
        return {"condition": cond, "scoring": "released", "pole": "matching", "accuracy": acc,
                "accuracy_ci95": [acc - 0.07, acc + 0.07], "n": n, **extra}

    rows = [row(c, a) for c, a in (("dense", 0.45), ("prompt", 0.5), ("rag", 0.52))]
    for m, rho in (("wanda", 0.5), ("contrastive-wanda", 0.3), ("contrastive-sparse", 0.3)):
        rows.append(row(m, 0.6, operating_point={"sparsity": rho},
                        null_accuracies=(0.5 + 0.03 * rng.standard_normal(3)).round(3).tolist()))
    if sft:
        rows.append(row("sft", 0.7))
    return rows + [row("random-mask", 0.48 + 0.02 * i, operating_point={"sparsity": rho}) for i, rho in enumerate((0.3, 0.5))]


def v2(path: Path = V1_SMOLLM) -> dict:
    """The committed results upgraded to version 2, in the shapes the rebuilt study writes (synthetic values)."""
    from persona_circuits.results import load_results, upgrade
    from persona_circuits.study.verdicts import apply_verdicts

    d = upgrade(copy.deepcopy(raw(path)))
    rng = np.random.default_rng(0)
    for i, (name, s) in enumerate(d["sets"].items()):
        h = s["headline"]
        h["damage"] = {"fit_texts": FIT, "damage_texts": HELD, "chat_texts": HELD, "tolerance": 0.25}
        h["n_damage_texts"], h["matched_null_draws"] = len(HELD), K
        for j, r in enumerate(h["matched"]):
            if r["reached"]:
                _v2_row(r, rng, outside=(i, j) == (0, 4))
            else:
                r.update(fit_texts=FIT, damage_texts=HELD, fit_damage_kl=None)
        for cond, p in h["points"].items():
            p["damage_kl_ci95"] = [0.9 * p["damage_kl"], 1.1 * p["damage_kl"]]
            if cond == "sft":
                p["trained"] = True
        for c in s["contrasts"]:
            if c.get("damage_kl") is not None:
                c["damage_kl_ci95"] = [0.9 * c["damage_kl"], 1.1 * c["damage_kl"]]
        s["tokens"], s["steering"] = "answer", {"layer": h.get("steering_layer") or 1, "coef": 4.0}
        if s["family"] == "ai":
            s["paper_table"] = _paper_table(rng, s["n_test"], sft=name != "wealth")
    for s in d["sets"].values():
        gate_rows(s, rng)
    d["gate_overlap"] = [{"sets": [a, b], "same": 0.05, "crossed": 0.01, "null": [0.03, 0.04]}
                         for a, b in itertools.combinations(list(d["sets"])[:3], 2)]
    names = [n for n, _, _ in AXES]
    if all(n in d["sets"] for n in names):
        d["types"] = [types_block(rng, m) for m in ("soft-mask", "steering")]
    d["atlas"] = atlas_block(rng, list(d["sets"]))
    return apply_verdicts(load_results(d)).to_dict()


#: synthetic efficiency of each issue-24 method relative to one-layer steering (contrast scale at the same damage)
GATE_SCALE = {"projection-gate": 1.5, "steering-all": 1.1, "gate-bias": 1.0}


def gate_rows(s: dict, rng) -> None:
    """Matched rows of the projection gate, every-layer steering and the gate's mean push (copies of the set's
    reached steering rows, contrasts scaled by :data:`GATE_SCALE`), their curves, and the gate's analysis record."""
    h = s["headline"]
    steer = [r for r in h["matched"] if r["method"] == "steering" and r["reached"]]
    for m, k in GATE_SCALE.items():
        for r in steer:
            c = copy.deepcopy(r)
            c.update(method=m, shift=k * r["shift"], shift_ci95=[k * v for v in r["shift_ci95"]],
                     null_shifts=_draws(rng, 0.02))
            c.pop("random_direction_null", None)
            h["matched"].append(c)
        if "steering" in h["curves"]:
            h["curves"][m] = [{**copy.deepcopy(p), "shift": k * p["shift"], "shift_ci95": [k * v for v in p["shift_ci95"]]}
                              for p in h["curves"]["steering"]]
    poles = s["poles"]
    layout = [{"layer": f"blocks.{b}.{kind}.{role}", "block": b, "kind": kind, "n_weights": 100,
               "selected": {poles[0]: 10 + b, poles[1]: 5}} for b in range(2) for kind, role in (("attn", "o"), ("mlp", "out"))]
    s["gate"] = {"null_draws": 3, "layout": layout,
                 "poles": {p: {"selected": 40, "fraction": 0.1, "ratio": 2.0, "by_kind": {"attn": 15, "mlp": 25}} for p in poles},
                 "overlap": {"poles": 0.0, "real_vs_null": {p: [0.02, 0.03, 0.01] for p in poles},
                             "null_vs_null": [0.04, 0.05, 0.03]}}


def _type_names() -> list[str]:
    return ["".join(t) for t in itertools.product(*((a, b) for _, a, b in AXES))]


def types_block(rng, method: str) -> dict:
    """One method's 16 x 4 table as ``study/types.py`` writes it: a type and its opposite hold the same
    measurement (each towards its own letters); the composed nulls are shared by every row."""
    flip = {a: b for _, a, b in AXES} | {b: a for _, a, b in AXES}
    nulls = {ax: _draws(rng, 0.02, 10) for ax, _, _ in AXES}
    pair = {}
    for t in _type_names():
        if t[0] == "E":
            pair[t] = [float(rng.normal(0.03, 0.03)) + (0.2 if i == 0 and t[1] == "S" else 0.0) for i in range(4)]
    rows = []
    for t in _type_names():
        v = pair.get(t) or pair["".join(flip[x] for x in t)]
        rows.append({"type": t, "damage_kl": 0.3, "reached": True, "contrasts": [
            {"axis": ax, "pole": t[i], "shift": v[i], "shift_ci95": [v[i] - 0.02, v[i] + 0.02], "moved": 0.6,
             "alone_shift": v[i] + 0.01, "null_shifts": nulls[ax]} for i, (ax, _, _) in enumerate(AXES)]})
    return {"method": method, "axes": [a for a, _, _ in AXES], "n_items": 40, "target_kl": 0.3,
            "layer": 15 if method == "steering" else None, "null_draws": 10, "rows": rows,
            "interference": [{"axis": ax, "alone_shift": 0.05, "composed_shift": 0.03, "change": -0.02,
                              "change_ci95": [-0.05, 0.01]} for ax, _, _ in AXES]}


def _sym(rng, n: int, lo: float, hi: float, diag: float = 1.0) -> np.ndarray:
    m = rng.uniform(lo, hi, (n, n))
    m = (m + m.T) / 2
    np.fill_diagonal(m, diag)
    return m.round(4)


def atlas_block(rng, sets: list[str], layers: int = 4) -> dict:
    """The atlas as ``study/atlas.py`` writes it: the record, the pairs with their Holm verdicts, the families and
    the atlas's own computed conclusions."""
    from persona_circuits.analysis.atlas import atlas_conclusions
    from persona_circuits.measure.nulls import holm

    n = len(sets)
    groups = ("all", "attn", "mlp", "block 0", "block 1")
    mats = {g: (_sym(rng, n, 0.04, 0.08), _sym(rng, n, 0.005, 0.0052), _sym(rng, n, 0.05, 0.06)) for g in groups}
    iu = list(zip(*np.triu_indices(n, 1)))
    j, e, p95 = mats["all"]
    cos = [_sym(rng, n, -0.2, 0.3) for _ in range(layers)]
    pv = [1e-6 if (x, y) in iu[:2] else float(rng.uniform(0.1, 1)) for x, y in iu]
    adj, rej = holm(pv)
    sp = [[l for l in range(layers) if (x, y) == iu[0] and l >= layers - 2] for x, y in iu]
    pairs = [{"a": sets[x], "b": sets[y], "jaccard": float(j[x, y]), "expected_jaccard": float(e[x, y]),
              "null_mean": float(p95[x, y] - 0.01), "null_sd": 0.005, "null_p95": float(p95[x, y]), "p_value": p,
              "p_holm": a, "shared": s, "cosine": [float(c[x, y]) for c in cos], "steering_shared_layers": sl}
             for (x, y), p, a, s, sl in zip(iu, pv, adj, rej, sp)]
    fams = [{"family": "atlas overlap", "method": "holm", "alpha": 0.05, "n_tests": len(iu)},
            {"family": "atlas steering cosines", "method": "holm", "alpha": 0.05, "n_tests": layers * len(iu),
             "null": "label-swapped directions"}]
    a = {"pairs": pairs, "multiple_comparisons": fams, "fraction": 0.01, "alpha": 0.05,
         "steering": {"null": "label-swapped directions"}}
    return {"overlaps": [{"by": g, "sets": sets, "jaccard": m[0].tolist(), "method": "pooled contrastive-Wanda |W| phi(|z|)",
                          "random_expectation": m[1].tolist(), "null_p95": m[2].tolist()} for g, m in mats.items()],
            "method": "top 0.01 by pooled contrastive-Wanda |W| phi(|z|)",
            "steering": {"sets": sets, "cosine": cos[layers // 2].tolist(), "random_mean": 0.0, "random_p95": 0.1,
                         "layer": layers // 2},
            "sets": sets, "pairs": pairs, "multiple_comparisons": fams, "conclusions": atlas_conclusions(a),
            "fraction": 0.01, "null_draws": 10}
