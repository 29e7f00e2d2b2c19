import pytest
import torch

from persona_circuits.errors import MaskError
from persona_circuits.masks.selection import topk_rows_keys, kth_smallest, topk_rows
from tests.masks.test_masks import loop_topk


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32, torch.int64])
def test_kth_smallest_is_kthvalue(dtype):
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-5, 6, (9, 31), generator=g).to(dtype)  # many exact ties
    if dtype == torch.float32:
        x = torch.where(torch.rand(9, 31, generator=g) < 0.5, x, torch.randn(9, 31, generator=g))
    for kth in (1, 2, 16, 30, 31):
        want = x.kthvalue(kth, dim=1, keepdim=True).values
        got = kth_smallest(x, kth)
        assert got.shape == (9, 1) and got.dtype == dtype and torch.equal(got, want)
    # a non-contiguous input (a transposed view) gives the same values as its contiguous copy
    xt = x.t()
    assert torch.equal(kth_smallest(xt, 3), xt.contiguous().kthvalue(3, dim=1, keepdim=True).values)


def _mixed_rows(g, d_out, d_in):
    """Rows of three kinds: all distinct, ReLU-like ties at zero, small integers (ties everywhere)."""
    distinct = torch.rand(d_out, d_in, generator=g)
    relu = torch.randn(d_out, d_in, generator=g).clamp_min(0)
    ints = torch.randint(0, 3, (d_out, d_in), generator=g).float()
    kind = torch.randint(0, 3, (d_out, 1), generator=g)
    return torch.where(kind == 0, distinct, torch.where(kind == 1, relu, ints))


def test_topk_rows_matches_loop_on_mixed_rows():
    """Some rows decided by the float threshold, some tied (broken by |tiebreak|, then by index)."""
    g = torch.Generator().manual_seed(11)
    for _ in range(20):
        d_out, d_in = int(torch.randint(1, 12, (1,), generator=g)), int(torch.randint(2, 20, (1,), generator=g))
        s = _mixed_rows(g, d_out, d_in)
        tb = torch.randint(-2, 3, (d_out, d_in), generator=g).float()
        elig = torch.rand(d_out, d_in, generator=g) < 0.7
        for k in {0, 1, d_in // 3, d_in // 2, d_in - 1, d_in}:
            assert torch.equal(topk_rows(s, k, tiebreak=tb), loop_topk(s, tb, k))
            assert torch.equal(topk_rows(s, k, tiebreak=tb, eligible=elig), loop_topk(s, tb, k, elig))
            assert torch.equal(topk_rows(s, k), loop_topk(s, torch.zeros_like(s), k))


@pytest.mark.parametrize("bits", [0x7FFFFFFF, 0x7FFFFFFE, 0x7FC00000])
def test_topk_rows_nan_tiebreak_follows_the_int64_reference(bits):
    g = torch.Generator().manual_seed(5)
    s = torch.randint(0, 2, (6, 10), generator=g).float()
    tb = torch.randn(6, 10, generator=g)
    tb.view(torch.int32)[2, 3] = bits  # a NaN whose payload leaves no room in the int32 key (or does)
    for k in (1, 4, 7):
        assert torch.equal(topk_rows(s, k, tiebreak=tb), topk_rows_keys(s, k, tb, None))


def test_topk_rows_rejects_negative_and_nan_scores():
    with pytest.raises(MaskError, match="non-negative"):
        topk_rows(torch.tensor([[0.5, -0.1]]), 1)
    with pytest.raises(MaskError, match="NaN"):
        topk_rows(torch.tensor([[0.5, float("nan")]]), 1)
