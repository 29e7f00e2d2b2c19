"""Contrastive masks of any strength from one sort: per-row ranks of the contrastive-Wanda scores.

A strength dial (:mod:`persona_circuits.measure.damage`) asks for the masks of one pair at many strengths: the
points of an effect-damage curve, the steps of a search for a target damage, and the same again for every
label-swapped null pair. :func:`~persona_circuits.masks.build.contrastive_wanda_masks` selects each row's top
``k`` afresh at every call. Here the scores of both poles are sorted once per row, in the order
:func:`~persona_circuits.masks.build.topk_rows` uses (larger score first, then larger ``|W|``, then lower input
index), and each entry's rank is kept (``int16``). Then

* the keep mask of pole A at sparsity ``ρ`` is ``rank_A < k`` with ``k = floor((1 − ρ) d_in)``;
* the removal mask of pole A at fraction ``ρ`` keeps ``rank_B ≥ d_in − k`` (it removes the top of the
  opposite pole's score),

bit for bit the masks of :func:`~persona_circuits.masks.build.build_masks` (``tests/masks/test_ranked.py``), for one
comparison per weight. Memory: two bytes per weight and pole (about 0.4 GB for a pair on the default model).
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from . import scoring
from .build import Mask, check_mask_args, mask_pair, keep_count, remove_count
from .selection import sort_keys
from ..model.loading import prunable_layers
from .statistics import DEFAULT_TEXT_STAT, ActivationSignature


_LOW = 0xFFFF


def row_ranks(scores: Tensor, tiebreak: Tensor) -> Int[Tensor, "d_out d_in"]:
    """Rank of every entry within its row (0 = kept first) in :func:`~persona_circuits.masks.build.topk_rows`'
    order: score, then ``|tiebreak|``, descending; equal keys by lower index (a stable sort)."""
    d_out, d_in = scores.shape
    key = sort_keys(scores, tiebreak, None)
    if key.device.type == "cpu" and d_in <= _LOW and bool(((key & _LOW) == 0).all()):
        # a bfloat16 tiebreak leaves the low 16 bits of its float32 pattern zero: put the reversed column
        # index there, and every key of a row is distinct, so NumPy's (unstable, 2x faster) sort gives the
        # stable order, ties by lower index first
        key |= _LOW - torch.arange(d_in, dtype=torch.int64)
        order = torch.from_numpy(np.argsort(np.negative(key.numpy()), axis=1))
    else:
        order = key.argsort(dim=1, descending=True, stable=True)
    dtype = torch.int16 if d_in <= torch.iinfo(torch.int16).max else torch.int32
    pos = torch.arange(d_in, dtype=dtype, device=scores.device).expand(d_out, d_in)
    return torch.empty((d_out, d_in), dtype=dtype, device=scores.device).scatter_(1, order, pos)


class RankedContrast:
    """The contrastive-Wanda ranks of a pole pair, from which :meth:`keep` and :meth:`removal` cut masks.

    Args:
        sig_a, sig_b: the two poles' activation signatures (or a label-swapped pair).
        phi, tau, modules, text_stat: as :func:`~persona_circuits.masks.build.contrastive_wanda_masks`.
    """

    @torch.no_grad()
    def __init__(self, model, sig_a: ActivationSignature, sig_b: ActivationSignature, *, phi: str = "relu",
                 tau: float = 2.0, modules: str = "all", text_stat: str = DEFAULT_TEXT_STAT) -> None:
        check_mask_args(model, 0.0, modules, (sig_a, sig_b), text_stat=text_stat)
        self.model, self.sig_a, self.sig_b = model, sig_a, sig_b
        self.kw = dict(phi=phi, tau=tau if phi == "softplus" else None, text_stat=text_stat)
        self.modules = modules
        self.ranks: dict[str, tuple[Tensor, Tensor]] = {}
        for l in prunable_layers(model, modules):
            w = l.weight.detach()
            sa, sb = scoring.contrastive_wanda_scores(w, sig_a, sig_b, l.name, phi, tau, text_stat)
            self.ranks[l.name] = (row_ranks(sa, w).cpu(), row_ranks(sb, w).cpu())

    def _masks(self, method: str, strength: float, cut) -> dict[str, Mask]:
        ma, mb = {}, {}
        for name, (ra, rb) in self.ranks.items():
            ma[name], mb[name] = cut(ra, rb, ra.shape[1])
        a, b = mask_pair(self.model, method, strength, self.modules, self.sig_a, self.sig_b, ma, mb, **self.kw)
        return {a.config.pole: a, b.config.pole: b}

    def keep(self, sparsity: float) -> dict[str, Mask]:
        """Contrastive-Wanda keep masks at ``sparsity``, keyed by pole (as :func:`~persona_circuits.masks.build.build_masks`)."""
        check_mask_args(self.model, sparsity, self.modules)

        def cut(ra, rb, d_in):
            k = keep_count(d_in, sparsity)
            return ra < k, rb < k

        return self._masks("contrastive-wanda", sparsity, cut)

    def removal(self, fraction: float) -> dict[str, Mask]:
        """Contrastive-removal masks at ``fraction``: pole A's removes the top of pole B's score and vice versa."""
        check_mask_args(self.model, fraction, self.modules)

        def cut(ra, rb, d_in):
            n = remove_count(d_in, fraction)
            return rb >= n, ra >= n

        return self._masks("contrastive-removal", fraction, cut)
