"""Layer-wise cosine similarity between the two poles' mean representations.

``cos_L = <m_A, m_B> / (|m_A| |m_B|)`` with ``m_P`` the mean over pole P's texts of the mean
answer-token residual after block ``L`` (the paper's analysis). Because every residual stream shares a
large common component, we also report the cosine after subtracting the mean of both poles' texts
(``centered``) and the cosine between two random halves of the same pole as a reference.
"""

from __future__ import annotations

import torch


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def layer_cosine(feats_a: torch.Tensor, feats_b: torch.Tensor, seed: int = 0) -> list[dict]:
    """``feats_*``: ``[n, layer, d]``. Returns raw and centered cosines per layer and a same-pole reference."""
    ma, mb = feats_a.double().mean(0), feats_b.double().mean(0)
    mu = torch.cat([feats_a, feats_b]).double().mean(0)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(feats_a), generator=g)
    h1, h2 = feats_a[perm[: len(perm) // 2]].double().mean(0), feats_a[perm[len(perm) // 2:]].double().mean(0)
    raw, cen, same = _cos(ma, mb), _cos(ma - mu, mb - mu), _cos(h1 - mu, h2 - mu)
    return [{"layer": i, "cosine": float(raw[i]), "cosine_centered": float(cen[i]),
             "same_pole_halves_centered": float(same[i])} for i in range(len(raw))]
