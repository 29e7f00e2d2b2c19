"""Mask sparsity per layer (block) and module type."""

from __future__ import annotations

from collections import defaultdict

from ..masks.build import Mask
from ..results import BlockSparsity, SparsityProfile


def _parts(name: str) -> tuple[int, str, str]:
    _, block, kind, comp = name.split(".")
    return int(block), kind, comp


def sparsity_profile(mask: Mask) -> SparsityProfile:
    """Fraction of weights removed: overall, per module type, per block and per block x type."""
    removed, total = defaultdict(int), defaultdict(int)
    for name, m in mask.masks.items():
        block, kind, comp = _parts(name)
        r, t = int((~m).sum()), m.numel()
        for key in ("all", kind, f"{kind}.{comp}", f"block{block}", f"block{block}.{kind}"):
            removed[key] += r
            total[key] += t
    frac = {k: removed[k] / total[k] for k in total}
    blocks = sorted({_parts(n)[0] for n in mask.masks})
    return SparsityProfile(
        overall=frac["all"], by_module={k: v for k, v in frac.items() if not k.startswith("block") and k != "all"},
        per_block=[BlockSparsity(block=b, all=frac[f"block{b}"], attn=frac.get(f"block{b}.attn"),
                                 mlp=frac.get(f"block{b}.mlp")) for b in blocks])
