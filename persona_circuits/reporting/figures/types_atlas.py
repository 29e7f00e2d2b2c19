"""Optional figures: the 16 MBTI types (axis masks composed) and the atlas of overlaps between persona sets."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ...results import StudyResults
from .common import need
from .style import WIDTH


def fig_types(res: StudyResults) -> Figure:
    """Pole contrast of each axis (columns) for each of the 16 types (rows) with the axis masks composed; ``*``
    where the contrast beats its null."""
    t = res.types
    need(t is not None and bool(t.rows), "16-type results")
    shifts = np.full((len(t.rows), len(t.axes)), np.nan)
    for i, r in enumerate(t.rows):
        for c in r.contrasts:
            if c.axis in t.axes:
                shifts[i, t.axes.index(c.axis)] = c.shift
    lim = float(np.nanmax(np.abs(shifts))) or 1.0
    fig, ax = plt.subplots(figsize=(WIDTH / 2, 0.22 * len(t.rows) + 1.4))
    im = ax.imshow(shifts, cmap="PuOr", vmin=-lim, vmax=lim, aspect="auto")
    for i, r in enumerate(t.rows):
        for c in r.contrasts:
            if c.persona_specific and c.axis in t.axes:
                ax.text(t.axes.index(c.axis), i, "*", ha="center", va="center", fontsize=10)
    ax.set_xticks(range(len(t.axes)), t.axes)
    ax.set_yticks(range(len(t.rows)), [r.type for r in t.rows])
    ax.set_title("16 types: each axis's pole contrast (* beats its null)")
    fig.colorbar(im, ax=ax, label="pole contrast, nats/token")
    fig.tight_layout()
    return fig


def fig_atlas(res: StudyResults) -> Figure:
    """Jaccard overlap between persona sets' masks per module type or layer (``*``: above the label-swapped null's
    95th percentile), and the cosines between their steering directions."""
    a = res.atlas
    need(a is not None and bool(a.overlaps), "atlas results")
    mats = [(m.by, np.asarray(m.jaccard, float), m.sets, np.asarray(m.null_p95, float) if m.null_p95 else None)
            for m in a.overlaps]
    if a.steering:
        mats.append(("steering cosine", np.asarray(a.steering.cosine, float), a.steering.sets, None))
    cols = min(3, len(mats))
    rows = int(np.ceil(len(mats) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 2.6 * rows), squeeze=False)
    for ax in axes.ravel()[len(mats):]:
        ax.axis("off")
    for ax, (title, m, names, null) in zip(axes.ravel(), mats):
        im = ax.imshow(m, vmin=0 if "cosine" not in title else -1, vmax=1, cmap="viridis")
        if null is not None:
            yy, xx = np.nonzero((m > null) & ~np.eye(len(names), dtype=bool))
            for y, x in zip(yy, xx):
                ax.text(x, y, "*", ha="center", va="center", color="white", fontsize=10)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_title(title if "cosine" in title else f"Jaccard, {title}")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("Atlas: overlap between persona sets" + (f" ({a.method})" if a.method else ""))
    fig.tight_layout()
    return fig
