import torch

from persona_circuits.model.loading import hf_model, prunable_layers
from persona_circuits.model.plain import hooks_active, plain_model


def test_plain_module_shares_the_bridge_weights(tiny_model):
    plain = plain_model(tiny_model)
    assert plain is not None and plain_model(tiny_model) is plain  # built once
    # same storage (GPT-2's split q/k/v weights are views into its fused c_attn parameter)
    shared = {p.untyped_storage().data_ptr() for p in plain.parameters()}
    assert all(l.weight.untyped_storage().data_ptr() in shared for l in prunable_layers(tiny_model))
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, tiny_model(ids), rtol=1e-4, atol=1e-4)


def test_plain_module_is_rebuilt_when_a_parameter_is_replaced(tokenizer_dir):
    from tests.conftest import make_tiny

    m = make_tiny("llama", tokenizer_dir, seed=2)
    first = plain_model(m)
    lin = prunable_layers(m)[0].module
    lin.weight = torch.nn.Parameter(lin.weight.detach() * 2)
    second = plain_model(m)
    assert second is not first and any(p is lin.weight for p in second.parameters())
    hf_model(m).to(torch.bfloat16)  # replaces buffers (rotary inv_freq)
    third = plain_model(m)
    assert third is not second and next(third.parameters()).dtype == torch.bfloat16


def test_hooks_active_ignores_the_bridges_own_capture_hooks(tiny_llama):
    with torch.no_grad():
        tiny_llama(torch.tensor([[1, 2, 3]]))  # wires TransformerLens's internal capture hooks
    assert not hooks_active(tiny_llama)
    with tiny_llama.hooks(fwd_hooks=[("blocks.0.hook_out", lambda x, hook: x)]):
        assert hooks_active(tiny_llama)
    h = torch.nn.modules.module.register_module_forward_hook(lambda *a: None)
    try:
        assert hooks_active(tiny_llama)
    finally:
        h.remove()
    assert not hooks_active(tiny_llama)


def test_unmirrorable_model_gets_none(tokenizer_dir, monkeypatch):
    from persona_circuits import plain as plain_mod
    from tests.conftest import make_tiny

    m = make_tiny("gpt2", tokenizer_dir, seed=3)
    monkeypatch.setattr(plain_mod, "_self_check", lambda model, p: False)
    assert plain_model(m) is None


def test_transformers_output_observers_keep_the_plain_path(tiny_llama):
    """run_with_cache makes transformers install output-capturing hooks on the decoder layers for good; they
    only observe, so the fast path stays in use afterwards."""
    import torch

    from persona_circuits.model.plain import hooks_active

    tiny_llama.run_with_cache(torch.tensor([[1, 2, 3]]), names_filter=lambda n: n.endswith("hook_out"))
    assert not hooks_active(tiny_llama)
