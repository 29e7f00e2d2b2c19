"""The headline section: effect against damage, the matched-damage table of every set, every curve point.

Its captions and method paragraphs are those of the matched rows' null design
(:attr:`persona_circuits.results.StudyResults.null_design`, :data:`METHOD_TEXT`): damage-matched rows are described
from their own fields (:mod:`.method`); strength-matched rows (the older design: each null at the real pair's own
strength, on the curve items) in that design's words."""

from __future__ import annotations

from ...results import DAMAGE_MATCHED, STRENGTH_MATCHED, Headline, StudyResults
from .matched import matched_table, null_cells
from .method import centre_used, curves_method, matched_method
from .text import iv, opt, pct, table

#: Fields of a matched row that older runs did not measure, and how the report names them when a run did not.
LATER_FIELDS = {"damage_kl_ci95": "the damage on held-out neutral texts with its interval",
                "null_strengths": "null draws at their own damage-matched strength on the same items",
                "p_adjusted": "p-values with Holm's correction",
                "detectable_shift": "the smallest contrast each test could detect"}


def headline_section(res: StudyResults) -> list[str]:
    """The question, the two figures, the matched-damage tables, the count of comparisons, every curve point."""
    heads = res.headlines()
    if not heads:
        return []
    caption, curves, method = METHOD_TEXT[res.null_design]
    L = ["## Headline: effect against damage\n",
         "The question: **at equal damage to the model, does a training-free mask move the model towards a persona more "
         "than a null mask, a persona prompt, RAG and steering do?** Damage is the mean KL(dense || intervened) over both "
         "poles' conditions on neutral text (nats/token); the effect is the pole contrast (the same held-out items under "
         "pole A's condition minus under pole B's: the shift of the per-token preference for pole A's answer, nats/token).\n",
         "![headline](figures/headline.png)\n", caption(res) + "\n",
         "![effect against damage](figures/effect_damage.png)\n", curves(res) + "\n",
         "### Matched-damage table\n", "![matched damage](figures/matched_damage.png)\n", *method(res)]
    n_tests = n_paired = 0
    for name, head in heads.items():
        L += matched_table(name, head, res.sets[name])
        n_tests += len(head.reached())
        n_paired += sum(bool(r.vs_prompt) + bool(r.vs_steering) for r in head.reached())
    L.append(comparisons_sentence(res, n_tests, n_paired) + "\n")
    L += curve_points(heads)
    return L


#: The captions of strength-matched rows (their steering null was random directions at the real pair's strength).
STRENGTH_MATCHED_CAPTION = ("At each target damage, every method's contrast on the items of its null test (filled: "
                            "persona-specific in the table below; hollow: not), the null band (shaded: from the null "
                            "draws' mean to their one-sided 95 % prediction bound) and the persona prompt, RAG and LoRA at "
                            "their own damage.")
STRENGTH_MATCHED_CURVES = ("Each method's contrast over its strength dial, with the same dial built from label-swapped "
                           "calibration data (masks) or from random directions of the persona vector's norm at the same "
                           "layer (steering) at every strength (hollow markers; dotted: their one-sided 95 % prediction "
                           "bound). A point is persona-specific (*) only above that bound, mean + t(0.95, K−1)·sd·sqrt(1 + "
                           "1/K), with its own bootstrap interval above 0.")


def headline_caption(res: StudyResults) -> str:
    """The caption of the headline figure for damage-matched rows: the band of the test the rows used."""
    band = ("from 0 to the zero-centred 95 % bound" if centre_used(res) == "zero" else
            "from the null draws' mean to their estimated-centre 95 % bound" if centre_used(res) == "estimated" else
            "from the null's centre to its 95 % bound, where the row was tested")
    adjusted = any(r.persona_specific_adjusted is not None for h in res.headlines().values() for r in h.reached())
    return ("At each target damage, every method's contrast on every held-out item (filled: persona-specific"
            + (" after Holm's correction" if adjusted else "") + ", as in the table below; hollow: not), its null draws "
            f"(grey dots, each at its own damage-matched strength, on the same items), the null band (shaded: {band}) and "
            "the persona prompt, RAG and LoRA at their own damage.")


def strength_matched_intro(res: StudyResults) -> list[str]:
    """The paragraph under the matched-damage figure for strength-matched rows: how the matched strengths and their
    null tests were made (from the run's fields)."""
    heads = res.headlines()
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
    return [text + ("`− prompt` and `− steering`: the paired difference (same items) to the persona prompt (at its own "
                   "damage) and to steering at the same target, with a paired bootstrap 95 % interval. A target outside a "
                   "dial's measured damages is not extrapolated (\"not reached\").") + "\n"]


def comparisons_sentence(res: StudyResults, n_tests: int, n_paired: int) -> str:
    """How many comparisons the tables make, and the correction when the study made one."""
    mc = res.multiple_comparisons or []
    if not mc:
        return (f"Comparisons in these tables: {n_tests} null tests and {n_paired} paired differences, each at the 95 % "
                "level with no correction for their number: expect about one in twenty of the null tests to pass by chance "
                "where there is no effect. Not measured in this run: " + _missing(res) + ".")
    fams = "; ".join(f"{m.family}: {m.n_raw} of {m.n_tests} pass uncorrected, {m.n_adjusted} after {m.method.title()}'s "
                     "correction" for m in mc)
    return (f"Comparisons in these tables: {n_tests} null tests and {n_paired} paired differences. Every family of tests "
            f"in this run, corrected within the family: {fams}.")


def _missing(res: StudyResults) -> str:
    rows = [r for h in res.headlines().values() for r in h.reached()]
    missing = [text for f, text in LATER_FIELDS.items() if not any(getattr(r, f) is not None for r in rows)]
    return "; ".join(missing) if missing else "nothing the current schema records"


#: Per null design of the matched rows: the headline figure's caption, the curves figure's paragraph and the
#: matched-damage figure's paragraphs, each a function of the results.
METHOD_TEXT = {DAMAGE_MATCHED: (headline_caption, curves_method, matched_method),
               STRENGTH_MATCHED: (lambda res: STRENGTH_MATCHED_CAPTION, lambda res: STRENGTH_MATCHED_CURVES,
                                  strength_matched_intro)}


def curve_points(heads: dict[str, Headline]) -> list[str]:
    """Every curve point of every set, in folded blocks."""
    L = ["### Every curve point\n"]
    for name, head in heads.items():
        L.append(f"<details><summary>{name}: {sum(len(v) for v in head.curves.values())} points "
                 f"({head.n_items_curve} held-out items each)</summary>\n")
        rows = []
        for method, pts in head.curves.items():
            for p in pts:
                nm, thr, spec = null_cells(p)
                tag = f" (matched to {p.matched_target:g})" if p.matched_target else ""
                rows.append([method, f"{p.strength:.4g}{tag}", f"{p.damage_kl:.3f}", f"{p.shift:+.3f}", iv(p.shift_ci95),
                             pct(p.moved), nm, opt(p.null_damage_mean, "{:.3f}"), thr, spec])
        L += table(["method", "strength", "damage (KL)", "contrast", "95 % CI", "moved", "null: mean ± sd", "null damage",
                    "null 95 % bound", "persona-specific"], rows)
        L.append("\n</details>\n")
    return L
