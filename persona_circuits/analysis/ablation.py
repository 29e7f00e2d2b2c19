"""Ablations: which parts of a mask carry the persona effect.

* restore: inside a masked model, leave one group of layers (a range of blocks, or a module type)
  dense, and measure how much of the mask's effect on the pole preference remains;
* removal: in the dense model, zero the weights with the largest contrastive scores (a fraction
  ``q`` of every row), against zeroing as many random weights per row.
"""

from __future__ import annotations

import torch

from .. import scoring
from ..masks import Mask, MaskConfig, keep_count, random_mask, topk_rows
from ..models import architecture_fingerprint, get_model_id, prunable_layers
from ..statistics import ActivationSignature


def layer_groups(n_blocks: int, n_groups: int) -> list[list[int]]:
    edges = [round(i * n_blocks / n_groups) for i in range(n_groups + 1)]
    return [list(range(edges[i], edges[i + 1])) for i in range(n_groups) if edges[i] < edges[i + 1]]


def group_layers(mask: Mask, blocks: list[int] | None = None, kind: str | None = None) -> set[str]:
    out = set()
    for name in mask.masks:
        _, b, k, _ = name.split(".")
        if (blocks is None or int(b) in blocks) and (kind is None or k == kind):
            out.add(name)
    return out


@torch.no_grad()
def top_contrastive_removal(model, sig_a: ActivationSignature, sig_b: ActivationSignature, fraction: float,
                            *, modules: str = "all", phi: str = "relu") -> Mask:
    """Keep-mask that removes, per row, the ``fraction`` of weights with the largest pole-A
    contrastive-Wanda score ``|W| phi(z)``."""
    out = {}
    for l in prunable_layers(model, modules):
        w = l.weight
        sa, _ = scoring.contrastive_wanda_scores(w, sig_a, sig_b, l.name, phi)
        n_remove = w.shape[1] - keep_count(w.shape[1], 1.0 - fraction) if fraction > 0 else 0
        out[l.name] = ~topk_rows(sa, n_remove, tiebreak=w.detach()).cpu()
    cfg = MaskConfig("top-contrastive-removal", fraction, get_model_id(model), architecture_fingerprint(model),
                     modules=modules, pole=sig_a.pole)
    return Mask(out, cfg)


def random_removal(model, fraction: float, *, modules: str = "all", seed: int = 0) -> Mask:
    return random_mask(model, sparsity=fraction, modules=modules, seed=seed)
