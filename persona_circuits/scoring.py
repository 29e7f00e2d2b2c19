"""Weight scores of the persona-mask methods (all vectorised over whole weight matrices).

Notation: ``W`` is a ``[d_out, d_in]`` weight, ``a`` a per-input-channel magnitude from an activation
signature, ``p+``/``p-`` the two poles of a pair.

* Wanda persona score: ``S_ij = |W_ij| · a_j``.
* Contrastive z-score per channel, from the per-text L2 statistics of each pole:
  ``z_j = (μ+_j − μ−_j) / sqrt(σ²+_j + σ²−_j + ε)``.
* Contrastive-Wanda: ``S+ = |W| · φ(z)``, ``S− = |W| · φ(−z)`` with ``φ = ReLU`` or ``softplus(z/τ)``.
* Contrastive-sparse (paper): row-normalised single-persona scores ``S̃ = S / Σ_row S``; each weight
  belongs to the pole with the larger ``S̃``; ranking by ``|S̃+ − S̃−|``.
* Contrastive-sparse (released code): one symmetric score ``|W| · |μ+ − μ−| / sqrt(σ²+ + σ²−)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from .statistics import DEFAULT_STATISTIC, ActivationSignature

EPS = 1e-8
PHIS = ("relu", "softplus")


def wanda_scores(weight: Float[Tensor, "d_out d_in"], act: Float[Tensor, " d_in"]) -> Float[Tensor, "d_out d_in"]:
    """``|W_ij| · a_j`` in float32."""
    return weight.detach().abs().float() * act.to(device=weight.device, dtype=torch.float32)[None, :]


def contrastive_z(sig_a: ActivationSignature, sig_b: ActivationSignature, layer: str, eps: float = EPS) -> Float[Tensor, " d_in"]:
    """Per-channel z-score of pole A against pole B from per-text L2 norms (float64)."""
    mu_a, mu_b = sig_a.l2_mean(layer), sig_b.l2_mean(layer)
    return (mu_a - mu_b) / (sig_a.l2_var(layer) + sig_b.l2_var(layer) + eps).sqrt()


def phi(z: Tensor, kind: str = "relu", tau: float = 2.0) -> Tensor:
    """Rectifier of contrastive scores: ``relu(z)`` or ``softplus(z / tau)``."""
    if kind == "relu":
        return z.clamp_min(0.0)
    if kind == "softplus":
        return F.softplus(z / tau)
    raise ValueError(f"unknown phi {kind!r}; choose one of {PHIS}")


def contrastive_wanda_scores(weight: Tensor, sig_a: ActivationSignature, sig_b: ActivationSignature, layer: str,
                             kind: str = "relu", tau: float = 2.0) -> tuple[Tensor, Tensor]:
    z = contrastive_z(sig_a, sig_b, layer)
    return wanda_scores(weight, phi(z, kind, tau)), wanda_scores(weight, phi(-z, kind, tau))


def row_normalise(scores: Tensor) -> Tensor:
    """``S / Σ_row S`` (rows summing to zero stay zero)."""
    s = scores.sum(1, keepdim=True)
    return scores / torch.where(s > 0, s, torch.ones_like(s))


def contrastive_sparse_scores(weight: Tensor, sig_a: ActivationSignature, sig_b: ActivationSignature, layer: str,
                              statistic: str = DEFAULT_STATISTIC) -> tuple[Tensor, Tensor, Tensor]:
    """(owner_a, owner_b, |S̃a − S̃b|): disjoint ownership and the ranking score of the paper's method.

    A weight belongs to the pole whose row-normalised score is strictly larger; exact ties belong to
    neither pole.
    """
    na = row_normalise(wanda_scores(weight, sig_a.statistic(layer, statistic)))
    nb = row_normalise(wanda_scores(weight, sig_b.statistic(layer, statistic)))
    return na > nb, nb > na, (na - nb).abs()


def released_sparse_scores(weight: Tensor, sig_a: ActivationSignature, sig_b: ActivationSignature, layer: str,
                           eps: float = EPS) -> Tensor:
    """The released code's symmetric score ``|W| · |μa − μb| / sqrt(σ²a + σ²b)``."""
    return wanda_scores(weight, contrastive_z(sig_a, sig_b, layer, eps).abs())
