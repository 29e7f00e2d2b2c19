"""Weight scores of the persona-mask methods (all vectorised over whole weight matrices).

Notation: ``W`` is a ``[d_out, d_in]`` weight, ``a`` a per-input-channel magnitude from an activation
signature, ``p+``/``p-`` the two poles of a pair.

* Wanda persona score: ``S_ij = |W_ij| · a_j``.
* Contrastive z-score per channel, from a per-text statistic of each pole (its mean ``μ`` and variance
  ``σ²`` over texts): ``z_j = (μ+_j − μ−_j) / sqrt(σ²+_j + σ²−_j + ε)``. The statistic is the per-text
  L2 norm (``"l2"``, the paper and the released code) or the per-text RMS (``"rms"``, ``ℓ / sqrt(c)``,
  which does not grow with answer length; the default, see ``statistics.DEFAULT_TEXT_STAT``).
* Contrastive-Wanda: ``S+ = |W| · φ(z)``, ``S− = |W| · φ(−z)`` with ``φ = ReLU`` or ``softplus(z/τ)``.
* Contrastive-sparse (paper): row-normalised single-persona scores ``S̃ = S / Σ_row S``; each weight
  belongs to the pole with the larger ``S̃``; ranking by ``|S̃+ − S̃−|``.
* Contrastive-sparse (released code, ``contra.py``): one symmetric score ``|W| · |m+ − m−| / sqrt(v+ + v− + ε)``
  with ``m``, ``v`` the token-pooled mean and variance of the raw activations (not per-text norms).
* Contrastive removal: pole A's mask removes the weights with the top pole-B contrastive-Wanda score.

``ε = 1e-6`` as in the released code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from .statistics import DEFAULT_STATISTIC, DEFAULT_TEXT_STAT, ActivationSignature

EPS = 1e-6
PHIS = ("relu", "softplus")


def wanda_scores(weight: Float[Tensor, "d_out d_in"], act: Float[Tensor, " d_in"]) -> Float[Tensor, "d_out d_in"]:
    """``|W_ij| · a_j`` in float32."""
    return weight.detach().abs().float() * act.to(device=weight.device, dtype=torch.float32)[None, :]


def contrastive_z(sig_a: ActivationSignature, sig_b: ActivationSignature, layer: str, eps: float = EPS,
                  text_stat: str = DEFAULT_TEXT_STAT) -> Float[Tensor, " d_in"]:
    """Per-channel z-score of pole A against pole B from a per-text statistic (``"l2"`` or ``"rms"``), float64."""
    mu_a, mu_b = sig_a.text_mean(layer, text_stat), sig_b.text_mean(layer, text_stat)
    return (mu_a - mu_b) / (sig_a.text_var(layer, text_stat) + sig_b.text_var(layer, text_stat) + eps).sqrt()


def phi(z: Tensor, kind: str = "relu", tau: float = 2.0) -> Tensor:
    """Rectifier of contrastive scores: ``relu(z)`` or ``softplus(z / tau)``."""
    if kind == "relu":
        return z.clamp_min(0.0)
    if kind == "softplus":
        return F.softplus(z / tau)
    raise ValueError(f"unknown phi {kind!r}; choose one of {PHIS}")


def contrastive_wanda_scores(weight: Tensor, sig_a: ActivationSignature, sig_b: ActivationSignature, layer: str,
                             kind: str = "relu", tau: float = 2.0, text_stat: str = DEFAULT_TEXT_STAT) -> tuple[Tensor, Tensor]:
    """``(|W| · φ(z), |W| · φ(−z))``: the contrastive-Wanda scores of poles A and B."""
    z = contrastive_z(sig_a, sig_b, layer, text_stat=text_stat)
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


def pooled_mean_var(sig: ActivationSignature, layer: str) -> tuple[Tensor, Tensor]:
    """Token-pooled mean and (population) variance of each input channel: ``Σx / N``, ``Σx² / N − mean²``."""
    m = sig.mean(layer)
    return m, (sig.sums[layer]["sumsq"] / sig.n_tokens - m * m).clamp_min(0.0)


def released_sparse_scores(weight: Tensor, sig_a: ActivationSignature, sig_b: ActivationSignature, layer: str,
                           eps: float = EPS) -> Tensor:
    """The released code's symmetric score ``|W| · |ma − mb| / sqrt(va + vb + ε)`` (token-pooled mean/variance)."""
    ma, va = pooled_mean_var(sig_a, layer)
    mb, vb = pooled_mean_var(sig_b, layer)
    return wanda_scores(weight, (ma - mb).abs() / (va + vb + eps).sqrt())
