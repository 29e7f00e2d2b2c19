"""The 16 MBTI types by composition: per method, a heat map of each type's pole contrast on each axis, with the
verdicts of the types' null tests."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...results import StudyResults, TypesResult
from .common import need
from .style import WIDTH, legend_below


def _matrix(t: TypesResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shifts (types x axes; NaN where not measured), Holm verdicts and uncorrected verdicts."""
    shape = (len(t.rows), len(t.axes))
    shifts, holm, raw = np.full(shape, np.nan), np.zeros(shape, bool), np.zeros(shape, bool)
    for i, r in enumerate(t.rows):
        for c in r.contrasts:
            if c.axis in t.axes:
                j = t.axes.index(c.axis)
                shifts[i, j], holm[i, j], raw[i, j] = c.shift, bool(t.verdict(r, c)), bool(c.persona_specific)
    return shifts, holm, raw


def fig_types(res: StudyResults) -> Figure:
    """Per method (one panel each): the pole contrast towards each type's own letter (rows: the 16 types) on each
    axis (columns), with the axes' conditions composed; ``*`` persona-specific after Holm's correction, ``°`` above
    the bound before correction only; grey: not measured (the type pair did not reach its damage)."""
    types = [t for t in res.types or [] if t.rows]
    need(bool(types), "16-type results")
    mats = [_matrix(t) for t in types]
    lim = max(float(np.nanmax(np.abs(m[0]))) if np.isfinite(m[0]).any() else 0.0 for m in mats) or 1.0
    fig = Figure(figsize=(min(WIDTH, 3.0 * len(types) + 1.2), 0.2 * max(len(t.rows) for t in types) + 1.8))
    axes = np.atleast_1d(fig.subplots(1, len(types), squeeze=False)[0])
    im = None
    for ax, t, (shifts, holm, raw) in zip(axes, types, mats):
        im = ax.imshow(np.ma.masked_invalid(shifts), cmap="PuOr", vmin=-lim, vmax=lim, aspect="auto")
        for (i, j), v in np.ndenumerate(shifts):
            mark = "*" if holm[i, j] else "°" if raw[i, j] else ""
            if mark and np.isfinite(v):
                ax.text(j, i, mark, ha="center", va="center", fontsize=10)
        ax.set_xticks(range(len(t.axes)), [a.removeprefix("mbti-") for a in t.axes])
        ax.set_yticks(range(len(t.rows)), [r.type for r in t.rows])
        target = f", KL {t.target_kl:g}" if t.target_kl is not None else ""
        ax.set_title(f"{t.method}{target}")
    fig.colorbar(im, ax=axes[-1], label="contrast towards the letter, nats/token (all panels)", shrink=0.9)
    fig.suptitle("16 types: each axis's pole contrast with the four axes composed")
    handles = [Line2D([], [], color="k", marker="$*$", ls="none", ms=8, label="persona-specific (Holm)"),
               Line2D([], [], color="k", marker="$°$", ls="none", ms=8, label="above the bound, uncorrected only")]
    legend_below(fig, handles, ncol=2)
    return fig
