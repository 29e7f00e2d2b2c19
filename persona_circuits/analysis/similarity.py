"""Does the poles' difference direction replicate? Split-half reliability against a permutation null.

The paper's measure, the cosine of the two poles' mean representations ``cos(m_A, m_B)`` at each
layer, is close to 1 for *any* two sets of texts: every residual stream shares a large common
component, which dominates both means. It is kept here (``cosine_of_means``) only to compare with the
paper's number; it is not evidence of anything. (Subtracting the pooled mean first does not help:
``m_A − m`` and ``m_B − m`` are opposite multiples of ``m_A − m_B``, so that
"centred cosine" is −1 for any data and any pole sizes.)

The test here asks whether the *difference* between the poles is a stable direction. Per layer, with
``x_n`` the mean answer-token residual of text ``n`` after the block: split each pole's texts at random
into two halves, ``A1, A2`` and ``B1, B2``, and take

    r = cos( m(A1) − m(B1),  m(A2) − m(B2) ),

the agreement of two independent estimates of the difference direction. The reported
``reliability`` is the mean of ``r`` over ``n_splits`` random splits. If the poles differ by a
consistent vector ``δ``, both half-differences estimate ``δ`` and ``r → 1`` as ``n |δ|² / σ²`` grows;
if both poles come from one distribution the half-differences are independent noise and ``r`` is
near 0. Null: permute the pole labels over the pooled texts (pole sizes kept) and compute the same
statistic (mean over ``n_splits`` splits); ``n_permutations`` draws give its distribution and the
permutation p-value ``p = (1 + #{R_null ≥ R}) / (1 + n_permutations)``.

Computation: every mean difference is ``u = Xᵀ w`` for a weight vector ``w`` over texts that sums
to zero (``+1/|A1|`` on ``A1``, ``−1/|B1|`` on ``B1``), so ``<u, v> = wᵀ G w'`` with the per-layer Gram
matrix ``G = X_c X_cᵀ`` (``X_c`` = features minus their pooled mean; centring changes no ``u`` since
``Σ w = 0`` and keeps float64 cancellation small). One Gram per layer, then every split of every
permutation is a matrix product: no loop over layers, texts or splits.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

NOT_EVIDENCE = ("cosine_of_means is the paper's measure, cos(m_A, m_B); it is near 1 for any two sets of texts "
                "(shared component of the residual stream) and is reported only for comparison with the paper, "
                "not as evidence")


def cosine_of_means(feats_a: Float[Tensor, "n_a layer d"], feats_b: Float[Tensor, "n_b layer d"]) -> Float[Tensor, " layer"]:
    """The paper's layer-wise ``cos(m_A, m_B)`` of the poles' mean representations (not evidence)."""
    return torch.nn.functional.cosine_similarity(feats_a.double().mean(0), feats_b.double().mean(0), dim=-1)


def _split_weights(labels: np.ndarray, rng: np.random.Generator, n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``w_u, w_v`` ``[K, n]`` of the two half-differences for ``K`` label vectors (0 = pole A).

    Within each pole the texts are ranked by a uniform key; the first ``floor(n_pole / 2)`` form
    half 1, the rest half 2.
    """
    K, n = labels.shape
    order = np.argsort(labels + rng.random((K, n)), axis=1, kind="stable")  # pole A first, random within
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n), (K, n)), axis=1)
    is_b = labels == 1
    within = rank - is_b * n_a
    size = np.where(is_b, n_b, n_a)
    h1 = within < size // 2
    h1_size = np.where(is_b, n_b // 2, n_a // 2)
    h2_size = size - h1_size
    sign = np.where(is_b, -1.0, 1.0)
    w_u = np.where(h1, sign / h1_size, 0.0)
    w_v = np.where(~h1, sign / h2_size, 0.0)
    return w_u, w_v


def _split_cosines(gram: Tensor, w_u: np.ndarray, w_v: np.ndarray, chunk: int = 512) -> Tensor:
    """``cos(Xᵀ w_u, Xᵀ w_v)`` for every layer and every row of the weights: ``[layer, K]``."""
    out = []
    for s in range(0, len(w_u), chunk):
        u = torch.from_numpy(w_u[s: s + chunk]).to(gram)  # [k, n]
        v = torch.from_numpy(w_v[s: s + chunk]).to(gram)
        gu = u @ gram  # [layer, k, n]
        gv = v @ gram
        uu, uv, vv = (gu * u).sum(-1), (gu * v).sum(-1), (gv * v).sum(-1)
        out.append(uv / (uu * vv).clamp_min(1e-300).sqrt())
    return torch.cat(out, 1)


@torch.no_grad()
def split_half_reliability(feats_a: Float[Tensor, "n_a layer d"], feats_b: Float[Tensor, "n_b layer d"], *,
                           n_splits: int = 20, n_permutations: int = 200, seed: int = 0) -> dict:
    """Per layer: split-half reliability of the pole-difference direction, its label-permutation null,
    and the paper's cosine of the means (not evidence). See the module docstring for the maths.

    Returns ``{"layers": [{layer, reliability, reliability_sd, null_mean, null_sd, null_p95, p_value,
    cosine_of_means}], n_a, n_b, n_splits, n_permutations, seed, note}``.
    """
    n_a, n_b = len(feats_a), len(feats_b)
    if n_a < 2 or n_b < 2:
        raise ValueError(f"split-half reliability needs at least 2 texts per pole, got {n_a} and {n_b}")
    if n_splits < 1 or n_permutations < 1:
        raise ValueError("n_splits and n_permutations must be >= 1")
    x = torch.cat([feats_a, feats_b]).double()  # [n, layer, d]
    x = (x - x.mean(0)).transpose(0, 1)  # [layer, n, d]
    gram = x @ x.transpose(1, 2)  # [layer, n, n]
    rng = np.random.default_rng(seed)
    true = np.r_[np.zeros(n_a, np.int64), np.ones(n_b, np.int64)]
    perm = np.argsort(rng.random((n_permutations, n_a + n_b)), axis=1)
    labels = np.concatenate([true[None], true[perm]])  # [1 + P, n]: row 0 = the true labels
    w_u, w_v = _split_weights(np.repeat(labels, n_splits, axis=0), rng, n_a, n_b)
    cos = _split_cosines(gram, w_u, w_v).view(gram.shape[0], 1 + n_permutations, n_splits)  # [layer, 1 + P, S]
    stat = cos.mean(-1)  # [layer, 1 + P]
    obs, null = stat[:, 0], stat[:, 1:]
    p = (1 + (null >= obs[:, None]).sum(1).double()) / (1 + n_permutations)
    p95 = torch.quantile(null, 0.95, dim=1)
    raw = cosine_of_means(feats_a, feats_b)
    rows = [{"layer": i, "reliability": float(obs[i]), "reliability_sd": float(cos[i, 0].std()) if n_splits > 1 else 0.0,
             "null_mean": float(null[i].mean()), "null_sd": float(null[i].std()) if n_permutations > 1 else 0.0,
             "null_p95": float(p95[i]), "p_value": float(p[i]), "cosine_of_means": float(raw[i])}
            for i in range(gram.shape[0])]
    return {"layers": rows, "n_a": n_a, "n_b": n_b, "n_splits": n_splits, "n_permutations": n_permutations,
            "seed": seed, "statistic": "mean over random splits of cos(m(A1) - m(B1), m(A2) - m(B2))",
            "null": "pole labels permuted over the pooled texts", "note": NOT_EVIDENCE}
