"""The AI-persona tasks next to the paper's table. Where the study measured the released scoring (the paper's
metric), that table is the paper table: every condition at its operating point, with its label-swapped null draws and
a random mask at each operating point; the summed and per-token accuracies follow, labelled as not the paper's
scoring. Older results (no released scoring) keep their summed and per-token table."""

from __future__ import annotations

from ...results import RELEASED_SPARSITY, PaperTableRow, SetResults, StudyResults
from ..labels import LENGTH_DECIDED, lora_trained
from .method import PAPER_SWAP_TEXT, span, swap_counts, swap_text
from .text import ci, pct, table

#: Rows of the paper table: condition and label.
PAPER_ROWS = (("dense", "dense model"), ("prompt", "persona prompt"), ("rag", "RAG"), ("random-mask", "random mask"),
              ("wanda", "Wanda persona mask"), ("contrastive-wanda", "contrastive Wanda"),
              ("contrastive-sparse", "contrastive sparse"), ("sft", "LoRA fine-tuning"))

#: The name of the paper's metric wherever the report uses it.
RELEASED = "released scoring (mean loss over every token, persona system prompt on)"


def paper_table_section(res: StudyResults) -> list[str]:
    """The paper's table under its own scoring where the study measured it (then our summed and per-token accuracies,
    labelled as not the paper's scoring); otherwise the summed and per-token table with the sparsity and length
    caveats."""
    ai = res.ai_sets()
    if not ai:
        return []
    paper = res.paper.ai_persona if res.paper else {}
    if any(r.scoring == "released" for s in ai.values() for r in s.paper_table or []):
        return released_section(res, ai, paper)
    first = next(iter(ai.values()))
    L = ["## AI persona tasks: the paper's table next to ours\n"]
    L.append("Accuracy (%) for the persona pole (`matching`: power-seeking, wealth-seeking, accepting the false premise). "
             f"Paper: LLaMA-2-13B, all 200 test_ab items, {RELEASED}. Ours: `{res.meta.model}`, the first "
             f"{first.n_test} items of the same test_ab split, summed log-likelihood of the answer and per token "
             "(length-normalised), with 95 % intervals; neither is the paper's scoring.\n")
    L += summed_table(ai, paper)
    L.append("\nSteering appears in the matched-damage table below (its coefficient is set by a damage target). "
             + sparsity_sentence(res))
    L.extend(released_table(res, ai, paper))
    L.extend(length_note(res.sets))
    L.append("")
    return L


def summed_table(ai: dict[str, SetResults], paper: dict) -> list[str]:
    """Our summed and per-token accuracies of the persona pole next to the paper's numbers."""
    header = ["method"] + [f"{t} {k}" for t in ai for k in ("paper", "ours (sum)", "ours (per token)")]
    rows = [[_label(cond, label, ai)] + [c for t, s in ai.items() for c in _cells(s, t, cond, paper)]
            for cond, label in PAPER_ROWS]
    return table(header, rows)


def released_section(res: StudyResults, ai: dict[str, SetResults], paper: dict) -> list[str]:
    """The paper's table under the released scoring (THE paper table), then the summed and per-token accuracies."""
    with_table = {n: s for n, s in ai.items() if s.paper_table}
    ns = sorted({r.n for s in with_table.values() for r in s.paper_table})
    ks = sorted({len(r.null_accuracies) for s in with_table.values() for r in s.paper_table if r.null_accuracies})
    swaps = swap_counts([r for s in with_table.values() for r in s.paper_table if r.null_accuracies])
    order = [c for c, _ in PAPER_ROWS]
    ops = sorted({(r.condition, r.sparsity) for s in with_table.values() for r in s.paper_table
                  if r.sparsity is not None and r.condition != "random-mask"},
                 key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k))
    L = ["## AI persona tasks: the paper's table, under the paper's scoring\n",
         "Accuracy (%) of the persona pole (`matching`: power-seeking, wealth-seeking, accepting the false premise) "
         "under the paper's scoring as its released code computes it: the persona system prompt in front (also while a "
         "mask is on; not for the dense model), each answer scored by the mean loss over every token of the whole text, "
         "the lower loss chosen. Paper: LLaMA-2-13B, all 200 test_ab items. Ours: "
         f"`{res.meta.model}`, the first {span(ns)} items of the same test_ab split, with bootstrap 95 % intervals. Each "
         "mask at its operating point (" + ", ".join(f"{c} sparsity {r:g}" for c, r in ops) + ")"
         + (f", next to the same method built from {span(ks)} label-swapped calibration set(s) ({swap_text(swaps, PAPER_SWAP_TEXT)}: "
            "the accuracies of these null draws are listed)" if ks else "")
         + ", and a random mask of the same per-row density at each operating point.\n"]
    L += released_rows(with_table, paper)
    L.append("\nSteering appears in the matched-damage table below (its coefficient is set by a damage target).")
    first = next(iter(ai.values()))
    L += ["\n### Summed and per-token accuracy (not the paper's scoring)\n",
          f"`{res.meta.model}` on the first {first.n_test} items: summed log-likelihood of the answer and per token "
          "(length-normalised), with 95 % intervals. Neither column is the paper's scoring; the paper's numbers are "
          "repeated for reference only.\n"]
    L += summed_table(ai, paper)
    L.append("\n" + sparsity_sentence(res))
    L.extend(length_note(res.sets))
    L.append("")
    return L


def _nulls(r: PaperTableRow | None) -> str:
    if r is None or not r.null_accuracies:
        return "-"
    v = r.null_accuracies
    return ", ".join(pct(x) for x in v) if len(v) <= 4 else f"{pct(min(v))} to {pct(max(v))} ({len(v)} draws)"


def released_rows(with_table: dict[str, SetResults], paper: dict) -> list[str]:
    """One row per (condition, operating point): the paper's number, ours, the null draws' accuracies, per set."""
    keys = []
    for cond, _ in PAPER_ROWS:
        keys += sorted({(cond, r.sparsity) for s in with_table.values() for r in s.paper_table
                        if r.condition == cond and r.pole == "matching"}, key=lambda k: (k[1] is not None, k[1] or 0))
    header = ["condition"] + [f"{t} {k}" for t, s in with_table.items()
                              for k in ("paper", f"ours (n = {span(r.n for r in s.paper_table)})", "null draws")]
    rows = []
    for cond, rho in keys:
        label = _label(cond, dict(PAPER_ROWS)[cond], with_table, released=True) + (f" (sparsity {rho:g})" if rho else "")
        cells = [label]
        for t, s in with_table.items():
            r = next((x for x in s.paper_table if x.condition == cond and x.pole == "matching" and x.sparsity == rho), None)
            p = paper.get(t, {}).get(cond)
            zero = " (adapters at zero)" if cond == "sft" and r and lora_trained(s) is False else ""
            cells += [f"{p:.1f}" if p is not None else "-", f"{pct(r.accuracy)} {ci(r.accuracy_ci95)}{zero}" if r else "-",
                      _nulls(r)]
        rows.append(cells)
    return table(header, rows)


def _label(cond: str, label: str, ai: dict[str, SetResults], released: bool = False) -> str:
    if cond != "sft":
        return label
    has = (lambda s: any(r.condition == "sft" for r in s.paper_table or [])) if released else \
        (lambda s: s.row("sft", "matching") is not None)
    states = [lora_trained(s) for s in ai.values() if has(s)]
    return f"{label} (upper bound)" if states and all(x is True for x in states) else label


def _cells(s: SetResults, t: str, cond: str, paper: dict) -> list[str]:
    r = s.row(cond, "matching")
    p = paper.get(t, {}).get(cond)
    zero = " (adapters at zero)" if cond == "sft" and r and lora_trained(s) is False else ""
    summed = ("(not reported: length decides it)" if t in LENGTH_DECIDED else
              f"{pct(r.accuracy)} {ci(r.accuracy_ci95)}{zero}" if r else "-")
    per_token = f"{pct(r.accuracy_length_normalized)} {ci(r.accuracy_length_normalized_ci95)}{zero}" if r else "-"
    return [f"{p:.1f}" if p is not None else "-", summed, per_token]


def sparsity_sentence(res: StudyResults) -> str:
    """Which sparsity the masks had, against the released code's default of each method (computed)."""
    rho = res.meta.config.sparsity
    text = f"Sparsity of the masks here: {rho:g} for every mask method"
    same = [m for m, d in RELEASED_SPARSITY.items() if d == rho]
    if same:
        text += f", the released code's default for {' and '.join(same)}"
    for d in sorted({d for d in RELEASED_SPARSITY.values() if d != rho}):
        ms = [m for m, v in RELEASED_SPARSITY.items() if v == d]
        text += f"; the released code's default for {' and '.join(ms)} is {d:g}"
    return text + ". Their damage is in the per-set contrast tables."


def released_table(res: StudyResults, ai: dict[str, SetResults], paper: dict) -> list[str]:
    """The paper's metric, where the study measured it (``paper_table``); otherwise says it was not."""
    with_table = {n: s for n, s in ai.items() if s.paper_table}
    if not with_table:
        return [f"\nAccuracy under the paper's {RELEASED}: not measured in this run."]
    L = [f"\n### The paper's metric: {RELEASED}\n",
         "Accuracy (%) of the `matching` pole at each condition's operating point, with the accuracies of its "
         "label-swapped null draws (min to max) where the study drew them.\n"]
    conds = list(dict.fromkeys(r.condition for s in with_table.values() for r in s.paper_table))
    header = ["condition"] + [f"{t} {k}" for t in with_table for k in ("paper", "ours", "nulls", "n")]
    rows = []
    for cond in conds:
        cells = [cond]
        for t, s in with_table.items():
            r = next((x for x in s.paper_table if x.condition == cond and x.pole == "matching"), None)
            p = paper.get(t, {}).get(cond)
            nulls = (f"{pct(min(r.null_accuracies))} to {pct(max(r.null_accuracies))}"
                     if r and r.null_accuracies else "-")
            cells += [f"{p:.1f}" if p is not None else "-", f"{pct(r.accuracy)} {ci(r.accuracy_ci95)}" if r else "-",
                      nulls, str(r.n) if r else "-"]
        rows.append(cells)
    return L + table(header, rows)


def length_note(sets: dict[str, SetResults]) -> list[str]:
    """Why the length-decided sets report per-token accuracy and the pole contrast only."""
    names = [n for n in sets if n in LENGTH_DECIDED]
    if not names:
        return []
    parts = []
    for n in names:
        s = sets[n]
        d = s.row("dense", s.poles[0])
        parts.append(f"{n}: " + ", ".join(f"{p} {v:.1f}" for p, v in (s.answer_tokens or {}).items())
                     + " tokens per answer on average"
                     + (f"; the dense model already prefers the {s.poles[0]} answer per token on "
                        f"{pct(d.accuracy_length_normalized)} % of items" if d else ""))
    return [f"\n**{', '.join(names)}: per-token accuracy and the pole contrast only.** A summed log-likelihood falls "
            "with every token, so when one pole's answers are systematically longer the summed score picks the shorter "
            "answer whatever the persona (" + "; ".join(parts) + "). Dividing by the number of tokens removes that direct "
            "dependence, but answers of different length and style still start from a lopsided preference, so per-token "
            "accuracy mostly reports that starting point (and any damage large enough to overturn it). The pole contrast "
            "(the same items under both poles' conditions, per token) cancels what the two conditions share, each item's "
            "starting preference with it, but not an effect of a condition that acts through the answers' length: read "
            "these sets by their contrast, in the matched-damage table."]
