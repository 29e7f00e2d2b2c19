"""The study's figures, each a function ``(StudyResults) -> matplotlib Figure`` drawn from the same typed results
as the report (never ``plt.show``), in the shared style of :mod:`.style`.

* :mod:`.headline` - the headline: effect against damage at the matched strengths, with the null band;
* :mod:`.effect_damage` - every curve point; :mod:`.matched_damage` - the matched-damage table as bars;
* :mod:`.alignment` - accuracy and pole contrast per set; :mod:`.masks` - sparsity and overlap;
* :mod:`.representations` - probes, neutral-text decoding, split-half reliability;
* :mod:`.analysis_set` - ablations, stability, sweeps, capability;
* :mod:`.gate` - the projection gate against steering (optional: drawn where the study measured the gate);
* :mod:`.types`, :mod:`.atlas` - the optional 16 types and atlas (:data:`OPTIONAL`: skipped when a run lacks them).

A new figure is a function in one of these modules registered in :data:`FIGURES`; it raises
:class:`FigureDataMissing` when the results lack its data, and :func:`write_figures` then skips it.
``persona-circuits figures RESULTS --out DIR [--only NAME] [--format png,pdf,svg]`` calls :func:`write_figures`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ...results import StudyResults, load_results
from .alignment import fig_main_accuracy, fig_pole_contrast
from .analysis_set import fig_ablation, fig_capability, fig_stability, fig_sweeps
from .atlas import fig_atlas, fig_atlas_layers, fig_atlas_steering
from .common import FigureDataMissing
from .effect_damage import fig_effect_damage
from .gate import fig_gate
from .headline import fig_headline
from .masks import fig_overlap, fig_sparsity
from .matched_damage import fig_matched_damage
from .representations import fig_neutral_decoding, fig_probes, fig_similarity
from .style import FORMATS, paper_style, save
from .types import fig_types

#: Every figure by its file name.
FIGURES: dict[str, Callable[[StudyResults], Figure]] = {
    "headline": fig_headline, "effect_damage": fig_effect_damage, "matched_damage": fig_matched_damage,
    "main_accuracy": fig_main_accuracy, "pole_contrast": fig_pole_contrast, "sparsity": fig_sparsity,
    "overlap": fig_overlap, "ablation": fig_ablation, "probes": fig_probes, "neutral_decoding": fig_neutral_decoding,
    "similarity": fig_similarity, "stability": fig_stability, "sweeps": fig_sweeps, "capability": fig_capability,
    "types": fig_types, "atlas": fig_atlas, "atlas_layers": fig_atlas_layers, "atlas_steering": fig_atlas_steering,
    "gate": fig_gate}

#: The figures of optional stages (the 16 types, the atlas): a run without them skips them.
OPTIONAL = ("types", "atlas", "atlas_layers", "atlas_steering", "gate")


def draw(results: StudyResults | dict | str | Path, name: str) -> Figure:
    """Figure ``name`` of :data:`FIGURES`, drawn in the shared style."""
    with paper_style():
        return FIGURES[name](load_results(results))


def write_figure(results: StudyResults | dict | str | Path, name: str, out_dir: str | Path,
                 formats: Sequence[str] = ("png",)) -> list[Path]:
    """Draw figure ``name`` and write it as ``out_dir/name.<format>`` for each format."""
    fig = draw(results, name)
    try:
        return save(fig, out_dir, name, formats)
    finally:
        plt.close(fig)


def write_figures(results: StudyResults | dict | str | Path, out_dir: str | Path, formats: Sequence[str] = ("png",),
                  only: Sequence[str] | None = None, log=None) -> list[Path]:
    """Every figure of :data:`FIGURES` (or those named in ``only``) in every format; ``out_dir`` is created. A figure
    whose data the results lack is skipped with a line on ``log`` (stderr)."""
    res = load_results(results)
    unknown = [n for n in only or () if n not in FIGURES]
    bad = [f for f in formats if f not in FORMATS]
    if unknown or bad:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}" if unknown else
                         f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = []
    for name in only or FIGURES:
        try:
            out += write_figure(res, name, out_dir, formats)
        except FigureDataMissing as exc:
            print(f"{name}: skipped: {exc}", file=log or sys.stderr)
    return out


__all__ = ["FIGURES", "OPTIONAL", "FigureDataMissing", "draw", "write_figure", "write_figures"]
