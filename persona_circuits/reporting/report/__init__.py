"""``REPORT.md`` from the typed results, one module per section:

* :mod:`.header` - title, regenerate command, settings;
* :mod:`.primary` - the primary family and its calibration on placebos (only in results that hold them);
* :mod:`.paper_table` - the AI-persona tasks next to the paper's table;
* :mod:`.headline` - effect against damage, the matched-damage tables, every curve point;
* :mod:`.gate` - the projection gate's efficiency against steering and the soft mask, its analyses;
* :mod:`.alignment` - every condition's accuracy and pole contrast per set;
* :mod:`.masks`, :mod:`.ablation`, :mod:`.representations`, :mod:`.analysis_set` - analyses 1 to 8;
* :mod:`.types_atlas` - the 16 types and the atlas (only when the study ran them);
* :mod:`.conclusions`, :mod:`.conclusions_analyses` - every conclusion, computed from the numbers.

A new section is a function ``(StudyResults) -> list[str]`` (markdown lines) added to :data:`SECTIONS`.
"""

from __future__ import annotations

from pathlib import Path

from ..._io import atomic_write_text
from ...results import StudyResults, load_results
from .ablation import ablation_section
from .alignment import alignment_section
from .analysis_set import analysis_set_sections
from .conclusions import conclusions
from .header import header_section
from .gate import gate_section
from .headline import headline_section
from .masks import overlap_section, sparsity_section
from .paper_table import paper_table_section
from .primary import calibration_section, primary_conclusions, primary_section
from .representations import probe_section, similarity_section
from .types_atlas import atlas_section, types_section


def _analyses_heading(res: StudyResults) -> list[str]:
    return ["## Analyses\n"]


def _conclusions(res: StudyResults) -> list[str]:
    return ["\n## Conclusions (derived from the numbers above)\n"] + primary_conclusions(res) + conclusions(res)


#: The report's sections in order: each maps the results to markdown lines.
SECTIONS = (header_section, primary_section, calibration_section, paper_table_section, headline_section, gate_section,
            alignment_section, _analyses_heading,
            sparsity_section, overlap_section, lambda res: ablation_section(res.analysis), probe_section,
            similarity_section, analysis_set_sections, lambda res: types_section(res.types),
            lambda res: atlas_section(res.atlas), _conclusions)


def build_report(results: StudyResults | dict | str | Path) -> str:
    """The markdown of ``REPORT.md`` (``results``: typed results, a results dict or a ``results.json`` path)."""
    res = load_results(results)
    return "\n".join(line for section in SECTIONS for line in section(res)) + "\n"


def write_report(results: StudyResults | dict | str | Path, path: str | Path) -> Path:
    """Write ``REPORT.md`` atomically."""
    return atomic_write_text(path, build_report(results))


__all__ = ["SECTIONS", "build_report", "conclusions", "write_report"]
