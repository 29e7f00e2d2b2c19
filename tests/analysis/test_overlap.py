import torch

from persona_circuits.analysis.overlap import mask_overlap, random_expectation
from persona_circuits.masks.build import Mask, MaskConfig, random_mask


def _mask(d):
    return Mask({k: torch.tensor(v, dtype=torch.bool) for k, v in d.items()}, MaskConfig("x", 0.5, "m", "f"))


def test_overlap_counts_by_hand():
    a = _mask({"blocks.0.attn.q": [[1, 1, 0, 0]], "blocks.0.mlp.in": [[1, 0, 1, 0]]})
    b = _mask({"blocks.0.attn.q": [[1, 0, 1, 0]], "blocks.0.mlp.in": [[1, 0, 1, 0]]})
    ov = mask_overlap(a, b)
    assert ov.overall.difference_rate == 2 / 8
    assert ov.overall.jaccard == 3 / 5
    assert ov.by_module["attn"].difference_rate == 0.5 and ov.by_module["mlp"].difference_rate == 0.0
    assert [b.block for b in ov.per_block] == [0] and ov.per_block[0].jaccard == 3 / 5
    assert random_expectation(0.5).difference_rate == 0.5


def test_random_masks_match_the_expectation(tiny_llama):
    ov = mask_overlap(random_mask(tiny_llama, sparsity=0.3, seed=0), random_mask(tiny_llama, sparsity=0.3, seed=1))
    assert abs(ov.overall.difference_rate - ov.random_expectation.difference_rate) < 0.02
