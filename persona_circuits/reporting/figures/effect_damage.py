"""Every curve point: each method's pole contrast against its damage over its strength dial, with the null
draws at every strength and their one-sided 95 % bound."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...results import CurvePoint, Headline, StudyResults
from .common import draw_references, method_handles, need, padded, reference_handles, yerr
from .style import GREY, color, free_slot, grid, legend_in, log_axis

FLOOR = 1e-4  # damages below this (dense-like) are drawn at it on the log axis


def _x(v) -> np.ndarray:
    return np.maximum(np.asarray(v, dtype=float), FLOOR)


def _curve(ax, method: str, pts: list[CurvePoint]) -> None:
    c = color(method)
    x = _x([p.damage_kl for p in pts])
    y = np.array([p.shift for p in pts])
    ax.errorbar(x, y, yerr=yerr(y, [p.shift_ci95 for p in pts]), color=c, marker="o", ms=3.5, lw=1.2, zorder=3)
    spec = np.array([bool(p.persona_specific) for p in pts])
    ax.scatter(x[spec], y[spec], marker="*", s=70, color=c, edgecolor="k", lw=0.4, zorder=5)
    matched = np.array([p.matched_target is not None for p in pts])
    ax.scatter(x[matched], y[matched], marker="D", s=26, color=c, edgecolor="k", lw=0.4, zorder=4)
    nx = np.concatenate([_x(p.null_damage_kl or []) for p in pts] or [np.zeros(0)])
    ny = np.concatenate([np.asarray(p.null_shifts or [], dtype=float) for p in pts] or [np.zeros(0)])
    ax.scatter(nx, ny, facecolors="none", edgecolors=c, s=12, lw=0.7, alpha=0.7, zorder=2)


def _bounds(ax, method: str, pts: list[CurvePoint], ylim: tuple[float, float]) -> None:
    """The null's bound at the nulls' mean damage (dotted); a bound above the axis as a triangle at its top."""
    b = sorted((p.null_damage_mean, p.null_threshold) for p in pts
               if p.null_threshold is not None and p.null_damage_mean is not None)
    if not b:
        return
    bx, by = _x([v for v, _ in b]), np.array([v for _, v in b])
    ax.plot(bx, np.minimum(by, ylim[1]), color=color(method), ls=":", lw=1.1, zorder=2)
    off = by > ylim[1]
    ax.scatter(bx[off], np.full(off.sum(), ylim[1]), marker="^", s=22, color=color(method), clip_on=False, zorder=5)


def _sizes(head: Headline) -> str:
    return (f"{head.n_items_curve} items per point, {head.null_draws} null draws "
            f"({head.null_draws_matched} at the matched strengths)")


def _y_values(head: Headline) -> list[float]:
    """What the shared y range must show: every contrast and null draw, and the bounds up to the largest target."""
    near = 2 * max(head.targets, default=1.0)
    ys = [v for pts in head.curves.values() for p in pts for v in (*p.shift_ci95, *(p.null_shifts or []))]
    ys += [p.null_threshold for pts in head.curves.values() for p in pts
           if p.null_threshold is not None and p.damage_kl <= near]
    return ys + [v for p in head.points.values() if p.damage_kl is not None for v in p.shift_ci95]


def fig_effect_damage(res: StudyResults) -> Figure:
    """Pole contrast against damage over each method's strength dial, one panel per set (shared axes). Hollow:
    the null draws at each strength; dotted: their one-sided 95 % bound at the nulls' mean damage (triangle: the
    bound lies above the axis); star: persona-specific; diamond: the strengths matched to the target damages
    (dashed lines). Persona prompt, RAG and LoRA: single points on every held-out item."""
    heads = res.headlines()
    need(bool(heads), "effect-damage curves")
    fig, axes, slot = grid(len(heads), 2, 2.5, legend_slot=free_slot(len(heads), 2))
    same = len({(h.n_items_curve, h.null_draws, h.null_draws_matched) for h in heads.values()}) == 1
    ylim = padded(v for h in heads.values() for v in _y_values(h))
    xs = [p.damage_kl for h in heads.values() for pts in h.curves.values() for p in pts]
    xs += [p.damage_kl for h in heads.values() for p in h.points.values() if p.damage_kl is not None]
    for i, (ax, (name, head)) in enumerate(zip(axes, heads.items())):
        for t in head.targets:
            ax.axvline(t, color=GREY, lw=0.8, ls="--", zorder=0)
        for method, pts in head.curves.items():
            _curve(ax, method, pts)
            _bounds(ax, method, pts, ylim)
        draw_references(ax, head, res.sets[name], x_floor=FLOOR)
        ax.axhline(0, color=GREY, lw=0.8, zorder=0)
        log_axis(ax, _x(xs))
        ax.set_ylim(*ylim)
        ax.set_title(name if same else f"{name}: {_sizes(head)}")
        if i % 2:
            ax.tick_params(labelleft=False)
    if same:
        fig.suptitle(f"Effect against damage: {_sizes(head)}")
    handles = method_handles((m for h in heads.values() for m in h.curves), long=True) + [
        Line2D([], [], color=GREY, marker="o", mfc="none", ls="none", label="null draws (hollow)"),
        Line2D([], [], color=GREY, ls=":", label="null one-sided 95 % bound"),
        Line2D([], [], color=GREY, marker="^", ls="none", label="bound above the axis"),
        Line2D([], [], color=GREY, marker="*", mec="k", ms=9, ls="none", label="persona-specific"),
        Line2D([], [], color=GREY, marker="D", mec="k", ls="none", label="matched strength"),
        Line2D([], [], color=GREY, ls="--", lw=0.8, label="target damage")] + reference_handles(
        res.sets[n] for n in heads)
    legend_in(fig, slot, handles, ylabel="pole contrast, nats/token",
              xlabel=f"damage: KL(dense || intervened) on neutral text, nats/token (below {FLOOR:g} drawn at {FLOOR:g})")
    return fig
