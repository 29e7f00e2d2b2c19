"""The analysis set: the ablations, bootstrap stability, the sweeps and general capability."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ...results import StudyResults
from .common import need, yerr
from .style import GREY, OKABE_ITO, PALETTE, WIDTH, color, legend_below


def _restore(ax, r) -> None:
    fr = [x.fraction_of_full for x in r.rows]
    ax.barh(range(len(r.rows)), fr, color=OKABE_ITO["blue"], xerr=yerr(fr, [x.fraction_ci95 for x in r.rows]))
    ax.axvline(1.0, color=OKABE_ITO["vermillion"], ls="--")
    ax.axvline(0, color=GREY, lw=0.8)
    ax.set_yticks(range(len(r.rows)), [f"restore {x.restored}" for x in r.rows])
    ax.set_xlabel("share of the full masks' pole contrast left")
    ax.set_title(f"Restore in both masks (full {r.full_contrast.shift:+.3f})")


#: The removal kinds: (where in a row, key, label, colour).
REMOVAL_KINDS = (("contrast", "contrastive_contrast", "top contrastive: contrast", OKABE_ITO["vermillion"]),
                 ("contrast", "random_pair_contrast", "two random removals: contrast", GREY),
                 ("shift", "wanda-pooled", "top pooled Wanda: shift vs dense", OKABE_ITO["orange"]),
                 ("shift", "random-0", "random: shift vs dense", OKABE_ITO["purple"]))


def _removal(ax, rows) -> None:
    w = 0.8 / len(REMOVAL_KINDS)
    for j, (where, key, _, c) in enumerate(REMOVAL_KINDS):
        cs = [getattr(row, key) if where == "contrast" else row.shift_vs_dense[key] for row in rows]
        x = np.arange(len(rows)) + (j - len(REMOVAL_KINDS) / 2 + 0.5) * w
        ax.bar(x, [c_.shift for c_ in cs], w, color=c, yerr=yerr([c_.shift for c_ in cs], [c_.shift_ci95 for c_ in cs]))
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_xticks(range(len(rows)), [f"{100 * r.fraction:g} % per row" for r in rows])
    ax.set_ylabel("nats/token (preference for pole A)")
    ax.set_title("Removal, matched count per row")


def fig_ablation(res: StudyResults) -> Figure:
    """Restoring layer groups inside both poles' masks (share of the full pole contrast; the panel is left out when
    the restore was not computed), and removal of top contrastive vs top pooled-Wanda vs random weights at a
    matched count per row."""
    a = res.analysis
    need(a is not None and a.restore is not None and a.removal is not None and bool(a.removal.rows),
         "two-mask restore / matched-count removal ablation")
    panels = 2 if a.restore.rows else 1
    fig, axes = plt.subplots(1, panels, figsize=(WIDTH, 3.0), squeeze=False)
    if panels == 2:
        _restore(axes[0, 0], a.restore)
    _removal(axes[0, -1], a.removal.rows)
    handles = [Patch(color=c, label=label) for _, _, label, c in REMOVAL_KINDS]
    if panels == 2:
        handles.append(Line2D([], [], color=OKABE_ITO["vermillion"], ls="--", label="full masks (restore)"))
    fig.suptitle(f"Ablations ({a.set}, {a.n_items} items"
                 + ("; restore not computed: its gate did not pass)" if panels == 1 else ")"))
    legend_below(fig, handles, ncol=2)
    return fig


def fig_stability(res: StudyResults) -> Figure:
    """Jaccard agreement of masks from bootstrap resamples of the calibration set, next to two random masks."""
    a = res.analysis
    need(a is not None and bool(a.stability), "bootstrap stability")
    fig, ax = plt.subplots(figsize=(WIDTH / 2, 2.8))
    for i, r in enumerate(a.stability):
        ax.bar(i, r.mean_jaccard, 0.5, color=color(r.method, i), alpha=0.35)
        ax.scatter(np.full(len(r.pairwise_jaccard), i), r.pairwise_jaccard, color=color(r.method, i), s=12, zorder=3)
    ax.axhline(a.stability[0].random_jaccard, color=GREY, ls="--")
    ax.set_xticks(range(len(a.stability)), [r.method for r in a.stability])
    ax.set_ylabel("pairwise Jaccard")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Stability under calibration resampling ({a.set})")
    legend_below(fig, [Patch(color=GREY, alpha=0.35, label="mean"), Line2D([], [], color=GREY, marker="o", ls="none",
                       label="each pair of resamples"), Line2D([], [], color=GREY, ls="--", label="two random masks")],
                 ncol=2)
    return fig


def fig_sweeps(res: StudyResults) -> Figure:
    """Pole contrast against sparsity and against calibration size (contrastive Wanda), 95 % intervals."""
    a = res.analysis
    need(a is not None and a.sparsity_sweep is not None and a.calibration_sweep is not None, "sweeps")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.8), sharey=True)
    for ax, sweep, key, label in ((axes[0], a.sparsity_sweep, "sparsity", "sparsity"),
                                  (axes[1], a.calibration_sweep, "calib_size", "calibration texts per pole")):
        x = [getattr(r, key) for r in sweep.rows]
        y = [r.contrast.shift for r in sweep.rows]
        ax.errorbar(x, y, yerr=yerr(y, [r.contrast.shift_ci95 for r in sweep.rows]), marker="o",
                    color=color(sweep.method))
        ax.axhline(0, color=GREY, lw=0.8)
        ax.set_xlabel(label)
        if key == "calib_size":
            ax.set_xscale("log")
            ax.set_xticks(x, [str(v) for v in x])
            ax.minorticks_off()
        ax.set_title(f"{label.capitalize()} sweep")
    axes[0].set_ylabel("pole contrast, nats/token")
    fig.suptitle(f"Sweeps of {a.sparsity_sweep.method} on {a.set} ({a.n_items} items, 95 % CI)")
    fig.tight_layout()
    return fig


def fig_capability(res: StudyResults) -> Figure:
    """Perplexity on neutral text, and general-knowledge accuracy, summed (bars, 95 % interval: the number the
    report quotes) and per token (diamonds), dense against each mask."""
    a = res.analysis
    need(a is not None and bool(a.capability), "general-capability checks")
    cap = a.capability
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.0))
    x = np.arange(len(cap))
    ppl = [c.perplexity.perplexity for c in cap]
    ax.bar(x, ppl, color=PALETTE[0], yerr=yerr(ppl, [np.exp(c.perplexity.mean_nll_ci95) for c in cap]))
    ax.set_yscale("log")
    ax.set_ylabel("perplexity (neutral text, log scale)")
    acc = [c.general_choice.summed.accuracy for c in cap]
    ax2.bar(x, acc, color=PALETTE[1], yerr=yerr(acc, [c.general_choice.summed.accuracy_ci95 for c in cap]))
    ax2.scatter(x, [c.general_choice.length_normalized.accuracy for c in cap], marker="D", color="k", zorder=3, s=18)
    ax2.axhline(0.5, color=GREY, ls="--", lw=0.8)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("general-knowledge accuracy")
    for axis in (ax, ax2):
        axis.set_xticks(x, [c.condition for c in cap], rotation=30, ha="right")
    fig.suptitle(f"General capability, dense vs masked ({a.set}, {cap[0].general_choice.n} items)")
    legend_below(fig, [Patch(color=PALETTE[1], label="accuracy, summed log-likelihood (95 % CI)"),
                       Line2D([], [], color="k", marker="D", ls="none", label="accuracy per token"),
                       Line2D([], [], color=GREY, ls="--", lw=0.8, label="chance")], ncol=3)
    return fig
