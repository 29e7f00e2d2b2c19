"""Per-row top-k selection with deterministic ties, shared by every mask method (:mod:`.masks`).

Keep, in every row of a ``[d_out, d_in]`` score matrix, the ``k`` largest scores; ties go to the larger
``|tiebreak|`` (the weight's magnitude), then to the lower input index, so identical inputs give
bit-identical masks.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .errors import MaskError


def _sort_keys(scores: Tensor, tiebreak: Tensor | None, eligible: Tensor | None) -> Tensor:
    """Unique-order int64 keys: (score, tiebreak) lexicographic; non-eligible entries get −1.

    Non-negative float32 values order like their bit patterns read as int32, so
    ``bits(score) · 2³¹ + bits(tiebreak)`` orders by score, then tiebreak, in one integer.
    """
    s = scores.float().contiguous()
    if torch.isnan(s).any() or (s < 0).any():
        raise MaskError("scores must be non-negative and not NaN")
    key = (s + 0.0).view(torch.int32).long() << 31  # + 0.0 turns -0.0 into +0.0
    if tiebreak is not None:
        key |= (tiebreak.float().abs() + 0.0).contiguous().view(torch.int32).long()
    if eligible is not None:
        key = torch.where(eligible, key, torch.full_like(key, -1))
    return key


def _topk_rows_keys(scores: Tensor, k: int, tiebreak: Tensor | None, eligible: Tensor | None) -> Tensor:
    """Reference selection on int64 ``(score, tiebreak)`` keys (used where the fast path cannot decide)."""
    d_in = scores.shape[1]
    key = _sort_keys(scores, tiebreak, eligible)
    thr = key.kthvalue(d_in - k + 1, dim=1, keepdim=True).values
    keep = key > thr
    need = k - keep.sum(1, keepdim=True)
    eq = key == thr
    keep |= eq & (eq.cumsum(1) <= need)
    return keep


def _take_equal_by_index(keep: Tensor, eq: Tensor, k: int) -> None:
    """Add to ``keep``, per row, the lowest-index entries of ``eq`` until the row holds ``k``."""
    need = k - keep.sum(1, keepdim=True)
    keep |= eq & (eq.cumsum(1) <= need)


def topk_rows(scores: Float[Tensor, "d_out d_in"], k: int, *, tiebreak: Tensor | None = None,
              eligible: Tensor | None = None) -> Bool[Tensor, "d_out d_in"]:
    """Keep, per row, the ``k`` largest scores.

    Ties: larger ``tiebreak`` first, then lower column index. ``eligible`` (bool) excludes entries;
    a row with fewer than ``k`` eligible entries keeps all of them. O(d_in) per row: a k-th value
    selection and a comparison, no sort.

    The order is that of the int64 keys of :func:`_sort_keys` (score, then ``|tiebreak|``, then
    index). It is computed in two steps that touch fewer bytes: a float32 k-th value per row decides
    every row whose threshold score is not shared by more entries than fit; only rows with such a tie
    build int32 keys (``|tiebreak|`` bits of the tied entries) to break it.
    """
    d_out, d_in = scores.shape
    s = scores.float().contiguous()
    if not bool((s >= 0).all()):  # one pass: NaN and negative values both fail ``>= 0``
        raise MaskError("scores must be non-negative and not NaN")
    if k <= 0:
        return torch.zeros((d_out, d_in), dtype=torch.bool, device=s.device)
    if k >= d_in:
        keep = torch.ones((d_out, d_in), dtype=torch.bool, device=s.device)
        return keep if eligible is None else keep & eligible
    if eligible is not None:
        s = torch.where(eligible, s, torch.full((), -1.0, device=s.device))  # below every eligible score
    # threshold = k-th largest score; rows where the entries >= threshold are exactly k are decided
    thr = s.kthvalue(d_in - k + 1, dim=1, keepdim=True).values
    keep = s > thr
    eq = s == thr
    tied = (keep.sum(1) + eq.sum(1)) > k
    keep |= eq
    rows = tied.nonzero().squeeze(1)
    if rows.numel():
        ks, keq = keep[rows], eq[rows]
        ks &= ~keq  # entries above the threshold: always kept (fewer than k of them)
        if tiebreak is None:
            _take_equal_by_index(ks, keq, k)
        else:
            # among the tied entries, order by |tiebreak| (bits of a non-negative float order like
            # int32), then index; above-threshold entries rank first, the others last
            tb = (tiebreak[rows].float().abs() + 0.0).contiguous().view(torch.int32)
            top = torch.iinfo(torch.int32).max
            if bool((tb == top).any()):  # a NaN tiebreak with all payload bits set: use the reference
                ks = _topk_rows_keys(scores[rows], k, tiebreak[rows],
                                     None if eligible is None else eligible[rows])
            else:
                key = torch.where(keq, tb, torch.full((), -1, dtype=torch.int32, device=tb.device))
                key.masked_fill_(ks, top)
                t2 = key.kthvalue(d_in - k + 1, dim=1, keepdim=True).values
                ks = key > t2
                _take_equal_by_index(ks, key == t2, k)
        keep[rows] = ks
    # ineligible entries (score -1) are only picked in rows with fewer than k eligible entries, and
    # removed here
    return keep if eligible is None else keep & eligible


def topk_rows_varying(scores: Float[Tensor, "d_out d_in"], k: Tensor) -> Bool[Tensor, "d_out d_in"]:
    """Keep, in row ``i``, the ``k[i]`` largest scores (ties: lower column index first). One stable sort."""
    d_out, d_in = scores.shape
    order = scores.float().argsort(dim=1, descending=True, stable=True)
    rank_keep = torch.arange(d_in, device=scores.device)[None, :] < k.to(scores.device)[:, None]
    return torch.zeros((d_out, d_in), dtype=torch.bool, device=scores.device).scatter_(1, order, rank_keep)
