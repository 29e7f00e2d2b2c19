import pytest
import torch

from persona_circuits.masks.build import topk_rows
from persona_circuits.masks.registry import build_masks
from persona_circuits.masks.ranked import RankedContrast, row_ranks
from persona_circuits.masks.statistics import record_signature

A = [("How do you spend a free evening?", "Out with a big group of friends, the louder the better."),
     ("A party invitation arrives.", "I say yes at once and bring two friends along.")]
B = [("How do you spend a free evening?", "At home with a book and a cup of tea, quietly."),
     ("A party invitation arrives.", "I thank them and probably stay in to recharge.")]


@pytest.fixture(scope="module")
def sigs(tiny_llama):
    return {"a": record_signature(tiny_llama, A, pole="a"), "b": record_signature(tiny_llama, B, pole="b")}


def test_row_ranks_cut_the_topk_rows_selection_with_ties():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (50, 40), generator=g).float()  # many ties in score
    tb = torch.randint(-3, 4, (50, 40), generator=g).float()  # and in |tiebreak|
    r = row_ranks(scores, tb)
    for k in (0, 1, 7, 20, 39, 40):
        assert torch.equal(r < k, topk_rows(scores, k, tiebreak=tb))


@pytest.mark.parametrize("tb_dtype", [torch.bfloat16, torch.float32])
def test_row_ranks_are_the_stable_order(tb_dtype):
    """Both ways of sorting (distinct keys with the index in a bfloat16 tiebreak's spare bits, or a stable
    sort of float32 keys) give every entry its place in (score desc, |tiebreak| desc, index asc)."""
    g = torch.Generator().manual_seed(4)
    scores = torch.where(torch.rand(30, 70, generator=g) < 0.5, torch.randn(30, 70, generator=g).clamp_min(0),
                         torch.randint(0, 3, (30, 70), generator=g).float())
    tb = (torch.randn(30, 70, generator=g) * torch.randint(0, 2, (30, 70), generator=g)).to(tb_dtype)
    tb[:, :10] = 0.3  # exact ties in |tiebreak| too (0.3 is not exact in float32's low bits)
    r = row_ranks(scores, tb)
    s, t = scores.tolist(), tb.float().abs().tolist()
    for i in range(30):
        order = sorted(range(70), key=lambda j: (-s[i][j], -t[i][j], j))
        assert [int(r[i, j]) for j in order] == list(range(70))


@pytest.mark.parametrize("phi", ["relu", "softplus"])
def test_ranked_masks_equal_build_masks(tiny_llama, sigs, phi):
    ranked = RankedContrast(tiny_llama, sigs["a"], sigs["b"], phi=phi)
    for s in (0.0, 0.03, 0.3, 0.7):
        got, want = ranked.keep(s), build_masks(tiny_llama, "contrastive-wanda", sigs, sparsity=s, phi=phi)
        for p in ("a", "b"):
            assert got[p].config == want[p].config
            assert all(torch.equal(got[p].masks[n], want[p].masks[n]) for n in want[p].masks)
    for f in (0.001, 0.05, 0.2):
        got, want = ranked.removal(f), build_masks(tiny_llama, "contrastive-removal", sigs, sparsity=f, phi=phi)
        for p in ("a", "b"):
            assert got[p].config == want[p].config
            assert all(torch.equal(got[p].masks[n], want[p].masks[n]) for n in want[p].masks)
