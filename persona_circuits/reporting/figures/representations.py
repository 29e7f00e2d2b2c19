"""Representations: layer probes against lexical baselines, neutral-text decoding of the active intervention,
split-half reliability of the pole difference."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ...results import StudyResults
from .common import need
from .style import GREY, OKABE_ITO, PALETTE, WIDTH, free_slot, grid, legend_below, legend_in


def fig_probes(res: StudyResults) -> Figure:
    """Held-out accuracy of each layer's probe (95 % band; filled dots: informative, i.e. above both baselines)
    next to the bag-of-words and embedding baselines and the shuffled-label control."""
    sets = res.sets
    need(all(s.probes for s in sets.values()), "probes with lexical baselines")
    fig, axes, slot = grid(len(sets), 2, 2.2, legend_slot=free_slot(len(sets), 2), sharey=True)
    for ax, (name, s) in zip(axes, sets.items()):
        pr = s.probes
        L = np.array([r.layer for r in pr.layers])
        acc = np.array([r.test_accuracy for r in pr.layers])
        ci = np.array([r.test_accuracy_ci95 for r in pr.layers])
        ax.plot(L, acc, color=OKABE_ITO["blue"])
        ax.fill_between(L, ci[:, 0], ci[:, 1], color=OKABE_ITO["blue"], alpha=0.2, lw=0)
        inf = np.array([r.informative for r in pr.layers])
        ax.scatter(L[inf], acc[inf], color=OKABE_ITO["blue"], zorder=3, s=14)
        ax.axhline(pr.bag_of_words.test_accuracy, color=OKABE_ITO["vermillion"], ls="--")
        ax.axhline(pr.embedding.test_accuracy, color=OKABE_ITO["green"], ls="-.")
        ax.plot(L, [r.shuffled_test_accuracy for r in pr.layers], color=GREY, lw=0.8)
        ax.axhline(0.5, color=GREY, lw=0.6, ls=":")
        ax.set_ylim(0.3, 1.02)
        ax.set_title(f"{name}: {pr.n_informative} of {pr.n_comparisons} informative")
    fig.suptitle("Linear probes decoding the pole, against lexical baselines on the same split")
    handles = [Line2D([], [], color=OKABE_ITO["blue"], label="layer probe (band: 95 % CI)"),
               Line2D([], [], color=OKABE_ITO["blue"], marker="o", ls="none", label="informative (beats both)"),
               Line2D([], [], color=OKABE_ITO["vermillion"], ls="--", label="bag of words (TF-IDF)"),
               Line2D([], [], color=OKABE_ITO["green"], ls="-.", label="embedding probe"),
               Line2D([], [], color=GREY, lw=0.8, label="shuffled labels"),
               Line2D([], [], color=GREY, lw=0.6, ls=":", label="chance")]
    legend_in(fig, slot, handles, xlabel="block", ylabel="held-out accuracy")
    return fig


#: Short row labels of the decoding heatmaps.
DECODING_LABEL = {"contrastive-wanda masks": "c-Wanda masks", "persona prompts": "persona prompts",
                  "two random masks (reference)": "two random masks"}


def fig_neutral_decoding(res: StudyResults) -> Figure:
    """Which pole's intervention is active, decoded from neutral text: accuracy per layer (colour) of each pair of
    interventions and of its label-swapped control (rows), dots where the 95 % interval lies above chance."""
    sets = res.sets
    need(all(s.neutral_decoding for s in sets.values()), "neutral-text decoding")
    fig, axes, slot = grid(len(sets), 2, 1.55, legend_slot=True)
    image = None
    for i, (ax, (name, s)) in enumerate(zip(axes, sets.items())):
        labels, rows, dots = [], [], []
        for label, d in s.neutral_decoding.items():
            labels += [DECODING_LABEL.get(label, label), "control"]
            rows += [[r.accuracy for r in d.layers], [r.shuffled_accuracy for r in d.layers]]
            dots += [[r.decodable for r in d.layers], [False] * len(d.layers)]
        image = ax.imshow(np.array(rows), vmin=0.5, vmax=1.0, aspect="auto", interpolation="nearest")
        yy, xx = np.nonzero(np.array(dots))
        ax.scatter(xx, yy, s=5, color="white", edgecolor="k", lw=0.3)
        ax.set_yticks(range(len(labels)), labels if i % 2 == 0 else [""] * len(labels))
        n = next(iter(s.neutral_decoding.values())).n_texts
        ax.set_title(f"{name} ({n} neutral texts)")
    fig.suptitle("Which pole's intervention is active? Decoded from neutral text")
    fig.supxlabel("block")
    cax = slot.inset_axes([0.1, 0.12, 0.8, 0.1])
    fig.colorbar(image, cax=cax, orientation="horizontal")
    cax.set_title("accuracy, cross-validated by text", fontsize=8)
    slot.legend(handles=[Line2D([], [], color="white", marker="o", mec="k", ls="none",
                                label="decodable (95 % CI above 50 %)"),
                         Patch(color="none", label="control: labels swapped for half\nthe texts of every fold")],
                loc="upper center", bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    return fig


def fig_similarity(res: StudyResults) -> Figure:
    """Split-half reliability of the pole-difference direction per layer against its label-permutation null
    (band: null mean to 95th percentile; dots: p < 0.05); right: the paper's cosine of the means, for comparison."""
    import matplotlib.pyplot as plt

    sets = res.sets
    need(all(s.similarity for s in sets.values()), "split-half reliability")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.0))
    for i, s in enumerate(sets.values()):
        c = PALETTE[i % len(PALETTE)]
        rows = s.similarity.layers
        L = np.array([r.layer for r in rows])
        rel = np.array([r.reliability for r in rows])
        ax.plot(L, rel, color=c)
        ax.fill_between(L, [r.null_mean for r in rows], [r.null_p95 for r in rows], color=c, alpha=0.15, lw=0)
        sig = np.array([r.p_value < 0.05 for r in rows])
        ax.scatter(L[sig], rel[sig], color=c, s=8, zorder=3)
        ax2.plot(L, [r.cosine_of_means for r in rows], color=c)
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_title("split-half reliability of the difference direction")
    ax.set_ylabel("cos(m(A1) - m(B1), m(A2) - m(B2))")
    ax2.set_title("paper's measure, cos(m_A, m_B): not a test")
    ax2.set_ylabel("cosine of the poles' means")
    for a in (ax, ax2):
        a.set_xlabel("block")
    handles = [Line2D([], [], color=PALETTE[i % len(PALETTE)], label=n) for i, n in enumerate(sets)] + [
        Patch(color=GREY, alpha=0.3, label="permutation null: mean to 95th pct"),
        Line2D([], [], color=GREY, marker="o", ls="none", ms=4, label="p < 0.05")]
    legend_below(fig, handles, ncol=5)
    return fig
