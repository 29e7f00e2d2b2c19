"""Mask structure: sparsity per block and module type, overlap between the two poles' masks."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...results import StudyResults
from .common import need
from .style import GREY, WIDTH, color, legend_below

MARKERS = ("o", "s", "^", "v", "D")


def fig_sparsity(res: StudyResults) -> Figure:
    """Share of weights removed per block, attention (solid) and MLP (dashed), for each method's first-pole mask."""
    import matplotlib.pyplot as plt

    name = res.analysis_set_name
    s = res.sets[name]
    need(bool(s.sparsity), "sparsity profiles")
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    seen: dict[tuple, str] = {}
    labels = {}
    for k, (meth, by_pole) in enumerate(s.sparsity.items()):
        prof = by_pole[s.poles[0]].per_block
        b = [r.block for r in prof]
        attn, mlp = [r.attn for r in prof], [r.mlp for r in prof]
        key = (tuple(attn), tuple(mlp))
        labels[meth] = meth + (f" (same as {seen[key]})" if key in seen else "")
        seen.setdefault(key, meth)
        marker = MARKERS[k % len(MARKERS)]
        ax.plot(b, attn, color=color(meth), ls="-", marker=marker, ms=3.5, mfc="none")
        ax.plot(b, mlp, color=color(meth), ls="--", marker=marker, ms=3.5, mfc="none")
    ax.set_xlabel("block")
    ax.set_ylabel("share of weights removed")
    ax.set_ylim(0, 1)
    ax.set_title(f"Mask sparsity per block and module type ({name}, pole {s.poles[0]})")
    handles = [Line2D([], [], color=color(m), marker=MARKERS[k % len(MARKERS)], mfc="none", label=labels[m])
               for k, m in enumerate(s.sparsity)] + [
        Line2D([], [], color=GREY, ls="-", label="attention"), Line2D([], [], color=GREY, ls="--", label="MLP")]
    legend_below(fig, handles, ncol=3)
    return fig


def fig_overlap(res: StudyResults) -> Figure:
    """Difference rate between the two poles' masks per set and method (log scale), next to two random masks and
    the paper's Wanda rates; right: per block on the analysis set."""
    import matplotlib.pyplot as plt

    sets = {n: s for n, s in res.sets.items() if s.overlap}
    need(bool(sets), "mask overlaps")
    meths = list(next(iter(sets.values())).overlap)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.0))
    w = 0.8 / len(meths)
    x = np.arange(len(sets))
    for j, m in enumerate(meths):
        vals = [100 * s.overlap[m].overall.difference_rate for s in sets.values()]
        ax.bar(x + (j - len(meths) / 2 + 0.5) * w, vals, w, color=color(m, j) if m != "random" else GREY)
    paper = res.paper.mbti_difference_rate if res.paper else {}
    px = [i for i, n in enumerate(sets) if n in paper]
    ax.hlines([paper[n] for n in sets if n in paper], np.array(px) - 0.4, np.array(px) + 0.4, color="k", lw=2)
    ax.set_xticks(x, list(sets), rotation=30, ha="right")
    ax.set_ylabel("mask entries that differ (%)")
    ax.set_yscale("log")
    ax.set_title("Opposite-pole masks: difference rate")
    name = res.analysis_set_name
    for j, m in enumerate(meths):
        pb = res.sets[name].overlap[m].per_block
        ax2.plot([r.block for r in pb], [100 * r.difference_rate for r in pb], marker=".",
                 color=color(m, j) if m != "random" else GREY)
    ax2.set_xlabel("block")
    ax2.set_ylabel("difference rate (%)")
    ax2.set_yscale("log")
    ax2.set_title(f"Per block ({name})")
    handles = [Line2D([], [], color=color(m, j) if m != "random" else GREY, lw=6, label=m) for j, m in enumerate(meths)]
    if px:
        handles.append(Line2D([], [], color="k", lw=2, label="paper (Wanda, LLaMA)"))
    legend_below(fig, handles, ncol=5)
    return fig
