"""The projection gate against steering: pole contrast against damage for the gate, one-layer steering,
every-layer steering and the soft mask (and the gate's mean push alone, where measured), per set."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...results import StudyResults
from .common import method_handles, need, padded, yerr
from .style import GREY, color, free_slot, grid, legend_in, log_axis

#: The methods drawn, in order (the first four are the issue's comparison).
GATE_METHODS = ("projection-gate", "steering", "steering-all", "soft-mask", "gate-bias")
FLOOR = 1e-4


def fig_gate(res: StudyResults) -> Figure:
    """Per set: each method's curve (line: its strength grid on the curve items) and its matched-damage rows
    (diamonds with the contrast's 95 % interval, on every held-out item), contrast against held-out damage."""
    heads = {n: h for n, h in res.headlines().items()
             if "projection-gate" in h.curves or any(r.method == "projection-gate" for r in h.matched)}
    need(bool(heads), "projection-gate rows")
    fig, axes, slot = grid(len(heads), 2, 2.5, legend_slot=free_slot(len(heads), 2))
    xs, ys, drawn = [], [], []
    for ax, (name, head) in zip(axes, heads.items()):
        for t in head.targets:
            ax.axvline(t, color=GREY, lw=0.8, ls="--", zorder=0)
        for m in GATE_METHODS:
            pts = head.curves.get(m, [])
            rows = [r for r in head.matched if r.method == m and r.reached and r.damage_kl is not None]
            if not pts and not rows:
                continue
            drawn.append(m)
            if pts:
                x = np.maximum([p.damage_kl for p in pts], FLOOR)
                ax.plot(x, [p.shift for p in pts], color=color(m), lw=1.0, marker="o", ms=2.5, alpha=0.7, zorder=2)
                xs += list(x)
                ys += [p.shift for p in pts]
            if rows:
                x = np.maximum([r.damage_kl for r in rows], FLOOR)
                y = [r.shift for r in rows]
                ax.errorbar(x, y, yerr=yerr(y, [r.shift_ci95 for r in rows]), color=color(m), marker="D", ms=4, ls="none",
                            mec="k", mew=0.4, zorder=4)
                xs += list(x)
                ys += [v for r in rows for v in r.shift_ci95]
        ax.axhline(0, color=GREY, lw=0.8, zorder=0)
        ax.set_title(name)
    ylim = padded(ys or [0.0, 1.0])
    for ax in axes:
        log_axis(ax, np.asarray(xs or [FLOOR, 1.0]))
        ax.set_ylim(*ylim)
    handles = method_handles(drawn, long=True) + [
        Line2D([], [], color=GREY, marker="o", ms=3, label="curve (curve items)"),
        Line2D([], [], color=GREY, marker="D", mec="k", ls="none", label="matched damage (every item, 95 % CI)"),
        Line2D([], [], color=GREY, ls="--", lw=0.8, label="target damage")]
    legend_in(fig, slot, handles, ylabel="pole contrast, nats/token",
              xlabel=f"damage: KL(dense || intervened) on neutral text, nats/token (below {FLOOR:g} drawn at {FLOOR:g})")
    return fig
