"""The headline figure: at each target damage, every method's pole contrast on the items of its null test
against the null band of the test the row used (zero-centred or estimated centre), with verdict markers from the
matched-damage table's own rows."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ...results import Headline, MatchedRow, StudyResults
from .common import (draw_references, marker_handles, method_handles, need, padded, reference_handles, yerr)
from .style import GREY, color, grid, legend_below, log_axis

#: Horizontal offset between methods at one target, in decades of damage (the damage axis is logarithmic).
DODGE = 0.09
BAND = 0.03


def band_base(row: MatchedRow) -> float | None:
    """Where a row's null band starts: 0 for the zero-centred test, the draws' mean for the estimated centre."""
    return 0.0 if row.null_center == "zero" else row.null_shift_mean


def _row_x(row: MatchedRow, j: int, n_methods: int) -> float:
    """The row's x: its achieved damage (the target when not reached), offset by its method's place."""
    return (row.damage_kl if row.reached else row.target_kl) * 10 ** (DODGE * (j - (n_methods - 1) / 2))


def _draw_row(ax, row: MatchedRow, x: float) -> list[float]:
    """One reached row: null band and draws, the tested contrast (filled when persona-specific). Returns its y values."""
    c = color(row.method)
    ys = [row.tested_shift, *row.tested_shift_ci95]
    lo = band_base(row)
    if lo is not None and row.null_threshold is not None:
        ax.fill_between([x / 10 ** BAND, x * 10 ** BAND], lo, row.null_threshold, color=c, alpha=0.3, lw=0, zorder=1)
        ys += [lo, row.null_threshold]
    if row.null_shifts:
        ax.scatter(np.full(len(row.null_shifts), x), row.null_shifts, s=6, color=GREY, zorder=2, lw=0)
        ys += list(row.null_shifts)
    ax.errorbar([x], [row.tested_shift], yerr=yerr([row.tested_shift], [row.tested_shift_ci95]), color=c, marker="o",
                ms=5.5, mfc=c if row.specific else "white", mew=1.3, zorder=3, ls="none")
    return ys


def _panel(ax, name: str, head: Headline, res: StudyResults) -> list[float]:
    methods = list(dict.fromkeys(r.method for r in head.matched))
    ys = [0.0]
    for t in head.targets:
        ax.axvline(t, color=GREY, lw=0.8, ls="--", zorder=0)
    for r in head.matched:
        if r.reached:
            ys += _draw_row(ax, r, _row_x(r, methods.index(r.method), len(methods)))
        else:
            ax.plot([_row_x(r, methods.index(r.method), len(methods))], [0.0], marker="x", color=color(r.method), ms=8, mew=2, ls="none", zorder=6)
    draw_references(ax, head, res.sets[name])
    ys += [v for p in head.points.values() if p.damage_kl for v in p.shift_ci95]
    ax.axhline(0, color=GREY, lw=0.8, zorder=0)
    log_axis(ax, [*head.targets, *(r.damage_kl for r in head.reached()),
                  *(p.damage_kl for p in head.points.values() if p.damage_kl)])
    reached = head.reached()
    items = head.null_items(reached[0]) if reached else head.n_items_curve
    ax.set_title(f"{name} ({items} items)")
    return ys


def primary_line(res: StudyResults) -> str:
    """The primary family's verdicts, per method (the figure leads with them; empty for older results)."""
    if not res.primary:
        return ""
    per: dict = {}
    for t in res.primary:
        per.setdefault(t.method, []).append(t)
    return ("\nPrimary family (mean z over the sets, Holm): " + "; ".join(
        f"{m} persona-specific at {sum(t.persona_specific for t in ts)} of {len(ts)} targets" for m, ts in per.items()))


def fig_headline(res: StudyResults) -> Figure:
    """Pole contrast against damage at the matched strengths, one panel per set (shared y): the null band of the
    test each row used (shaded: from 0 to the zero-centred bound, or from the draws' mean to the estimated-centre
    bound) and its draws (grey dots), the real contrast on the same items (filled: persona-specific after Holm's
    correction where the study made one, as in the table), the persona prompt, RAG and LoRA."""
    heads = res.headlines()
    need(any(h.matched for h in heads.values()), "matched-damage rows")
    fig, axes, _ = grid(len(heads), 4, 2.0)
    ys = []
    for ax, (name, head) in zip(axes, heads.items()):
        ys += _panel(ax, name, head, res)
    lo, hi = padded(ys)
    for i, ax in enumerate(axes):
        ax.set_ylim(lo, hi)
        if i % 4:
            ax.tick_params(labelleft=False)
    rows = [r for h in heads.values() for r in h.reached()]
    same = bool(rows) and all(r.null_on_same_items for r in rows)
    matched = bool(rows) and all(r.damage_matched for r in rows)
    kinds = sorted({r.null_kind for r in rows if r.null_kind})
    fig.suptitle("At matched damage: pole contrast against its null"
                 + (f"\n({' / '.join(kinds)} draws, each damage-matched, on the same items)" if matched else
                    "" if same else " (contrast and null on the curve items)") + primary_line(res))
    handles = (method_handles(r.method for h in heads.values() for r in h.matched)
               + marker_handles(any(r.persona_specific_adjusted is not None for r in rows),
                                {r.null_center or "estimated" for r in rows})
               + reference_handles((res.sets[n] for n in heads), zero_drawn=False))
    legend_below(fig, handles, ylabel="pole contrast, nats/token",
                 xlabel="damage: KL(dense || intervened) on neutral text, nats/token; "
                 "methods side by side at each target")
    return fig


__all__ = ["fig_headline"]
