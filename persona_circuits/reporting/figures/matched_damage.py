"""The matched-damage table as a figure: per (method, target) row, the contrast that the null test judged and the
null's bound on the same items, the achieved damage, the verdict, and the rows whose target was not reached."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ...results import Headline, MatchedRow, StudyResults
from .common import need, padded, yerr
from .style import GREY, color, free_slot, grid, legend_in

SHORT = {"contrastive-wanda": "cW", "soft-mask": "soft", "steering": "steer", "projection-gate": "gate",
         "steering-all": "steer\nall", "gate-bias": "gate\nbias"}


def _tick(r: MatchedRow) -> str:
    name = SHORT.get(r.method, r.method)
    out = "\noutside" if r.within_tolerance is False else ""
    return f"{name}\n{r.target_kl:g}\n" + (f"({r.damage_kl:.3f}){out}" if r.reached else "(not\nreached)")


def _bar(ax, i: int, r: MatchedRow) -> list[float]:
    """One reached row: bar = tested contrast with its interval, black tick = null bound, grey dots = null draws."""
    c = color(r.method)
    ax.bar(i, r.tested_shift, 0.7, color=c, alpha=0.85, yerr=yerr([r.tested_shift], [r.tested_shift_ci95]),
           error_kw={"ecolor": "k", "lw": 1.0})
    ys = [0.0, *r.tested_shift_ci95]
    if r.null_threshold is not None:
        ax.plot([i - 0.4, i + 0.4], [r.null_threshold] * 2, color="k", lw=2.0, zorder=4)
        ys.append(r.null_threshold)
    if r.detectable_shift_adjusted is not None:  # the bound at Holm's strictest step
        ax.plot([i - 0.4, i + 0.4], [r.detectable_shift_adjusted] * 2, color="k", lw=1.0, ls="-.", zorder=4)
        ys.append(r.detectable_shift_adjusted)
    if r.random_direction_null and r.random_direction_null.null_threshold is not None:
        ax.plot([i - 0.4, i + 0.4], [r.random_direction_null.null_threshold] * 2, color="k", lw=1.4, ls=":", zorder=4)
        ys.append(r.random_direction_null.null_threshold)
    if r.null_shifts:
        ax.scatter(np.full(len(r.null_shifts), i + 0.2), r.null_shifts, s=8, color=GREY, zorder=5, lw=0)
        ys += list(r.null_shifts)
    if not r.null_on_same_items and r.shift is not None:
        ax.scatter([i - 0.2], [r.shift], marker="D", s=16, color="white", edgecolor="k", lw=0.8, zorder=5)
    if r.specific:
        ax.scatter([i], [max(r.tested_shift_ci95[1], r.null_threshold or 0)], marker="*", s=60, color="k", zorder=6,
                   clip_on=False)
    return ys


def _panel(ax, name: str, head: Headline) -> list[float]:
    ys = [0.0]
    for i, r in enumerate(head.matched):
        if r.reached:
            ys += _bar(ax, i, r)
        else:
            ax.bar(i, 0, 0.7, color="none", edgecolor=color(r.method), hatch="///")
            ax.axvspan(i - 0.35, i + 0.35, color=color(r.method), alpha=0.12, lw=0, hatch="///")
    pr = head.points.get("prompt")
    if pr:
        ax.axhline(pr.shift, color="k", ls="--", lw=0.9)
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_xticks(range(len(head.matched)), [_tick(r) for r in head.matched])
    reached = head.reached()
    items = head.null_items(reached[0]) if reached else head.n_items_curve
    ax.set_title(f"{name}: contrast and null on {items} items")
    return ys


def fig_matched_damage(res: StudyResults) -> Figure:
    """Per set and (method, target damage): the contrast the null test judged (bar, 95 % interval) and the null's
    one-sided 95 % bound on the same items (black tick: the bound of the test the row used; thin dash-dotted tick: the bound
    at Holm's strictest step, above which a row passes whatever the others give), the null draws (grey),
    for steering rows the random-direction null's bound beside it (dotted), the achieved damage (in the tick label;
    "outside" when it is outside the tolerance around the target), the verdict (star: persona-specific after Holm
    where the study corrected, as in the table), rows whose target was not reached (hatched) and the persona prompt's
    contrast at its own damage (dashed)."""
    heads = {n: h for n, h in res.headlines().items() if h.matched}
    need(bool(heads), "matched-damage rows")
    fig, axes, slot = grid(len(heads), 2, 2.6, legend_slot=free_slot(len(heads), 2))
    ys = []
    for ax, (name, head) in zip(axes, heads.items()):
        ys += _panel(ax, name, head)
    for ax in axes:
        ax.set_ylim(*padded(ys))
    rows = [r for h in heads.values() for r in h.reached()]
    on_curve_items = any(not r.null_on_same_items for r in rows)
    adjusted = any(r.persona_specific_adjusted is not None for r in rows)
    methods = dict.fromkeys(r.method for h in heads.values() for r in h.matched)
    centres = {r.null_center for r in rows}
    kind = "".join(f"{k} " for k in [" / ".join(sorted({r.null_kind for r in rows if r.null_kind}))] if k)
    centre = f", {centres.pop()} centre" if len(centres) == 1 and None not in centres else ""
    handles = [Patch(color=color(m), label=f"{m} ({SHORT.get(m, m)})") for m in methods] + [
        Line2D([], [], color="k", lw=2, label=f"{kind}null: one-sided 95 % bound{centre} (the bar's items)"),
        Line2D([], [], color=GREY, marker=".", ls="none", label="null draws"),
        *([Line2D([], [], color="k", lw=1.0, ls="-.", label="bound at Holm's strictest step (1 − 0.05/m)")]
          if any(r.detectable_shift_adjusted is not None for r in rows) else []),
        Line2D([], [], color="k", marker="*", ms=9, ls="none",
               label="persona-specific" + (" (Holm)" if adjusted else "")),
        Line2D([], [], color="k", ls="--", lw=0.9, label="persona prompt (own damage, all items)")]
    if any(r.random_direction_null for r in rows):
        handles.append(Line2D([], [], color="k", ls=":", lw=1.4, label="steering: random-direction bound (beside)"))
    if on_curve_items:
        handles.append(Line2D([], [], marker="D", color="white", mec="k", ls="none",
                              label="contrast on all items (no null there)"))
    fig.suptitle("Matched damage: " + ("bars and bounds on the curve items (strength-matched nulls)" if on_curve_items else
                                       "every held-out item, null on the same items"
                                       + (", each draw damage-matched" if rows and all(r.damage_matched for r in rows)
                                          else "")))
    legend_in(fig, slot, handles, ylabel="pole contrast, nats/token",
              xlabel="method, target KL (achieved KL on neutral text)")
    return fig
