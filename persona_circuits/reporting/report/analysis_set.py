"""Analyses 6 to 8 on the analysis set: stability under calibration resampling, the sparsity and
calibration-size sweeps, general capability."""

from __future__ import annotations

from ...results import StudyResults
from .text import ci, pct, table


def analysis_set_sections(res: StudyResults) -> list[str]:
    """Stability, sweeps and capability (nothing when the study ran no analysis set)."""
    a = res.analysis
    if a is None:
        return []
    L = []
    if a.stability:
        L.append(f"\n### 6. Stability under calibration resampling ({a.set})\n\n![stability](figures/stability.png)\n")
        L += table(["method", "bootstrap resamples", "mean pairwise Jaccard", "min", "two random masks"],
                   [[r.method, str(r.n_boot), f"{r.mean_jaccard:.3f}", f"{r.min_jaccard:.3f}", f"{r.random_jaccard:.3f}"]
                    for r in a.stability])
    if a.sparsity_sweep and a.calibration_sweep:
        poles = res.sets[a.set].poles
        L.append(f"\n### 7. Sparsity and calibration-size sweeps ({a.set}, contrastive Wanda)\n\n![sweeps](figures/sweeps.png)\n")
        L += table(["sparsity", "pole contrast", "95 % CI"] + [f"{p} acc per token" for p in poles],
                   [[f"{r.sparsity}", f"{r.contrast.shift:+.3f}",
                     f"[{r.contrast.shift_ci95[0]:+.3f}, {r.contrast.shift_ci95[1]:+.3f}]"]
                    + [pct(v.accuracy_length_normalized) for v in r.per_pole.values()] for r in a.sparsity_sweep.rows])
        L.append("")
        L += table(["calibration texts per pole", "pole contrast", "95 % CI"],
                   [[f"{r.calib_size}", f"{r.contrast.shift:+.3f}",
                     f"[{r.contrast.shift_ci95[0]:+.3f}, {r.contrast.shift_ci95[1]:+.3f}]"] for r in a.calibration_sweep.rows])
    if a.capability:
        L.append(f"\n### 8. General capability ({a.set} masks)\n\n![capability](figures/capability.png)\n")
        L += table(["condition", "perplexity (neutral text)", "general-knowledge accuracy, summed", "per token"],
                   [[c.condition, f"{c.perplexity.perplexity:.1f}",
                     f"{pct(c.general_choice.summed.accuracy)} % {ci(c.general_choice.summed.accuracy_ci95)}",
                     f"{pct(c.general_choice.length_normalized.accuracy)} %"] for c in a.capability])
    return L
