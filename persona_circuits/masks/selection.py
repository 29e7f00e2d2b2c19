"""Per-row top-k selection with deterministic ties, shared by every mask method (:mod:`.masks`).

Keep, in every row of a ``[d_out, d_in]`` score matrix, the ``k`` largest scores; ties go to the larger
``|tiebreak|`` (the weight's magnitude), then to the lower input index, so identical inputs give
bit-identical masks.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..errors import MaskError


def sort_keys(scores: Tensor, tiebreak: Tensor | None, eligible: Tensor | None) -> Tensor:
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


def kth_smallest(x: Tensor, kth: int) -> Tensor:
    """Per row, the ``kth`` smallest value (1-based), as ``[d_out, 1]``: ``x.kthvalue(kth, 1, keepdim=True)``.

    On the CPU it is computed by NumPy's introselect (``np.partition``), which is 3-5x faster there than
    ``torch.kthvalue`` on rows of 576-1536 entries (``benchmarks/bench_masks.py``); the k-th order
    statistic is one well-defined value, so both give the same number. Other devices use ``kthvalue``.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.int32, torch.int64) and not x.requires_grad:
        a = x.contiguous().numpy()
        return torch.from_numpy(np.ascontiguousarray(np.partition(a, kth - 1, axis=1)[:, kth - 1:kth]))
    return x.kthvalue(kth, dim=1, keepdim=True).values


def _row_counts(x: Tensor) -> Tensor:
    """Per row, the number of true entries of a bool matrix (int32, ``[d_out, 1]``)."""
    return x.view(torch.uint8).sum(1, keepdim=True, dtype=torch.int32)


def _take_equal_by_index(keep: Tensor, eq: Tensor, k: int) -> None:
    """Add to ``keep``, per row, the lowest-index entries of ``eq`` until the row holds ``k`` (a running
    count only on the rows where ``eq`` holds more entries than are needed)."""
    need = k - _row_counts(keep)
    over = (_row_counts(eq) > need).squeeze(1)
    if not bool(over.any()):
        keep |= eq
        return
    keep |= eq & ~over[:, None]
    rows = over.nonzero().squeeze(1)
    e = eq[rows]
    keep[rows] |= e & (e.view(torch.uint8).cumsum(1, dtype=torch.int32) <= need[rows])


def topk_rows_keys(scores: Tensor, k: int, tiebreak: Tensor | None, eligible: Tensor | None) -> Tensor:
    """Reference selection on int64 ``(score, tiebreak)`` keys (used where the fast path cannot decide)."""
    d_in = scores.shape[1]
    key = sort_keys(scores, tiebreak, eligible)
    thr = kth_smallest(key, d_in - k + 1)
    keep = key > thr
    _take_equal_by_index(keep, key == thr, k)
    return keep


def _break_ties(ks: Tensor, keq: Tensor, tiebreak: Tensor, k: int) -> Tensor | None:
    """Rows where the entries at the threshold score (``keq``) are more than the ``k − ks`` still to
    keep: keep those of larger ``|tiebreak|``, then lower index. ``ks``: the entries above the threshold.
    ``None`` when a NaN tiebreak leaves no room for the int32 key (the caller uses the int64 reference)."""
    d_in = ks.shape[1]
    # bits of a non-negative float order like int32: key 0 for entries below the threshold, |tiebreak|
    # bits + 1 for tied ones, int32 max for those above it (products of 0/1 masks: no select pass)
    tb = (tiebreak.float().abs() + 0.0).contiguous().view(torch.int32)
    top = torch.iinfo(torch.int32).max
    if bool(tb.max() >= top - 1):  # a NaN tiebreak with (nearly) all payload bits set: no room
        return None
    key = (tb + 1) * keq.to(torch.int32) + top * ks.to(torch.int32)
    t2 = kth_smallest(key, d_in - k + 1)
    out = key > t2
    _take_equal_by_index(out, key == t2, k)
    return out


def topk_rows(scores: Float[Tensor, "d_out d_in"], k: int, *, tiebreak: Tensor | None = None,
              eligible: Tensor | None = None) -> Bool[Tensor, "d_out d_in"]:
    """Keep, per row, the ``k`` largest scores.

    Ties: larger ``tiebreak`` first, then lower column index. ``eligible`` (bool) excludes entries;
    a row with fewer than ``k`` eligible entries keeps all of them. O(d_in) per row: a k-th value
    selection and a comparison, no sort.

    The order is that of the int64 keys of :func:`sort_keys` (score, then ``|tiebreak|``, then
    index). It is computed in two steps that touch fewer bytes: a float32 k-th value per row
    (:func:`kth_smallest`) decides every row whose threshold score is not shared by more entries than
    fit; only rows with such a tie build int32 keys (``|tiebreak|`` bits of the tied entries) to break it.
    """
    d_out, d_in = scores.shape
    s = scores.float().contiguous()
    if s.numel() and not bool(s.min() >= 0):  # NaN propagates through min and fails ``>= 0``
        raise MaskError("scores must be non-negative and not NaN")
    if k <= 0:
        return torch.zeros((d_out, d_in), dtype=torch.bool, device=s.device)
    if k >= d_in:
        keep = torch.ones((d_out, d_in), dtype=torch.bool, device=s.device)
        return keep if eligible is None else keep & eligible
    if eligible is not None:
        s = torch.where(eligible, s, torch.full((), -1.0, device=s.device))  # below every eligible score
    # threshold = k-th largest score; rows where the entries >= threshold are exactly k are decided
    thr = kth_smallest(s, d_in - k + 1)
    keep = s >= thr
    rows = (_row_counts(keep) > k).squeeze(1).nonzero().squeeze(1)
    if rows.numel():
        every = rows.numel() == d_out
        sr, tr = (s, thr) if every else (s[rows], thr[rows])
        keq = sr == tr
        ks = sr > tr  # entries above the threshold: always kept (fewer than k of them)
        if tiebreak is None:
            _take_equal_by_index(ks, keq, k)
        else:
            broken = _break_ties(ks, keq, tiebreak if every else tiebreak[rows], k)
            if broken is None:
                broken = topk_rows_keys(scores[rows], k, tiebreak[rows], None if eligible is None else eligible[rows])
            ks = broken
        if every:
            keep = ks
        else:
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
