"""The paper's numbers that the study stores next to its own (``results.json`` ``paper``)."""

from __future__ import annotations

import re
from pathlib import Path

from ._record import Record, record

#: Difference rate (%) between opposite-pole Wanda masks reported by the paper (LLaMA, MBTI axes),
#: as quoted in this project's issue 3; keyed by our set names.
PAPER_MBTI_DIFFERENCE_RATE = {"mbti-ei": 1.34, "mbti-tf": 1.08, "mbti-sn": 0.75, "mbti-jp": 0.76}

_PAPER_ROWS = {"persona prompt": "prompt", "RAG": "rag", "Wanda persona mask": "wanda",
               "contrastive Wanda": "contrastive-wanda", "contrastive sparse": "contrastive-sparse",
               "supervised fine-tuning (upper bound)": "sft"}


@record
class Paper(Record):
    """The paper's numbers, read from the reference data (never typed into the package)."""

    mbti_difference_rate: dict[str, float]
    ai_persona: dict[str, dict[str, float]]


def paper_numbers(data_root: Path | None) -> Paper:
    """The paper's AI-persona accuracies, read from the reference data's README (never typed here), and
    its MBTI difference rates."""
    out = Paper(mbti_difference_rate=dict(PAPER_MBTI_DIFFERENCE_RATE), ai_persona={})
    if data_root is None or not (Path(data_root) / "README.md").is_file():
        return out
    header = None
    for line in (Path(data_root) / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "method":
            header = cells[1:]
        elif header and cells[0] in _PAPER_ROWS and all(re.fullmatch(r"[\d.]+", c) for c in cells[1:]):
            for task, v in zip(header, cells[1:]):
                out.ai_persona.setdefault(task, {})[_PAPER_ROWS[cells[0]]] = float(v)
    return out
