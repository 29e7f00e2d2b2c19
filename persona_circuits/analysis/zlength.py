"""Is the contrastive z-score measuring the persona or the answer length?

The per-text L2 norm ``ℓ_nj = sqrt(Σ_t x_tj²)`` grows like ``sqrt(c_n)`` with the number of selected
tokens ``c_n``. When one pole's answers are longer, ``z_j = (μ+_j − μ−_j) / sqrt(σ²+_j + σ²−_j)`` then has
the same sign in nearly every channel, whatever the persona. The per-text RMS ``ℓ_nj / sqrt(c_n)`` removes
that dependence.

:func:`z_length_diagnostic` reports, for each per-text statistic:

* per layer, the mean of ``z`` over channels and the share of channels with ``z > 0`` (0.5 when the
  sign carries no common direction);
* a control that can fail: over label-swapped draws of the calibration items (each item's two answers
  assigned to pseudo-poles by a coin, so the persona difference is gone but the token-count difference
  between the pseudo-poles varies from draw to draw), the Pearson correlation between the pseudo-poles'
  mean token-count difference and the mean ``z`` over all channels. A statistic that tracks length
  correlates strongly; a length-invariant one should not.
"""

from __future__ import annotations

import numpy as np
import torch

from ..measure.nulls import label_swap_indices
from ..masks.scoring import contrastive_z
from ..masks.statistics import TEXT_STATISTICS, PerTextStats


def _mean_z(sig_a, sig_b, layers, kind) -> tuple[np.ndarray, np.ndarray]:
    means, pos = [], []
    for name in layers:
        z = contrastive_z(sig_a, sig_b, name, text_stat=kind)
        means.append(float(z.mean()))
        pos.append(float((z > 0).double().mean()))
    return np.array(means), np.array(pos)


def z_length_diagnostic(stats_a: PerTextStats, stats_b: PerTextStats, *, draws: int = 32, seed: int = 0,
                        text_stats: tuple[str, ...] = TEXT_STATISTICS) -> dict:
    """Mean z per layer for the real poles and its correlation with the token-count difference over
    label-swapped draws (see the module docstring). ``stats_a``/``stats_b`` hold the two answers of the
    same calibration items, row by row."""
    n = len(stats_a)
    both = stats_a.concat(stats_b)
    layers = list(stats_a.per_text)
    tok = both.n_tok.double()
    sig_a, sig_b = both.signature(torch.arange(n)), both.signature(torch.arange(n, 2 * n))
    out: dict = {"n_items": n, "layers": layers, "draws": draws,
                 "length_difference": float(tok[:n].mean() - tok[n:].mean()),
                 "share_items_a_longer": float((tok[:n] > tok[n:]).double().mean())}
    # coin swaps, as when figures/z_length.json was measured: a regression over the draws, not a null test
    swaps = [label_swap_indices(n, seed + d, "coins") for d in range(draws)]
    dlen = np.array([float(tok[ia].mean() - tok[ib].mean()) for ia, ib in swaps])
    out["null_length_differences"] = dlen.tolist()
    for kind in text_stats:
        mz, pos = _mean_z(sig_a, sig_b, layers, kind)
        null_mz = np.array([_mean_z(both.signature(ia), both.signature(ib), layers, kind)[0].mean() for ia, ib in swaps])
        r = float(np.corrcoef(dlen, null_mz)[0, 1]) if draws > 2 and dlen.std() > 0 and null_mz.std() > 0 else float("nan")
        out[kind] = {"mean_z_per_layer": mz.tolist(), "share_positive_per_layer": pos.tolist(),
                     "mean_z": float(mz.mean()), "share_positive": float(pos.mean()),
                     "null_mean_z": null_mz.tolist(), "corr_with_length_difference": r}
    return out
