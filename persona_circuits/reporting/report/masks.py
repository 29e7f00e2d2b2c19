"""Analyses 1 and 2: mask sparsity per layer and module type, overlap between opposite-pole masks."""

from __future__ import annotations

from ...results import StudyResults
from .text import pct, table


def sparsity_section(res: StudyResults) -> list[str]:
    """Share of weights each mask removes, overall and by module type."""
    L = ["### 1. Mask sparsity per layer and module type\n\n![sparsity](figures/sparsity.png)\n",
         "Per-row top-k gives every row, hence every layer and module type, the same sparsity for Wanda and "
         "contrastive Wanda; the paper's contrastive-sparse masks keep at most the weights each pole owns:\n"]
    rows = [[name, m, p, f"{pct(prof.overall)} %", f"{pct(prof.by_module.get('attn'))} %",
             f"{pct(prof.by_module.get('mlp'))} %"]
            for name, s in res.sets.items() for m, by_pole in (s.sparsity or {}).items() for p, prof in by_pole.items()]
    return L + table(["set", "method", "pole", "removed overall", "attention", "MLP"], rows)


def overlap_section(res: StudyResults) -> list[str]:
    """Difference rate and Jaccard of the two poles' masks, next to random masks and the paper's rate."""
    L = ["\n### 2. Overlap between opposite-pole masks\n\n![overlap](figures/overlap.png)\n"]
    pap = res.paper.mbti_difference_rate if res.paper else {}
    rows = []
    for name, s in res.sets.items():
        ov_all = s.overlap or {}
        rnd = ov_all.get("random")
        for m, ov in ov_all.items():
            if m == "random":
                continue
            rows.append([name, m, f"{100 * ov.overall.difference_rate:.2f} %",
                         f"{100 * ov.by_module['attn'].difference_rate:.2f} %",
                         f"{100 * ov.by_module['mlp'].difference_rate:.2f} %", f"{ov.overall.jaccard:.3f}",
                         (f"{100 * rnd.overall.difference_rate:.1f} % / " if rnd else "- / ")
                         + f"{100 * ov.random_expectation.difference_rate:.1f} %",
                         f"{pap[name]} %" if (m == "wanda" and name in pap) else ""])
    return L + table(["set", "method", "difference rate", "attention", "MLP", "Jaccard",
                      "random masks: difference rate (measured / expected)", "paper (Wanda)"], rows)
