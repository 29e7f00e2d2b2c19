"""The headline section: effect against damage, the matched-damage table of every set, every curve point."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...results import Headline, MatchedRow, NullDraws, ReferencePoint, SetResults, StudyResults
from ..labels import lora_label
from .text import iv, opt, pct, table

#: Version-2 fields of a matched row and how the report names them when a run did not measure them.
V2_FIELDS = {"damage_kl_ci95": "the damage on held-out neutral texts with its interval",
             "null_strengths": "null draws at their own damage-matched strength on the same items",
             "p_adjusted": "p-values with Holm's correction",
             "detectable_shift": "the smallest contrast each test could detect"}


def headline_section(res: StudyResults) -> list[str]:
    """The question, the two figures, the matched-damage tables, the count of comparisons, every curve point."""
    heads = res.headlines()
    if not heads:
        return []
    L = ["## Headline: effect against damage\n",
         "The question: **at equal damage to the model, does a training-free mask move the model towards a persona more "
         "than a null mask, a persona prompt, RAG and steering do?** Damage is the mean KL(dense || intervened) over both "
         "poles' conditions on neutral text (nats/token); the effect is the pole contrast (the same held-out items under "
         "pole A's condition minus under pole B's: the shift of the per-token preference for pole A's answer, nats/token).\n",
         "![headline](figures/headline.png)\n",
         "At each target damage, every method's contrast on the items of its null test (filled: persona-specific in the "
         "table below; hollow: not), the null band (shaded: from the null draws' mean to their one-sided 95 % prediction "
         "bound) and the persona prompt, RAG and LoRA at their own damage.\n",
         "![effect against damage](figures/effect_damage.png)\n",
         "Each method's contrast over its strength dial, with the same dial built from label-swapped calibration data "
         "(masks) or from random directions of the persona vector's norm at the same layer (steering) at every strength "
         "(hollow markers; dotted: their one-sided 95 % prediction bound). A point is persona-specific (*) only above "
         "that bound, mean + t(0.95, K−1)·sd·sqrt(1 + 1/K), with its own bootstrap interval above 0.\n",
         "### Matched-damage table\n", "![matched damage](figures/matched_damage.png)\n", matched_intro(heads) + "\n"]
    n_tests = n_paired = 0
    for name, head in heads.items():
        L += matched_table(name, head, res.sets[name])
        n_tests += len(head.reached())
        n_paired += sum(bool(r.vs_prompt) + bool(r.vs_steering) for r in head.reached())
    L.append(comparisons_sentence(res, n_tests, n_paired) + "\n")
    L += curve_points(heads)
    return L


def matched_intro(heads: dict[str, Headline]) -> str:
    """How the matched strengths and their null tests were made (from the run's fields)."""
    first = next(iter(heads.values()))
    rows = [r for h in heads.values() for r in h.reached()]
    same = bool(rows) and all(r.null_on_same_items for r in rows)
    text = ("Each method's strength is interpolated (log strength against log damage) from its measured curve to each "
            "target damage and measured there again: the real pair on **every held-out item** (contrast, interval, share "
            "of items moved), ")
    if same:
        kind = next((r.null_kind for r in rows if r.null_kind), "null")
        k = next((r.null_draws for r in rows if r.null_draws), first.null_draws_matched)
        text += (f"tested against its {k} {kind} null draws on the same items, each null at its own damage-matched "
                 "strength. ")
    else:
        text += (f"and the real pair with its {first.null_draws_matched} null pairs on the curve's "
                 f"{first.n_items_curve} items (the null test: same items, same strength). ")
    return text + ("`− prompt` and `− steering`: the paired difference (same items) to the persona prompt (at its own "
                   "damage) and to steering at the same target, with a paired bootstrap 95 % interval. A target outside a "
                   "dial's measured damages is not extrapolated (\"not reached\").")


@dataclass
class _Col:
    header: str
    cell: Callable[[MatchedRow], str]
    ref: Callable[[ReferencePoint], str] = lambda p: "-"


def _null_cells(p: NullDraws) -> tuple[str, str, str]:
    sd = f"{p.null_shift_sd:.3f}" if p.null_shift_sd is not None else "-"
    nm = f"{p.null_shift_mean:+.3f} ± {sd}" if p.null_shift_mean is not None else "-"
    thr = f"{p.null_threshold:+.3f}" if p.null_threshold is not None else "-"
    return nm, thr, "yes" if p.persona_specific else "no"


def _diff(d) -> str:
    if not d:
        return "-"
    return f"{d.diff:+.3f} {iv(d.ci95)}" + (f"; Holm: {d.verdict_adjusted}" if d.verdict_adjusted else "")


def _columns(rows: list[MatchedRow], points: list[ReferencePoint]) -> list[_Col]:
    """The matched table's columns: version 1's, plus each version-2 field that some row has."""
    def has(attr):
        """Whether some row has a value for ``attr``."""
        return any(getattr(r, attr) is not None for r in rows)

    same = bool(rows) and all(r.null_on_same_items for r in rows)
    cols = [_Col("method", lambda r: r.method), _Col("target KL", lambda r: f"{r.target_kl:g}"),
            _Col("strength", lambda r: f"{r.strength:.4g}"),
            _Col("damage (KL)", lambda r: f"{r.damage_kl:.3f}", lambda p: opt(p.damage_kl, "{:.3f}"))]
    if has("damage_kl_ci95") or any(p.damage_kl_ci95 for p in points):
        cols.append(_Col("damage 95 % CI", lambda r: iv(r.damage_kl_ci95, "{:.3f}") if r.damage_kl_ci95 else "-",
                         lambda p: iv(p.damage_kl_ci95, "{:.3f}") if p.damage_kl_ci95 else "-"))
    if has("within_tolerance"):
        cols.append(_Col("within ±25 % of target", lambda r: {True: "yes", False: "no", None: "-"}[r.within_tolerance]))
    cols += [_Col("contrast, all items", lambda r: f"{r.shift:+.3f}", lambda p: f"{p.shift:+.3f}"),
             _Col("95 % CI", lambda r: iv(r.shift_ci95), lambda p: iv(p.shift_ci95)),
             _Col("moved", lambda r: pct(r.moved), lambda p: pct(p.moved)),
             _Col("null on the same items: mean ± sd" if same else "null on curve items: mean ± sd",
                  lambda r: _null_cells(r)[0], lambda p: "no null")]
    if has("null_strengths"):
        cols.append(_Col("null damage (mean)", lambda r: opt(r.null_damage_mean, "{:.3f}")))
    if not same:
        cols.append(_Col("contrast on curve items", lambda r: f"{r.curve_shift:+.3f}"))
    cols.append(_Col("null 95 % bound", lambda r: _null_cells(r)[1]))
    if has("detectable_shift"):
        cols.append(_Col("detectable shift", lambda r: opt(r.detectable_shift)))
    if has("random_direction_null"):
        cols.append(_Col("random-direction null bound",
                         lambda r: opt(r.random_direction_null.null_threshold) if r.random_direction_null else "-"))
    if has("p_value"):
        cols.append(_Col("p", lambda r: opt(r.p_value, "{:.3f}")))
    if has("p_adjusted"):
        cols.append(_Col("p (Holm)", lambda r: opt(r.p_adjusted, "{:.3f}")))
    cols.append(_Col("persona-specific", lambda r: _null_cells(r)[2], lambda p: "untested"))
    if has("persona_specific_adjusted"):
        cols.append(_Col("persona-specific (Holm)", lambda r: {True: "yes", False: "no", None: "-"}[r.persona_specific_adjusted]))
    return cols + [_Col("− prompt [95 % CI]", lambda r: _diff(r.vs_prompt)),
                   _Col("− steering [95 % CI]", lambda r: _diff(r.vs_steering))]


def matched_table(name: str, head: Headline, s: SetResults) -> list[str]:
    """One set's matched-damage table: every (method, target) row, then the reference points."""
    reached = head.reached()
    points = [(cond, label, head.points[cond]) for cond, label in
              (("prompt", "persona prompt"), ("rag", "RAG"), ("sft", lora_label(s, short=True))) if cond in head.points]
    cols = _columns(reached, [p for _, _, p in points])
    items = head.null_items(reached[0]) if reached else head.n_items_curve
    texts = next((r.damage_texts for r in reached if r.damage_texts), None)
    dmg = f"{len(texts)} held-out neutral texts" if texts else f"{head.n_damage_texts} neutral texts"
    k = next((r.null_draws for r in reached if r.null_draws), head.null_draws_matched)
    L = [f"#### {name} ({head.n_items_table} held-out items; null test on {items} items, {k} "
         f"null draws; damage on {dmg})\n"]
    rows = []
    for r in head.matched:
        if not r.reached:
            lo, hi = r.curve_damage_range
            rows.append([r.method, f"{r.target_kl:g}", f"not reached (curve damage {lo:.3g} to {hi:.3g})"]
                        + ["-"] * (len(cols) - 3))
        else:
            rows.append([c.cell(r) for c in cols])
    rows += [[label] + [c.ref(p) for c in cols[1:]] for _, label, p in points]
    return L + table([c.header for c in cols], rows) + [""]


def comparisons_sentence(res: StudyResults, n_tests: int, n_paired: int) -> str:
    """How many comparisons the tables make, and the correction when the study made one."""
    mc = res.multiple_comparisons or []
    if not mc:
        return (f"Comparisons in these tables: {n_tests} null tests and {n_paired} paired differences, each at the 95 % "
                "level with no correction for their number: expect about one in twenty of the null tests to pass by chance "
                "where there is no effect. Not measured in this run: " + _missing(res) + ".")
    fams = "; ".join(f"{m.family}: {m.n_raw} of {m.n_tests} pass uncorrected, {m.n_adjusted} after {m.method.title()}'s "
                     "correction" for m in mc)
    return f"Comparisons in these tables: {n_tests} null tests and {n_paired} paired differences. Corrected by family: {fams}."


def _missing(res: StudyResults) -> str:
    rows = [r for h in res.headlines().values() for r in h.reached()]
    missing = [text for f, text in V2_FIELDS.items() if not any(getattr(r, f) is not None for r in rows)]
    return "; ".join(missing) if missing else "nothing the current schema records"


def curve_points(heads: dict[str, Headline]) -> list[str]:
    """Every curve point of every set, in folded blocks."""
    L = ["### Every curve point\n"]
    for name, head in heads.items():
        L.append(f"<details><summary>{name}: {sum(len(v) for v in head.curves.values())} points "
                 f"({head.n_items_curve} held-out items each)</summary>\n")
        rows = []
        for method, pts in head.curves.items():
            for p in pts:
                nm, thr, spec = _null_cells(p)
                tag = f" (matched to {p.matched_target:g})" if p.matched_target else ""
                rows.append([method, f"{p.strength:.4g}{tag}", f"{p.damage_kl:.3f}", f"{p.shift:+.3f}", iv(p.shift_ci95),
                             pct(p.moved), nm, opt(p.null_damage_mean, "{:.3f}"), thr, spec])
        L += table(["method", "strength", "damage (KL)", "contrast", "95 % CI", "moved", "null: mean ± sd", "null damage",
                    "null 95 % bound", "persona-specific"], rows)
        L.append("\n</details>\n")
    return L
