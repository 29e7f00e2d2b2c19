"""Stability of masks under bootstrap resampling of the calibration set."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from ..masks.build import random_mask
from ..masks.registry import build_masks
from ..masks.statistics import PerTextStats
from ..results import StabilityRow
from .overlap import mask_overlap

if TYPE_CHECKING:
    from ..model.loading import Model


def bootstrap_stability(model: Model, rec_a: PerTextStats, rec_b: PerTextStats, poles: list[str], *, method: str,
                        sparsity: float, n_boot: int = 5, seed: int = 0, modules: str = "all",
                        n_texts: int | None = None) -> StabilityRow:
    """Masks from ``n_boot`` bootstrap resamples of the first ``n_texts`` calibration texts of each
    pole (drawn with replacement); pairwise Jaccard of pole A's masks, against the Jaccard of two
    random masks of the same structure."""
    rng = np.random.default_rng(seed)
    na = min(n_texts or len(rec_a.n_tok), len(rec_a.n_tok))
    nb = min(n_texts or len(rec_b.n_tok), len(rec_b.n_tok))
    masks = []
    for _ in range(n_boot):
        ia = rng.integers(0, na, na)
        ib = rng.integers(0, nb, nb)
        sigs = {poles[0]: rec_a.signature(ia, pole=poles[0]), poles[1]: rec_b.signature(ib, pole=poles[1])}
        masks.append(build_masks(model, method, sigs, sparsity=sparsity, modules=modules)[poles[0]])
    pairs = [mask_overlap(a, b).overall.jaccard for a, b in itertools.combinations(masks, 2)]
    r = mask_overlap(random_mask(model, sparsity=sparsity, modules=modules, seed=seed),
                     random_mask(model, sparsity=sparsity, modules=modules, seed=seed + 1)).overall.jaccard
    return StabilityRow(method=method, sparsity=sparsity, n_boot=n_boot, n_texts=[na, nb], pairwise_jaccard=pairs,
                        mean_jaccard=float(np.mean(pairs)), min_jaccard=float(np.min(pairs)), random_jaccard=r)
