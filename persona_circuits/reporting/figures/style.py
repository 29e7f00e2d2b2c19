"""The figures' shared style: sizes in points at the saved size (>= 8 pt), the Okabe-Ito colour-blind-safe
palette, one colour per method, panel grids with a legend slot, and deterministic saving in PNG, PDF, SVG."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..._io import atomic_write_bytes  # noqa: E402

#: Okabe & Ito (2008), distinguishable under the common colour-vision deficiencies.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
PALETTE = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky", "yellow", "black")]
GREY = "#8c8c8c"

#: One colour per method (dial) in every figure.
METHOD_COLOR = {"contrastive-wanda": OKABE_ITO["blue"], "contrastive-removal": OKABE_ITO["vermillion"],
                "wanda": OKABE_ITO["orange"], "contrastive-sparse": OKABE_ITO["purple"], "soft-mask": OKABE_ITO["sky"],
                "steering": OKABE_ITO["green"], "random-mask": GREY, "prompt": OKABE_ITO["black"],
                "rag": OKABE_ITO["black"], "sft": OKABE_ITO["black"], "projection-gate": "#a6761d",
                "steering-all": "#005a46", "gate-bias": "#e7298a"}

#: Colours of the conditions without a strength dial (greys, so the methods keep their colours).
COND_COLOR = {"dense": "#bdbdbd", "prompt": "#4d4d4d", "rag": "#8c8c8c", "sft": "#262626",
              "contrastive-wanda+prompt": OKABE_ITO["yellow"]}

#: The smallest text size of any figure, in points at the saved size.
MIN_FONT = 8.0

#: Full text width of a two-column paper, inches; figures are drawn at their printed size.
WIDTH = 7.2

RC = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
      "legend.fontsize": 8, "legend.title_fontsize": 8, "figure.titlesize": 10, "figure.labelsize": 9, "font.family": "DejaVu Sans",
      "axes.prop_cycle": cycler(color=PALETTE), "axes.spines.top": False, "axes.spines.right": False,
      "legend.frameon": False, "lines.linewidth": 1.4, "lines.markersize": 5, "errorbar.capsize": 2,
      "savefig.dpi": 150, "figure.dpi": 100, "pdf.fonttype": 42, "svg.fonttype": "none",
      "svg.hashsalt": "persona-circuits", "image.cmap": "viridis"}

#: Metadata left out so the same results give the same bytes.
_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
             "svg": {"Creator": None, "Date": None}}

FORMATS = ("png", "pdf", "svg")


@contextmanager
def paper_style() -> Iterator[None]:
    """Draw inside this context for the shared style (global rcParams are left as they were)."""
    with matplotlib.rc_context(RC):
        yield


def color(method: str, i: int = 0) -> str:
    """The method's colour (palette order for unknown methods)."""
    return METHOD_COLOR.get(method, PALETTE[i % len(PALETTE)])


def cond_color(cond: str, i: int = 0) -> str:
    """A condition's colour in bar charts: the method's colour for masks and steering, a grey for the others."""
    return COND_COLOR.get(cond) or color(cond, i)


def grid(n: int, cols: int, panel_h: float, legend_slot: bool = False, sharey: bool = False,
         width: float = WIDTH) -> tuple[Figure, list, object | None]:
    """A figure of ``n`` panels in ``cols`` columns; with ``legend_slot`` one more slot (the first free one, or a
    new row) holds the legend. Returns the figure, the panels and the legend axis (or ``None``)."""
    slots = n + (1 if legend_slot else 0)
    cols = max(1, min(cols, slots))
    rows = int(np.ceil(slots / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width, panel_h * rows), squeeze=False, sharey=sharey)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n], (flat[n] if legend_slot else None)


def legend_in(fig: Figure, slot, handles: Sequence, xlabel: str | None = None, ylabel: str | None = None) -> None:
    """Every legend entry in ``slot`` (a free axis of :func:`grid`), or below the panels when there is none; the
    shared axis labels; then the layout."""
    if slot is None:
        legend_below(fig, handles, xlabel=xlabel, ylabel=ylabel)
        return
    slot.legend(handles=list(handles), loc="center", alignment="left")
    if xlabel:
        fig.supxlabel(xlabel)
    if ylabel:
        fig.supylabel(ylabel)
    fig.tight_layout()


def free_slot(n: int, cols: int) -> bool:
    """Whether a grid of ``n`` panels in ``cols`` columns has a free slot for the legend in its last row."""
    return n % cols != 0


def legend_below(fig: Figure, handles: Sequence, ncol: int | None = None, xlabel: str | None = None,
                 ylabel: str | None = None) -> None:
    """Every legend entry under the panels (and above it the shared x label), the figure made taller by their
    height, the shared y label centred on the panels, then the layout. ``ncol`` by default: as many columns as the
    longest label allows at the figure's width."""
    if ncol is None:
        longest = max((len(h.get_label()) for h in handles), default=10)
        ncol = max(1, min(3, int(fig.get_figwidth() * 72 / (4.9 * longest + 40))))
    rows = int(np.ceil(len(handles) / ncol))
    extra = 0.19 * rows + 0.12 + (0.25 if xlabel else 0.0)
    h = fig.get_figheight()
    fig.set_figheight(h + extra)
    fig.legend(handles=list(handles), loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, 0.0))
    top = extra / (h + extra)
    if xlabel:
        fig.supxlabel(xlabel, y=top - 0.2 / (h + extra), va="bottom")
    if ylabel:
        fig.supylabel(ylabel, y=(1 + top) / 2)
    fig.tight_layout(rect=(0, top, 1, 1))


def log_axis(ax, values, axis: str = "x") -> None:
    """A logarithmic axis spanning ``values`` with ticks at 1 and 3 of each decade, labelled plainly."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    v = np.asarray([x for x in values if x and x > 0], dtype=float)
    lo, hi = (v.min() / 1.6, v.max() * 1.6) if v.size else (1e-3, 1.0)
    ticks = [m * 10.0 ** e for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1) for m in (1, 3)]
    ticks = [t for t in ticks if lo <= t <= hi] or [lo, hi]
    a = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)
    a.set_major_locator(FixedLocator(ticks))
    a.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    a.set_minor_locator(NullLocator())


def save(fig: Figure, out_dir: str | Path, name: str, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.<format>`` for each format (atomically, without timestamps)."""
    out = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
        buf = io.BytesIO()
        with paper_style():
            fig.savefig(buf, format=fmt, metadata=_METADATA[fmt])
        out.append(atomic_write_bytes(Path(out_dir) / f"{name}.{fmt}", buf.getvalue()))
    return out


def small_fonts(fig: Figure, minimum: float = MIN_FONT) -> list[str]:
    """Texts of ``fig`` smaller than ``minimum`` points (the tests require none)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    return [f"{t.get_text()!r} {t.get_fontsize():.1f} pt" for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < minimum]
