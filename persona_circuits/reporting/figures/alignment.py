"""Alignment per set: each condition's per-token accuracy for both poles, and each method's pole contrast."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ...results import StudyResults
from ..labels import COND_LABEL, COND_ORDER
from .common import yerr
from .style import GREY, PALETTE, cond_color, grid


def fig_main_accuracy(res: StudyResults) -> Figure:
    """Per-token (length-normalised) two-way-choice accuracy of every condition for both poles, 95 % intervals."""
    sets = res.sets
    fig, axes, _ = grid(len(sets), 2, 2.6, sharey=True)
    for ax, (name, s) in zip(axes, sets.items()):
        conds = [c for c in COND_ORDER if any(s.row(c, p) for p in s.poles)]
        for j, p in enumerate(s.poles):
            rows = [(i, s.row(c, p)) for i, c in enumerate(conds) if s.row(c, p)]
            x = np.array([i for i, _ in rows]) + (j - 0.5) * 0.4
            v = [r.accuracy_length_normalized for _, r in rows]
            ax.bar(x, v, 0.4, color=PALETTE[j], yerr=yerr(v, [r.accuracy_length_normalized_ci95 for _, r in rows]),
                   label=p, error_kw={"lw": 0.8})
        ax.axhline(0.5, color=GREY, lw=0.8, ls="--")
        ax.set_xticks(range(len(conds)), [COND_LABEL[c] for c in conds], rotation=55, ha="right")
        ax.set_ylim(0, 1.28)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(f"{name} (n = {s.n_test})")
        ax.legend(loc="upper left", ncol=2, borderaxespad=0.1)
    fig.supylabel("accuracy per token (share of items)")
    fig.suptitle("Share of held-out items where the pole's answer is preferred per token (95 % CI; dashed: chance)")
    fig.tight_layout()
    return fig


def fig_pole_contrast(res: StudyResults) -> Figure:
    """Pole contrast of every method on every held-out item (95 % intervals), one panel per set."""
    sets = res.sets
    fig, axes, _ = grid(len(sets), 2, 2.4)
    for ax, (name, s) in zip(axes, sets.items()):
        cs = s.contrasts
        v = [c.shift for c in cs]
        ax.bar(range(len(cs)), v, 0.7, color=[cond_color(c.condition, i) for i, c in enumerate(cs)],
               yerr=yerr(v, [c.shift_ci95 for c in cs]), error_kw={"lw": 0.8})
        ax.axhline(0, color=GREY, lw=0.8)
        ax.set_xticks(range(len(cs)), [COND_LABEL.get(c.condition, c.condition) for c in cs], rotation=40, ha="right")
        ax.set_title(name)
    fig.supylabel("pole contrast, nats/token")
    fig.suptitle("Pole contrast: the same items under the pole-A vs the pole-B condition (95 % CI)")
    fig.tight_layout()
    return fig


__all__ = ["fig_main_accuracy", "fig_pole_contrast"]
