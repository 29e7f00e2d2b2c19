"""Heat-maps of an atlas dict (:func:`persona_circuits.analysis.atlas.atlas`), one figure per measure. The figures
themselves live with the study's other figures (:mod:`persona_circuits.reporting.figures.atlas`, drawn there from
the results record); these functions turn an atlas dict into that record and draw it:

* :func:`fig_atlas_overlap`: sets x sets Jaccard of the top contrastive weights (one group, the whole model by
  default) and its excess over the label-swapped null in null standard deviations (or, without a null, its ratio
  to the random-density expectation); ``*`` marks pairs that share more than chance after Holm;
* :func:`fig_atlas_layers`: set pairs x blocks and set pairs x module types, Jaccard minus the null mean (or the
  random-density expectation without a null);
* :func:`fig_atlas_steering`: set pairs x layers, cosine of the steering directions; ``*`` beyond the null after
  Holm.

Each returns a :class:`matplotlib.figure.Figure` built without pyplot (nothing is shown or kept open), with
colour-blind-safe colormaps (viridis, cividis) and text of at least 8 pt.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from .atlas import atlas_record


def atlas_results(a: dict):
    """The :class:`persona_circuits.results.Atlas` record of an atlas dict, with every group's null mean and sd."""
    from ..results import Atlas

    rec = atlas_record(a)
    ov = a["overlap"]
    for m in rec["overlaps"]:
        for key in ("null_mean", "null_sd"):
            if (ov.get(key) or {}).get(m["by"]) is not None:
                m[key] = ov[key][m["by"]]
    rec.update(sets=a["sets"], pairs=a["pairs"], multiple_comparisons=a["multiple_comparisons"],
               conclusions=a["conclusions"], fraction=a["fraction"], null_draws=a["null_draws"])
    return Atlas.from_dict(rec)


def fig_atlas_overlap(a: dict, group: str = "all") -> Figure:
    """Jaccard between every two sets' top contrastive weights in ``group``, and its excess over chance."""
    from ..reporting.figures.atlas import atlas_overlap

    return atlas_overlap(atlas_results(a), group)


def fig_atlas_layers(a: dict) -> Figure:
    """Per set pair: Jaccard minus its reference, by block and by module type."""
    from ..reporting.figures.atlas import atlas_layers

    return atlas_layers(atlas_results(a))


def fig_atlas_steering(a: dict) -> Figure:
    """Per set pair and layer: cosine of the steering directions (``*``: beyond the null after Holm)."""
    from ..reporting.figures.atlas import atlas_steering

    if a.get("steering") is None:
        raise ValueError("this atlas has no steering directions")
    return atlas_steering(atlas_results(a))
