"""Overlap between two masks: Jaccard index and the paper's difference rate.

For keep-masks ``M1, M2`` over the same weights: ``Jaccard = |M1 & M2| / |M1 | M2|`` and
``difference rate = mean(M1 != M2)``. Two independent random masks that each keep a fraction ``p``
of every row have expected difference rate ``2 p (1 - p)`` and Jaccard about ``p / (2 - p)``; we report
those next to the measured values (and the values of two actual random masks).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from ..masks.build import Mask
from ..results import BlockOverlap, MaskOverlap, OverlapStats


def _counts(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, int, int]:
    inter = int((a & b).sum())
    union = int((a | b).sum())
    diff = int((a ^ b).sum())
    return inter, union, diff, a.numel()


def _summary(c, block: int | None = None) -> OverlapStats:
    inter, union, diff, n = c
    j, d = inter / union if union else 1.0, diff / n
    return OverlapStats(jaccard=j, difference_rate=d) if block is None else BlockOverlap(block=block, jaccard=j,
                                                                                          difference_rate=d)


def random_expectation(density: float) -> OverlapStats:
    """Expected overlap of two independent random masks that each keep a fraction ``density`` of every row."""
    p = density
    return OverlapStats(jaccard=p / (2 - p) if p < 2 else 1.0, difference_rate=2 * p * (1 - p))


def mask_overlap(m1: Mask, m2: Mask) -> MaskOverlap:
    """Overall, per module type and per block Jaccard and difference rate of two masks."""
    if set(m1.masks) != set(m2.masks):
        raise ValueError("masks cover different layers")
    acc = defaultdict(lambda: [0, 0, 0, 0])
    for name in m1.masks:
        _, block, kind, _ = name.split(".")
        c = _counts(m1.masks[name], m2.masks[name])
        for key in ("all", kind, f"block{block}"):
            acc[key] = [x + y for x, y in zip(acc[key], c)]
    blocks = sorted({int(n.split(".")[1]) for n in m1.masks})
    return MaskOverlap(overall=_summary(acc["all"]), by_module={k: _summary(acc[k]) for k in ("attn", "mlp") if k in acc},
                       per_block=[_summary(acc[f"block{b}"], b) for b in blocks],
                       random_expectation=random_expectation((m1.density() + m2.density()) / 2))
