import pytest
import torch

from persona_circuits.errors import MaskError, ModelMismatchError
from persona_circuits.model.interventions import ResidualSteering, apply_mask, steering, weights_snapshot
from persona_circuits.masks.build import random_mask
from persona_circuits.model.loading import prunable_layers


def _equal_to(model, snap):
    return all(torch.equal(l.weight, snap[l.name]) for l in prunable_layers(model))


def test_apply_mask_zeroes_pruned_weights_and_restores_bit_exactly(tiny_model):
    snap = weights_snapshot(tiny_model)
    m = random_mask(tiny_model, sparsity=0.5, seed=3)
    with apply_mask(tiny_model, m):
        for l in prunable_layers(tiny_model):
            w = l.weight
            assert (w[~m.masks[l.name]] == 0).all()
            assert torch.equal(w[m.masks[l.name]], snap[l.name][m.masks[l.name]])
    assert _equal_to(tiny_model, snap)


def test_restore_on_exception(tiny_llama):
    snap = weights_snapshot(tiny_llama)
    m = random_mask(tiny_llama, sparsity=0.7)
    with pytest.raises(RuntimeError, match="boom"):
        with apply_mask(tiny_llama, m):
            raise RuntimeError("boom")
    assert _equal_to(tiny_llama, snap)


def test_mask_changes_the_output_and_switching_needs_no_reload(tiny_llama):
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        dense = tiny_llama(ids)
        with apply_mask(tiny_llama, random_mask(tiny_llama, sparsity=0.5, seed=0)):
            a = tiny_llama(ids)
        with apply_mask(tiny_llama, random_mask(tiny_llama, sparsity=0.5, seed=1)):
            b = tiny_llama(ids)
        again = tiny_llama(ids)
    assert not torch.allclose(dense, a) and not torch.allclose(a, b)
    assert torch.equal(dense, again)


def test_soft_mask_keeps_gamma_of_pruned_weights(tiny_llama):
    snap = weights_snapshot(tiny_llama)
    m = random_mask(tiny_llama, sparsity=0.5)
    with apply_mask(tiny_llama, m, gamma=0.25):
        l = prunable_layers(tiny_llama)[0]
        torch.testing.assert_close(l.weight[~m.masks[l.name]], 0.25 * snap[l.name][~m.masks[l.name]])
    assert _equal_to(tiny_llama, snap)
    with pytest.raises(MaskError):
        with apply_mask(tiny_llama, m, gamma=1.5):
            pass


def test_dense_layers_are_left_untouched(tiny_llama):
    m = random_mask(tiny_llama, sparsity=0.5)
    keep = prunable_layers(tiny_llama)[0].name
    snap = weights_snapshot(tiny_llama)
    with apply_mask(tiny_llama, m, dense_layers={keep}):
        assert torch.equal(prunable_layers(tiny_llama)[0].weight, snap[keep])
        assert not torch.equal(prunable_layers(tiny_llama)[1].weight, snap[prunable_layers(tiny_llama)[1].name])


def test_mask_of_other_model_is_refused_before_touching_weights(tiny_llama, tiny_gpt2):
    m = random_mask(tiny_llama, sparsity=0.5)
    snap = weights_snapshot(tiny_gpt2)
    with pytest.raises(ModelMismatchError):
        with apply_mask(tiny_gpt2, m):
            pass
    assert _equal_to(tiny_gpt2, snap)


def test_residual_steering_hook_changes_then_restores_output(tiny_llama):
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        base = tiny_llama(ids)
        with steering(tiny_llama, ResidualSteering(torch.ones(64), layer=0, coef=3.0)):
            steered = tiny_llama(ids)
        after = tiny_llama(ids)
    assert not torch.allclose(base, steered)
    assert torch.equal(base, after)


def test_restore_is_exact_when_two_layers_alias_one_weight(tokenizer_dir):
    from ..conftest import make_tiny
    from persona_circuits.model.loading import prunable_layers

    model = make_tiny("llama", tokenizer_dir, seed=5)
    l0, l1 = prunable_layers(model)[0], prunable_layers(model)[7]  # blocks.0.attn.q and blocks.1.attn.q
    assert l0.shape == l1.shape
    l1.module.weight = l0.module.weight  # tied: one storage, two layer names
    before = l0.weight.detach().clone()
    m = random_mask(model, sparsity=0.5, seed=11)
    assert not torch.equal(m.masks[l0.name], m.masks[l1.name])
    with apply_mask(model, m):
        assert not torch.equal(l0.weight, before)
    assert torch.equal(l0.weight, before) and torch.equal(l1.weight, before)


def test_intervention_combines_mask_and_steering_and_restores(tiny_llama):
    from persona_circuits.model.interventions import Intervention, ResidualSteering

    ids = torch.tensor([[1, 2, 3, 4]])
    dense = tiny_llama(ids)
    iv = Intervention(label="x", mask=random_mask(tiny_llama, sparsity=0.5),
                      steer=ResidualSteering(torch.ones(tiny_llama.cfg.d_model), 0, 3.0))
    assert Intervention().is_dense and not iv.is_dense
    with iv.active(tiny_llama):
        moved = tiny_llama(ids)
    with Intervention(mask=iv.mask).active(tiny_llama):
        mask_only = tiny_llama(ids)
    assert not torch.allclose(moved, mask_only) and not torch.allclose(mask_only, dense)
    assert torch.equal(tiny_llama(ids), dense)


# ---- MaskSwitcher: persona-to-persona switch writing only the entries that differ

def _inside_apply_mask(model, mask, gamma=0.0):
    with apply_mask(model, mask, gamma=gamma):
        return weights_snapshot(model)


def _check_switches(model, masks, gamma=0.0):
    from persona_circuits.model.interventions import MaskSwitcher

    snap = weights_snapshot(model)
    want = {id(m): _inside_apply_mask(model, m, gamma) for m in masks if m is not None}
    with MaskSwitcher(model, gamma=gamma) as sw:
        for m in masks:
            sw.switch(m)
            ref = snap if m is None else want[id(m)]
            for l in prunable_layers(model):  # bit for bit, also the sign of zeros
                assert torch.equal(l.weight.view(torch.int32), ref[l.name].view(torch.int32)) if l.weight.dtype == torch.float32 \
                    else torch.equal(l.weight, ref[l.name]), l.name
    assert _equal_to(model, snap)


def test_switcher_matches_apply_mask_and_restores(tiny_model):
    a = random_mask(tiny_model, sparsity=0.5, seed=1)
    b = random_mask(tiny_model, sparsity=0.5, seed=2)
    _check_switches(tiny_model, [a, b, a, b, None, b, a])
    _check_switches(tiny_model, [a, b, a], gamma=0.25)


def test_switcher_writes_only_differing_entries(tiny_llama):
    from persona_circuits.model.interventions import MaskSwitcher

    a = random_mask(tiny_llama, sparsity=0.5, seed=1)
    b = random_mask(tiny_llama, sparsity=0.5, seed=1)
    names = list(b.masks)
    b.masks[names[0]] = b.masks[names[0]].clone()
    b.masks[names[0]].view(-1)[:10] ^= True  # b differs from a in 10 entries of one layer
    del b.masks[names[1]]  # and leaves one layer dense
    with MaskSwitcher(tiny_llama) as sw:
        n = sw.changed_entries(a, b)
        assert n == 10 + int((~a.masks[names[1]]).sum())
    _check_switches(tiny_llama, [a, b, a])


def test_switcher_with_two_layers_aliasing_one_weight(tokenizer_dir):
    from tests.conftest import make_tiny

    m = make_tiny("llama", tokenizer_dir, seed=5)
    layers = {l.name: l for l in prunable_layers(m)}
    layers["blocks.1.attn.q"].module.weight = layers["blocks.0.attn.q"].module.weight  # tied
    assert layers["blocks.1.attn.q"].weight.data_ptr() == layers["blocks.0.attn.q"].weight.data_ptr()
    a = random_mask(m, sparsity=0.5, seed=1)
    b = random_mask(m, sparsity=0.5, seed=2)
    _check_switches(m, [a, b, a, None, b])
    _check_switches(m, [b, a], gamma=0.5)


def test_switcher_restores_on_exception_and_refuses_other_models(tiny_llama, tiny_gpt2):
    from persona_circuits.model.interventions import MaskSwitcher

    snap = weights_snapshot(tiny_llama)
    with pytest.raises(RuntimeError, match="boom"):
        with MaskSwitcher(tiny_llama) as sw:
            sw.switch(random_mask(tiny_llama, sparsity=0.5, seed=1))
            sw.switch(random_mask(tiny_llama, sparsity=0.5, seed=2))
            raise RuntimeError("boom")
    assert _equal_to(tiny_llama, snap)
    with MaskSwitcher(tiny_gpt2) as sw:
        with pytest.raises(ModelMismatchError):
            sw.switch(random_mask(tiny_llama, sparsity=0.5))


def test_switcher_in_bfloat16(tokenizer_dir):
    from tests.conftest import make_tiny

    m = make_tiny("gpt2", tokenizer_dir, seed=6)
    m.original_model.to(torch.bfloat16)
    _check_switches(m, [random_mask(m, sparsity=0.5, seed=1), random_mask(m, sparsity=0.3, seed=2), None])


def test_switcher_refuses_partially_overlapping_views(tokenizer_dir):
    from persona_circuits.model.interventions import MaskSwitcher
    from tests.conftest import make_tiny

    m = make_tiny("llama", tokenizer_dir, seed=7)
    layers = {l.name: l for l in prunable_layers(m)}
    big = layers["blocks.0.attn.q"].module.weight  # 64 x 64
    with torch.no_grad():
        layers["blocks.0.attn.o"].module.weight.data = big.data.T  # same storage, another view
    with pytest.raises(MaskError, match="share part"):
        MaskSwitcher(m).open()


def test_switcher_threads_give_the_same_weights(tokenizer_dir, monkeypatch):
    from persona_circuits import interventions
    from tests.conftest import make_tiny

    m = make_tiny("llama", tokenizer_dir, seed=8)
    monkeypatch.setattr(interventions, "_THREADED_MIN_ENTRIES", 0)
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _check_switches(m, [random_mask(m, sparsity=0.5, seed=1), random_mask(m, sparsity=0.5, seed=2),
                            random_mask(m, sparsity=0.5, seed=1)])
    finally:
        torch.set_num_threads(n)


def test_switcher_refuses_weights_replaced_while_open(tokenizer_dir):
    from persona_circuits.model.interventions import MaskSwitcher
    from tests.conftest import make_tiny

    m = make_tiny("llama", tokenizer_dir, seed=9)
    with MaskSwitcher(m) as sw:
        sw.switch(random_mask(m, sparsity=0.5, seed=1))
        lin = prunable_layers(m)[0].module
        lin.weight = torch.nn.Parameter(lin.weight.detach().clone())
        with pytest.raises(MaskError, match="replaced"):
            sw.switch(random_mask(m, sparsity=0.5, seed=2))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.25, 1e-3, 0.7777777, 1.0])
def test_scale_pruned_is_the_select_formula_bit_for_bit(dtype, gamma):
    from persona_circuits.model.interventions import INT_OF_SIZE, scale_pruned

    g = torch.Generator().manual_seed(2)
    w = (torch.randn(37, 53, generator=g) * 10).to(dtype)
    w.view(-1)[:4] = torch.tensor([0.0, -0.0, float("inf"), -float("inf")]).to(dtype)
    keep = torch.rand(37, 53, generator=g) > 0.4
    want = w.clone().mul_(torch.where(keep, 1.0, gamma).to(dtype))
    got = w.clone()
    scale_pruned(got, keep, gamma)
    it = INT_OF_SIZE[w.element_size()]
    assert torch.equal(got.view(it), want.view(it))
