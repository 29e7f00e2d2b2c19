
from persona_circuits.analysis.sparsity import sparsity_profile
from persona_circuits.masks.build import random_mask


def test_sparsity_profile(tiny_llama):
    prof = sparsity_profile(random_mask(tiny_llama, sparsity=0.25))
    assert abs(prof.overall - 0.25) < 0.01
    assert set(prof.by_module) >= {"attn", "mlp", "attn.q", "mlp.out"}
    assert [r.block for r in prof.per_block] == [0, 1]
