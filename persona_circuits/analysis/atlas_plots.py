"""Heat-maps of an atlas (:func:`persona_circuits.analysis.atlas.atlas`'s dict): one figure per measure.

* :func:`fig_atlas_overlap`: sets x sets Jaccard of the top contrastive weights (one group, the whole model by
  default) and its excess over the label-swapped null in null standard deviations (or, without a null, its ratio
  to the random-density expectation); ``*`` marks pairs that share more than chance after Holm;
* :func:`fig_atlas_layers`: set pairs x blocks and set pairs x module types, Jaccard minus its reference (the
  null mean, or the random-density expectation without a null);
* :func:`fig_atlas_steering`: set pairs x layers, cosine of the steering directions; ``*`` beyond the null after
  Holm.

Each returns a :class:`matplotlib.figure.Figure` built without pyplot (nothing is shown or kept open), with
colour-blind-safe colormaps (viridis, cividis) and text of at least 8 pt. Self-contained: no import from the rest
of the package.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

FONT = 9  # pt, every text of these figures (>= 8)


def _arr(m) -> np.ndarray:
    return np.array([[np.nan if v is None else float(v) for v in row] for row in m], dtype=float)


def _pairs(names: list[str]) -> list[tuple[int, int, str]]:
    return [(x, y, f"{names[x]} & {names[y]}") for x in range(len(names)) for y in range(x + 1, len(names))]


def _heat(fig: Figure, ax, m: np.ndarray, cmap: str, label: str, vmin=None, vmax=None, fmt: str = "{:.2f}",
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


def fig_atlas_overlap(a: dict, group: str = "all") -> Figure:
    """Jaccard between every two sets' top contrastive weights in ``group``, and its excess over chance."""
    names, ov = a["sets"], a["overlap"]
    S = len(names)
    j = _arr(ov["jaccard"][group])
    np.fill_diagonal(j, np.nan)
    shared = _arr(ov["shared"]) if group == "all" else np.zeros((S, S))
    has_null = bool(ov.get("null_mean")) and ov["null_mean"].get(group) is not None and ov.get("null_sd")
    if has_null:
        sd = _arr(ov["null_sd"][group])
        ref = (j - _arr(ov["null_mean"][group])) / np.where(sd > 0, sd, np.nan)
        ref_label = "excess over the label-swapped null (null sds)"
    else:
        ref = j / _arr(ov["expected_jaccard"][group])
        ref_label = "Jaccard / random-density expectation"
    fig = Figure(figsize=(3.2 * 2 + 1.5, 0.45 * S + 2.2))
    axes = fig.subplots(1, 2)
    _heat(fig, axes[0], j, "viridis", "Jaccard", vmin=0.0, marks=shared == 1, annotate=S <= 12, fmt="{:.3f}")
    _heat(fig, axes[1], ref, "cividis", ref_label, marks=shared == 1, annotate=S <= 12, fmt="{:.1f}")
    for ax in axes:
        ax.set_xticks(range(S), names, rotation=45, ha="right")
        ax.set_yticks(range(S), names)
    axes[0].set_title(f"Jaccard of the top {a['fraction']:g} ({group})", fontsize=FONT)
    axes[1].set_title("against chance" + (" (* shared, Holm)" if group == "all" else ""), fontsize=FONT)
    fig.tight_layout()
    return fig


def _excess(a: dict, group: str) -> np.ndarray:
    ov = a["overlap"]
    ref = ov["null_mean"][group] if ov.get("null_mean") and ov["null_mean"].get(group) is not None \
        else ov["expected_jaccard"][group]
    return _arr(ov["jaccard"][group]) - _arr(ref)


def fig_atlas_layers(a: dict) -> Figure:
    """Per set pair: Jaccard minus its reference, by block and by module type."""
    names, ov = a["sets"], a["overlap"]
    pairs = _pairs(names)
    blocks = [g for g in ov["groups"] if g.startswith("block ")]
    types = [g for g in ov["groups"] if g != "all" and not g.startswith("block ")]
    ref = "label-swapped null mean" if ov.get("null_mean") else "random-density expectation"
    fig = Figure(figsize=(max(7.0, 0.3 * (len(blocks) + len(types)) + 4), 0.32 * len(pairs) + 2.2))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(1, len(blocks)), max(1, len(types))]})
    for ax, groups, title in ((axes[0], blocks, "by block"), (axes[1], types, "by module type")):
        m = np.array([[_excess(a, g)[x, y] for g in groups] for x, y, _ in pairs]) if groups else np.zeros((len(pairs), 0))
        lim = float(np.nanmax(np.abs(m))) if m.size else 1.0
        _heat(fig, ax, m, "cividis", f"Jaccard minus {ref}", vmin=-lim, vmax=lim, annotate=False)
        ax.set_xticks(range(len(groups)), [g.removeprefix("block ") for g in groups], rotation=90)
        ax.set_yticks(range(len(pairs)), [p[2] for p in pairs])
        ax.set_title(title, fontsize=FONT)
    fig.suptitle(f"Overlap of the top {a['fraction']:g} contrastive weights, per part of the model", fontsize=FONT)
    fig.tight_layout()
    return fig


def fig_atlas_steering(a: dict) -> Figure:
    """Per set pair and layer: cosine of the steering directions (``*``: beyond the null after Holm)."""
    st = a["steering"]
    if st is None:
        raise ValueError("this atlas has no steering directions")
    names = a["sets"]
    pairs = _pairs(names)
    cos = np.array(st["cosine"], dtype=float)  # [L, S, S]
    shared = np.array([[np.nan if v is None else float(v) for v in row] for layer in st["shared"] for row in layer],
                      dtype=float).reshape(cos.shape)
    m = np.array([cos[:, x, y] for x, y, _ in pairs])
    marks = np.array([shared[:, x, y] == 1 for x, y, _ in pairs])
    fig = Figure(figsize=(max(5.0, 0.3 * cos.shape[0] + 3), 0.32 * len(pairs) + 2.0))
    ax = fig.subplots()
    _heat(fig, ax, m, "cividis", "cosine", vmin=-1.0, vmax=1.0, marks=marks, annotate=False)
    ax.set_xticks(range(cos.shape[0]), [str(i) for i in range(cos.shape[0])])
    ax.set_yticks(range(len(pairs)), [p[2] for p in pairs])
    ax.set_xlabel("layer (residual stream after the block)", fontsize=FONT)
    ax.set_title(f"Steering directions: cosine per layer\n(* beyond {st['null']}, Holm; random directions' sd "
                 f"{st['random_sd']:.3f})", fontsize=FONT)
    fig.tight_layout()
    return fig
