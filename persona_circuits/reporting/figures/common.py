"""What several figures share: the missing-data exception, error bars, the legend handles of the headline's
markers, and the shared y range of a panel grid."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ...results import Headline, ReferencePoint, SetResults
from ..labels import DIAL_LABEL, lora_label, lora_trained
from .style import GREY, color


class FigureDataMissing(Exception):
    """The results lack what a figure needs (written by an older study, or a part the run skipped)."""


def need(cond: bool, what: str) -> None:
    """:class:`FigureDataMissing` unless ``cond``."""
    if not cond:
        raise FigureDataMissing(f"the results have no {what} (an older study, or one that did not run this part)")


def yerr(values: Sequence[float], cis: Sequence[Sequence[float]]) -> np.ndarray:
    """Asymmetric error bars ``[2, n]`` of values and their intervals (never negative)."""
    v = np.asarray(values, dtype=float)
    c = np.asarray(cis, dtype=float).reshape(-1, 2)
    return np.clip(np.stack([v - c[:, 0], c[:, 1] - v]), 0, None)


def padded(values: Iterable[float], pad: float = 0.08) -> tuple[float, float]:
    """A y range that holds every value with a margin."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return -1.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    m = pad * ((hi - lo) or 1.0)
    return lo - m, hi + m


#: The reference points of the headline: marker and label.
REFERENCE_MARKERS = {"prompt": ("s", "persona prompt"), "rag": ("^", "RAG"), "sft": ("P", "LoRA")}


def reference_label(cond: str, s: SetResults) -> str:
    """The legend label of a reference point (LoRA says when its adapters stayed at zero)."""
    return lora_label(s, short=True) if cond == "sft" else REFERENCE_MARKERS[cond][1]


def draw_references(ax, head: Headline, s: SetResults, x_floor: float | None = None) -> None:
    """Persona prompt, RAG and LoRA at their own damage (all items; no null); LoRA hollow when untrained. A damage
    of 0 is drawn at ``x_floor`` on a log axis, or not at all without one."""
    for cond, (marker, _) in REFERENCE_MARKERS.items():
        p: ReferencePoint | None = head.points.get(cond)
        if p is None or p.damage_kl is None or (x_floor is None and p.damage_kl <= 0):
            continue
        hollow = cond == "sft" and lora_trained(s) is False
        ax.errorbar([max(p.damage_kl, x_floor or 0.0)], [p.shift], yerr=yerr([p.shift], [p.shift_ci95]), color="k",
                    marker=marker, ms=5, ls="none", mfc="white" if hollow else "k", zorder=4)


def reference_handles(sets: Iterable[SetResults], zero_drawn: bool = True) -> list:
    """Legend entries of the reference points drawn for ``sets`` (``zero_drawn``: also those at damage 0)."""
    sets = list(sets)
    out = []
    for cond, (marker, label) in REFERENCE_MARKERS.items():
        with_point = [s for s in sets if s.headline and cond in s.headline.points
                      and s.headline.points[cond].damage_kl is not None
                      and (zero_drawn or s.headline.points[cond].damage_kl > 0)]
        if not with_point:
            continue
        if cond == "sft":
            labels = {reference_label(cond, s) for s in with_point}
            label = labels.pop() if len(labels) == 1 else "LoRA (hollow: adapters at zero)"
        out.append(Line2D([], [], color="k", marker=marker, ls="none", label=f"{label}, no null"))
    return out


def method_handles(methods: Iterable[str], long: bool = False) -> list:
    """One coloured patch per method (``long``: with what its strength dial is)."""
    return [Patch(color=color(m), label=DIAL_LABEL.get(m, m) if long else m) for m in dict.fromkeys(methods)]


#: The null band of each test centre (:func:`persona_circuits.measure.nulls.null_test`).
BAND_LABEL = {"estimated": "null band: mean to 95 % bound", "zero": "null band: 0 to zero-centred 95 % bound"}


def marker_handles(adjusted: bool, centres: Iterable[str] = ("estimated",)) -> list:
    """Legend entries of the verdict markers, the null band of each test centre used, and the target lines."""
    verdict = "persona-specific" + (" (Holm)" if adjusted else "")
    return [Line2D([], [], color=GREY, marker="o", ls="none", label=verdict + " (filled)"),
            Line2D([], [], color=GREY, marker="o", mfc="white", ls="none", label="not persona-specific (hollow)"),
            *(Patch(color=GREY, alpha=0.35, label=BAND_LABEL.get(c, f"null band ({c} centre)")) for c in sorted(centres)),
            Line2D([], [], color=GREY, marker=".", ls="none", label="null draws"),
            Line2D([], [], color=GREY, ls="--", lw=0.8, label="target damage"),
            Line2D([], [], color=GREY, marker="x", ls="none", label="target not reached")]
