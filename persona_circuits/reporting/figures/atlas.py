"""Heat-maps of the overlap atlas (:class:`persona_circuits.results.Atlas`), one figure per measure:

* :func:`atlas_overlap`: sets x sets Jaccard of the top contrastive weights (one group, the whole model by default)
  and its excess over the label-swapped null in null standard deviations (or, without a null, its ratio to the
  random-density expectation); ``*`` marks the pairs shared beyond chance after Holm (``pairs[].shared``);
* :func:`atlas_layers`: set pairs x blocks and set pairs x module types, Jaccard minus a reference (the null's mean
  where the results hold it per group, else its 95th percentile, else the random-density expectation): descriptive,
  the tests are on the whole model;
* :func:`atlas_steering`: set pairs x layers, cosine of the steering directions; ``*`` beyond the null after Holm.

The registered figures (``fig_atlas``, ``fig_atlas_layers``, ``fig_atlas_steering``) draw them from the study's
results; ``fig_atlas_dict_overlap``, ``fig_atlas_dict_layers`` and ``fig_atlas_dict_steering`` draw them from an atlas
dict as :func:`persona_circuits.analysis.atlas.atlas` returns it (:func:`atlas_results` turns it into the record).
Each is a :class:`matplotlib.figure.Figure` built without pyplot (nothing is shown or kept open), with
colour-blind-safe colormaps (viridis, cividis) and text of at least 8 pt.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...results import Atlas, StudyResults
from .common import need

FONT = 9  # pt, every text of these figures (>= 8)


def _arr(m) -> np.ndarray:
    return np.array([[np.nan if v is None else float(v) for v in row] for row in m], dtype=float)


def _pair_labels(a: Atlas) -> list[str]:
    return [f"{p.a} & {p.b}" for p in a.pairs or []]


def _names(a: Atlas) -> list[str]:
    return a.sets or a.overlaps[0].sets


def _pair_matrix(a: Atlas, value) -> np.ndarray:
    """A sets x sets matrix of ``value(pair)`` from the atlas's pair rows (NaN elsewhere)."""
    names = _names(a)
    m = np.full((len(names), len(names)), np.nan)
    for p in a.pairs or []:
        v = value(p)
        if v is not None and p.a in names and p.b in names:
            m[names.index(p.a), names.index(p.b)] = m[names.index(p.b), names.index(p.a)] = float(v)
    return m


def heat(fig: Figure, ax, m: np.ndarray, cmap: str, label: str, vmin=None, vmax=None, fmt: str = "{:.2f}",
         marks: np.ndarray | None = None, annotate: bool = True):
    """One heat-map with a colour bar; values written in the cells (small matrices) and ``*`` where ``marks``."""
    im = ax.imshow(np.ma.masked_invalid(m), cmap=colormaps[cmap].with_extremes(bad="0.85"), vmin=vmin, vmax=vmax,
                   aspect="auto")
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label(label, fontsize=FONT)
    cb.ax.tick_params(labelsize=FONT)
    lo, hi = im.get_clim()
    for (i, j), v in np.ndenumerate(m):
        star = marks is not None and bool(marks[i, j])
        if np.isnan(v) or not (annotate or star):
            continue
        text = (fmt.format(v) if annotate else "") + ("*" if star else "")
        dark = (v - lo) / (hi - lo or 1.0) < 0.55
        ax.text(j, i, text, ha="center", va="center", fontsize=FONT, color="white" if dark else "black")
    ax.tick_params(labelsize=FONT)
    return im


def _star_legend(fig: Figure, label: str) -> None:
    fig.legend(handles=[Line2D([], [], color="k", marker="$*$", ms=8, ls="none", label=label)], loc="lower center",
               fontsize=FONT, frameon=False)


def _excess(a: Atlas, group: str) -> tuple[np.ndarray, str]:
    """The whole-model (or ``group``'s) overlap against chance: in null sds where the null is known, else the ratio
    to the random-density expectation."""
    m = a.overlap(group)
    j = _arr(m.jaccard)
    if m.null_mean is not None and m.null_sd is not None:
        mean, sd = _arr(m.null_mean), _arr(m.null_sd)
    elif group == "all" and any(p.null_sd for p in a.pairs or []):
        mean, sd = _pair_matrix(a, lambda p: p.null_mean), _pair_matrix(a, lambda p: p.null_sd)
    else:
        return j / _arr(m.random_expectation), "Jaccard / random-density expectation"
    return (j - mean) / np.where(sd > 0, sd, np.nan), "(Jaccard − null mean) / null sd"


def atlas_overlap(a: Atlas, group: str = "all") -> Figure:
    """Jaccard between every two sets' top contrastive weights in ``group``, and its excess over chance."""
    m = a.overlap(group)
    if m is None:
        raise ValueError(f"this atlas has no overlap for {group!r}")
    names = m.sets
    S = len(names)
    j = _arr(m.jaccard)
    np.fill_diagonal(j, np.nan)
    shared = _pair_matrix(a, lambda p: p.shared) == 1 if group == "all" else np.zeros((S, S), bool)
    ref, ref_label = _excess(a, group)
    np.fill_diagonal(ref, np.nan)
    fig = Figure(figsize=(max(7.2, 2 * (0.62 * S + 1.6)), 0.5 * S + 2.8))
    axes = fig.subplots(1, 2)
    heat(fig, axes[0], j, "viridis", "Jaccard", vmin=0.0, marks=shared, annotate=S <= 12, fmt="{:.3f}")
    heat(fig, axes[1], ref, "cividis", ref_label, marks=shared, annotate=S <= 12, fmt="{:.1f}")
    for ax in axes:
        ax.set_xticks(range(S), names, rotation=45, ha="right")
        ax.set_yticks(range(S), names)
    frac = f"top {a.fraction:g}" if a.fraction is not None else "top weights"
    axes[0].set_title(f"Jaccard of the {frac} ({group})", fontsize=FONT)
    axes[1].set_title("against chance", fontsize=FONT)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if group == "all" and a.pairs:
        _star_legend(fig, "shared beyond the label-swapped null (Holm over the pairs)")
    return fig


def atlas_layers(a: Atlas) -> Figure:
    """Per set pair: Jaccard minus its reference, by block and by module type (descriptive)."""
    names = _names(a)
    pairs = [(names.index(p.a), names.index(p.b), f"{p.a} & {p.b}") for p in a.pairs or []] or \
        [(x, y, f"{names[x]} & {names[y]}") for x in range(len(names)) for y in range(x + 1, len(names))]
    groups = [m.by for m in a.overlaps]
    blocks = [g for g in groups if g.startswith("block ")]
    types = [g for g in groups if g != "all" and not g.startswith("block ")]
    ms = [a.overlap(g) for g in groups]
    ref_key, ref = next(((k, lab) for k, lab in (("null_mean", "null mean"), ("null_p95", "null 95th pct"))
                         if all(getattr(m, k) is not None for m in ms)), ("random_expectation", "random expectation"))

    def excess(g: str) -> np.ndarray:
        """Group ``g``'s Jaccard matrix minus its reference."""
        m = a.overlap(g)
        return _arr(m.jaccard) - _arr(getattr(m, ref_key))

    fig = Figure(figsize=(max(7.0, min(0.3 * (len(blocks) + len(types)) + 4, 12.0)), max(3.4, 0.32 * len(pairs) + 2.4)))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(1, len(blocks)), max(1, len(types))]})
    for ax, gs, title in ((axes[0], blocks, "by block"), (axes[1], types, "by module type")):
        m = np.array([[excess(g)[x, y] for g in gs] for x, y, _ in pairs]) if gs else np.zeros((len(pairs), 0))
        lim = float(np.nanmax(np.abs(m))) if m.size else 1.0
        heat(fig, ax, m, "cividis", f"Jaccard minus {ref}", vmin=-lim, vmax=lim, annotate=False)
        ax.set_xticks(range(len(gs)), [g.removeprefix("block ") for g in gs], rotation=90)
        ax.set_yticks(range(len(pairs)), [p[2] for p in pairs])
        ax.set_title(title, fontsize=FONT)
    frac = f"top {a.fraction:g}" if a.fraction is not None else "top"
    name = {"null_mean": "the label-swapped null's mean", "null_p95": "the label-swapped null's 95th percentile"}.get(
        ref_key, "the random-density expectation")
    fig.suptitle(f"Overlap of the {frac} contrastive weights per part of the model, minus {name}\n(descriptive: the "
                 "tests are on the whole model)", fontsize=FONT)
    fig.tight_layout()
    return fig


def atlas_steering(a: Atlas) -> Figure:
    """Per set pair and layer: cosine of the steering directions (``*``: beyond the null after Holm)."""
    rows = [p for p in a.pairs or [] if p.cosine]
    if not rows:
        raise ValueError("this atlas has no steering directions")
    L = max(len(p.cosine) for p in rows)
    m = np.array([p.cosine + [np.nan] * (L - len(p.cosine)) for p in rows], dtype=float)
    marks = np.array([[layer in (p.steering_shared_layers or []) for layer in range(L)] for p in rows])
    fam = a.family("atlas steering cosines")
    null = fam.null if fam and fam.null else "the null"
    fig = Figure(figsize=(max(6.5, min(0.25 * L + 4.5, 10.0)), max(2.8, 0.32 * len(rows) + 2.4)))
    ax = fig.subplots()
    heat(fig, ax, m, "cividis", "cosine", vmin=-1.0, vmax=1.0, marks=marks, annotate=False)
    ax.set_xticks(range(L), [str(i) for i in range(L)])
    ax.set_yticks(range(len(rows)), [f"{p.a} & {p.b}" for p in rows])
    ax.set_xlabel("layer (residual stream after the block)", fontsize=FONT)
    ax.set_title("Steering directions: cosine per layer", fontsize=FONT)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _star_legend(fig, f"beyond {null} (two-sided, Holm over (pair, layer))")
    return fig


def fig_atlas(res: StudyResults) -> Figure:
    """The atlas's whole-model overlap between persona sets and its excess over chance (``*``: shared, Holm)."""
    need(res.atlas is not None and res.atlas.overlap("all") is not None, "atlas results")
    return atlas_overlap(res.atlas)


def fig_atlas_layers(res: StudyResults) -> Figure:
    """The atlas's overlap per block and module type (descriptive)."""
    need(res.atlas is not None and len(res.atlas.overlaps) > 1, "atlas results per module type or layer")
    return atlas_layers(res.atlas)


def fig_atlas_steering(res: StudyResults) -> Figure:
    """The atlas's steering cosines per layer (``*``: beyond the null, Holm)."""
    need(res.atlas is not None and any(p.cosine for p in res.atlas.pairs or []), "atlas steering cosines per layer")
    return atlas_steering(res.atlas)


def atlas_results(a: dict) -> Atlas:
    """The :class:`persona_circuits.results.Atlas` record of an atlas dict (:func:`persona_circuits.analysis.atlas.atlas`),
    with every group's null mean and sd."""
    from ...analysis.atlas import atlas_record

    rec = atlas_record(a)
    ov = a["overlap"]
    for m in rec.overlaps:
        for key in ("null_mean", "null_sd"):
            if (ov.get(key) or {}).get(m.by) is not None:
                m.update(**{key: ov[key][m.by]})
    return rec


def fig_atlas_dict_overlap(a: dict, group: str = "all") -> Figure:
    """:func:`atlas_overlap` of an atlas dict: Jaccard between every two sets' top contrastive weights in ``group``,
    and its excess over chance."""
    return atlas_overlap(atlas_results(a), group)


def fig_atlas_dict_layers(a: dict) -> Figure:
    """:func:`atlas_layers` of an atlas dict: per set pair, Jaccard minus its reference, by block and by module type."""
    return atlas_layers(atlas_results(a))


def fig_atlas_dict_steering(a: dict) -> Figure:
    """:func:`atlas_steering` of an atlas dict: per set pair and layer, the cosine of the steering directions (``*``:
    beyond the null after Holm); ``ValueError`` when the atlas has no steering directions."""
    if a.get("steering") is None:
        raise ValueError("this atlas has no steering directions")
    return atlas_steering(atlas_results(a))
