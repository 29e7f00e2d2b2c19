"""Optional sections: the 16 MBTI types composed from the four axes (one table per method), and the atlas of
overlaps between persona sets. Each is left out when ``results.json`` has no such results (a run older than these
stages, or one that skipped them)."""

from __future__ import annotations

import numpy as np

from ...results import Atlas, TypesResult
from ..labels import COMPOSE_LABEL
from .method import bound_formula, span
from .text import iv, opt, table


def types_section(types: list[TypesResult] | None) -> list[str]:
    """Per method: a 16 x 4 table of pole contrasts with their Holm verdicts, and each axis's interference."""
    if not types:
        return []
    L = ["\n### 9. The 16 types: the four axes composed\n\n![types](figures/types.png)\n"]
    n_family = sum(len(t.axis_tests or []) for t in types)
    for t in types:
        L += _types_block(t, n_family)
    return L


def _types_intro(t: TypesResult, n_family: int = 0) -> str:
    tests = t.tests()
    centres = {c.null_center for c in tests if c.null_center}
    centre = centres.pop() if len(centres) == 1 else None
    layer = f" at layer {t.layer}" if t.layer is not None else ""
    what = COMPOSE_LABEL.get(t.method, f"{t.method} conditions composed")
    target = f", each type pair brought to KL {t.target_kl:g} on the fit texts" if t.target_kl is not None else ""
    items = f" on the first {t.n_items} held-out items of each axis" if t.n_items else ""
    test = (f" Against {t.null_draws} composed label-swapped null draws (each axis's label-swapped data composed the same "
            f"way, damage-matched), with {bound_formula(centre, str(t.null_draws))}" if t.null_draws else " Without null draws")
    head = (f"Each type composes its four axes' {what}{layer}{target}; each cell is the pole contrast on that axis "
            f"towards the type's own letter (nats/token){items}. A type and its opposite are one measurement (each row "
            f"towards its own letters), so the {len(t.rows)} rows hold {len(t.rows) // 2} measurements.{test}")
    if t.axis_tests:
        return (head + f". The family: one test per (method, axis), {n_family} in this run, each the axis's contrast "
                "averaged over the type pairs against the null RMS of the composed draws on that axis (table below), "
                "Holm over the family; `°` marks a cell above its own bound before any correction (descriptive).")
    return (head + f"; Holm's correction over the {len(tests)} distinct (type pair, axis) tests of this run's types "
            "family. `*`: persona-specific after Holm; `°`: above the bound before correction only.")


def _cell(t: TypesResult, row, axis: str) -> str:
    c = next((c for c in row.contrasts if c.axis == axis), None)
    if c is None:
        return "-"
    mark = "*" if t.verdict(row, c) else "°" if c.persona_specific else ""
    return f"{c.shift:+.3f}{mark}"


def _axis_tests(t: TypesResult) -> list[str]:
    """The (method, axis) tests of the types family (results from issue 23 on)."""
    rows = [[a.axis, f"{a.shift:+.3f}", str(a.type_pairs), opt(a.z, "{:+.2f}"), opt(a.p_value, "{:.2g}"),
             opt(a.p_adjusted, "{:.2g}"), "yes" if a.persona_specific_adjusted else "no"] for a in t.axis_tests]
    yes = sum(bool(a.persona_specific_adjusted) for a in t.axis_tests)
    return ([f"\nPersona-specific after Holm: {yes} of {len(t.axis_tests)} axes.\n"]
            + table(["axis", "mean contrast", "type pairs", "z", "p", "p (Holm)", "persona-specific"], rows))


def _types_block(t: TypesResult, n_family: int = 0) -> list[str]:
    """One method's table, its detectable shifts and its interference."""
    L = [f"#### {t.method}\n", _types_intro(t, n_family) + "\n"]
    rows = [[r.type] + ([_cell(t, r, a) for a in t.axes] if r.reached is not False else ["not reached"] * len(t.axes))
            + [opt(r.damage_kl, "{:.3f}")] for r in t.rows]
    L += table(["type"] + t.axes + ["damage (KL)"], rows)
    if t.axis_tests:
        return L + _axis_tests(t) + _interference(t) + [""]
    tests = t.tests()
    n_adj = sum(bool(t.verdict(r, c)) for r in t.rows if r.type.startswith("E") for c in r.contrasts)
    L.append(f"\nPersona-specific after Holm: {n_adj} of {len(tests)} tests (uncorrected: "
             f"{sum(bool(c.persona_specific) for c in tests)}).")
    adj = any(c.detectable_shift_adjusted is not None for c in tests)
    det = {a: [c.detectable_shift_adjusted if adj else c.detectable_shift for c in tests if c.axis == a
               and (c.detectable_shift_adjusted if adj else c.detectable_shift) is not None] for a in t.axes}
    if any(det.values()):
        L.append("A \"no\" means not detectable above the bound" + (" at Holm's strictest step" if adj else "") + ": "
                 + "; ".join(
            f"{a} {span(v, '{:+.3f}')}" for a, v in det.items() if v) + " nats/token.")
    return L + _interference(t) + [""]


def _interference(t: TypesResult) -> list[str]:
    if not t.interference:
        return []
    q = t.interference[0].alone_target_kl
    at = "at the same damage" if q is None else f"alone at a quarter of the damage (KL {q:g}: each axis's share of the budget)"
    return ([f"\n**Interference** (an axis's contrast with the other axes composed, mean over the type pairs, minus the "
             f"axis's condition {'alone ' if q is None else ''}{at}, on the same items):\n"]
            + table(["axis", "alone", "composed (mean over type pairs)", "change", "95 % CI"],
                    [[i.axis, f"{i.alone_shift:+.3f}", f"{i.composed_shift:+.3f}", f"{i.change:+.3f}",
                      iv(i.change_ci95) if i.change_ci95 else "-"] for i in t.interference]))


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def _groups_table(a: Atlas) -> list[str]:
    """Per module type or layer (descriptive: the tests are on the whole model): mean Jaccard and its references."""
    rows = []
    for m in a.overlaps:
        iu = _pairs(len(m.sets))
        j = np.asarray(m.jaccard, dtype=float)[iu]
        ref = [np.asarray(x, dtype=float)[iu].mean() if x else None for x in (m.random_expectation, m.null_p95)]
        rows.append([m.by, f"{len(iu[0])}", f"{j.mean():.3f}" if len(j) else "-", opt(ref[0], "{:.3f}"),
                     opt(ref[1], "{:.3f}")])
    return table(["module type / layer", "set pairs", "mean Jaccard", "random-density expectation (mean)",
                  "label-swapped null, 95th percentile (mean)"], rows)


def _pairs_table(a: Atlas) -> list[str]:
    rows = []
    for p in a.pairs or []:
        null = f"{p.null_mean:.3f} ± {p.null_sd:.3f}" if p.null_mean is not None and p.null_sd is not None else "-"
        cos = (f"{len(p.steering_shared_layers)} ({', '.join(map(str, p.steering_shared_layers))})"
               if p.steering_shared_layers else "0" if p.steering_shared_layers is not None else "-")
        top = f"{max(abs(c) for c in p.cosine):.2f}" if p.cosine else "-"
        rows.append([f"{p.a} & {p.b}", f"{p.jaccard:.3f}", f"{p.expected_jaccard:.4f}", null, opt(p.p_value, "{:.2g}"),
                     opt(p.p_holm, "{:.2g}"), {True: "yes", False: "no", None: "untested"}[p.shared], cos, top])
    return table(["pair", "Jaccard", "random expectation", "null mean ± sd", "p", "p (Holm)", "shared (Holm)",
                  "steering: layers beyond the null (Holm)", "max |cosine|"], rows)


def atlas_section(a: Atlas | None) -> list[str]:
    """The pairs of sets that share top contrastive weights (Holm), their steering cosines, the atlas's computed
    conclusions, and the overlap per module type and layer (descriptive)."""
    if a is None:
        return []
    L = ["\n### 10. Atlas: overlap between persona sets\n\n![atlas](figures/atlas.png)\n"]
    if a.pairs:
        fam = a.family("atlas overlap")
        st = a.family("atlas steering cosines")
        sp = a.family("atlas steering directions (max over layers)")
        score = (a.overlap("all").method if a.overlap("all") else None) or a.method or "the atlas score"
        L.append(f"Top {opt(a.fraction, '{:g}')} of each row's weights by {score}: each pair's "
                 "whole-model Jaccard against two random masks of the same per-row density (expectation) and against "
                 f"{opt(a.null_draws, '{:d}')} label-swapped draws per set (pooled in both directions). A pair shares "
                 f"weights beyond chance when its p-value after Holm's correction over the {fam.n_tests if fam else '-'} "
                 f"pairs is below {opt(fam.alpha if fam else None, '{:g}')}"
                 + (f"; steering directions: one test per pair, the maximum over layers of |cos| against the same "
                    f"maximum of {sp.null}, Holm over the {sp.n_tests} pairs (the verdict)" if sp else "")
                 + (f"; {'beside it, descriptive: ' if sp else ''}steering directions per layer against {st.null}, "
                    f"Holm over {st.n_tests} (pair, layer) tests, two-sided" if st else "") + ".\n")
        L += _pairs_table(a) + [""]
        if len(a.overlaps) > 1:
            L.append("![atlas per layer](figures/atlas_layers.png)\n")
        if any(p.cosine for p in a.pairs):
            L.append("![atlas steering](figures/atlas_steering.png)\n")
    if a.conclusions:
        L += ["The atlas's own conclusions (computed from these numbers):\n"] + [f"- {c}" for c in a.conclusions] + [""]
    L += ["<details><summary>Overlap per module type and layer (descriptive; the tests are on the whole model)"
          "</summary>\n"] + _groups_table(a) + ["\n</details>"]
    if a.steering:
        c = np.asarray(a.steering.cosine, dtype=float)[_pairs(len(a.steering.sets))]
        where = f" at layer {a.steering.layer}" if a.steering.layer is not None else ""
        L.append(f"\nSteering directions{where}: mean cosine between sets {c.mean():+.3f} (random directions' 95th "
                 f"percentile: {opt(a.steering.random_p95, '{:.3f}')}; the verdicts are the table's).")
    return L
