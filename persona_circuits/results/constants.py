"""Names and settings that the study writes and the reporting wing reads, in one place that imports
nothing heavy (the study imports them from here; the reporting wing never imports the study).

``tests/results/test_results.py`` checks that they agree with the study's and the mask builders' own values.
"""

from __future__ import annotations

#: The paper's AI-persona tasks, in the order the paper lists them.
AI_TASKS = ("power", "wealth", "hallucination")

#: The mask methods of the study's main table (each at the study's sparsity).
MAIN_METHODS = ("wanda", "contrastive-wanda", "contrastive-sparse")

#: The released code's default sparsity of each mask method (``persona_circuits.options.DEFAULT_SPARSITY``).
RELEASED_SPARSITY = {"wanda": 0.5, "contrastive-wanda": 0.3, "contrastive-sparse": 0.3}

#: The contrastive z-score's default per-text statistic (``persona_circuits.masks.statistics.DEFAULT_TEXT_STAT``).
DEFAULT_TEXT_STAT = "rms"


def study_order(names) -> list[str]:
    """Set names in the study's order: the bundled MBTI axes (alphabetically), then the AI tasks in the
    paper's order. ``results.json`` is written with sorted keys, which would otherwise put ``hallucination``
    first."""
    rank = {t: i for i, t in enumerate(AI_TASKS)}
    return sorted(names, key=lambda n: (n in rank, rank.get(n, 0), n))
