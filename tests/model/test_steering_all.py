import pytest
import torch

from persona_circuits.measure.dials import all_layer_steering_dial, gate_dial
from persona_circuits.measure.evaluation import score_choices
from persona_circuits.model.interventions import Intervention, ResidualSteering
from persona_circuits.model.plain import plain_model
from persona_circuits.model.steering_all import AllLayerSteering


@pytest.fixture(scope="module")
def items():
    from persona_circuits.data import load_persona_set

    return load_persona_set("mbti-ei").subset(calib_size=4, test_size=3).test


def _diff(model, iv, items):
    with iv.active(model):
        return score_choices(model, items, batch_size=4).diff(True)


def test_all_layer_steering_equals_the_sum_of_its_one_layer_hooks(tiny_model, items):
    """With a vector only at block 1, every-layer steering is one-layer steering at block 1; with vectors at every
    block it differs from both single-layer conditions; the plain path and the bridge path agree."""
    n, d = tiny_model.cfg.n_layers, tiny_model.cfg.d_model
    g = torch.Generator().manual_seed(0)
    v = torch.randn(n, d, generator=g)
    only1 = torch.zeros(n, d)
    only1[1] = v[1]
    one = _diff(tiny_model, Intervention(steer=ResidualSteering(v[1], 1, 2.0)), items)
    all1 = _diff(tiny_model, Intervention(steer=AllLayerSteering(only1, 2.0)), items)
    assert torch.allclose(one, all1, atol=1e-5)
    full = _diff(tiny_model, Intervention(steer=AllLayerSteering(v, 2.0)), items)
    dense = _diff(tiny_model, Intervention(), items)
    assert not torch.allclose(full, one, atol=1e-4) and not torch.allclose(full, dense, atol=1e-4)
    if plain_model(tiny_model) is not None:  # the bridge path (hooks only) gives the same numbers
        with tiny_model.hooks(fwd_hooks=AllLayerSteering(v, 2.0).hooks()):
            bridge = score_choices(tiny_model, items, batch_size=4).diff(True)
        assert torch.allclose(bridge, full, atol=1e-4)
    assert torch.allclose(_diff(tiny_model, Intervention(), items), dense)  # hooks removed


def test_all_layer_steering_refuses_the_wrong_shape(tiny_llama, items):
    with pytest.raises(ValueError, match="vectors"):
        AllLayerSteering(torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="vectors"):
        _diff(tiny_llama, Intervention(steer=AllLayerSteering(torch.zeros(5, tiny_llama.cfg.d_model), 1.0)), items)


def test_dials_give_opposite_poles(tiny_llama):
    v = torch.ones(tiny_llama.cfg.n_layers, tiny_llama.cfg.d_model)
    a, b = all_layer_steering_dial(v).make(0.5)
    assert a.steer.coef == 0.5 and b.steer.coef == -0.5 and a.steer.vectors is v


def test_gate_dial_sets_gamma_from_the_strength(tiny_llama):
    from persona_circuits.masks.gate import projection_gate_masks
    from persona_circuits.masks.statistics import record_signature

    A = [("Free evening?", "Out with friends.")]
    B = [("Free evening?", "Home with a book.")]
    sa, sb = record_signature(tiny_llama, A, pole="a"), record_signature(tiny_llama, B, pole="b")
    dirs = torch.randn(tiny_llama.cfg.n_layers, tiny_llama.cfg.d_model, generator=torch.Generator().manual_seed(1))
    ma, mb = projection_gate_masks(tiny_llama, sa, sb, dirs)
    ivs = gate_dial({"a": ma, "b": mb}).make(0.25)
    assert [iv.gamma for iv in ivs] == [0.75, 0.75]
    assert ivs[0].mask.masks is ma.masks and ivs[0].mask.config.sparsity == 0.25


def test_writer_bias_is_the_mean_of_the_gates_change_and_acts_like_a_bias(tiny_gpt2, items):
    """mean_push is -sum over gated j of W_ij E[x_j]; WriterBias on GPT-2's c_proj equals adding it to the bias."""
    from persona_circuits.masks.gate import WriterBias, mean_push, pooled_moments, projection_gate_masks
    from persona_circuits.measure.dials import gate_bias_dial
    from persona_circuits.model.loading import prunable_layers
    from persona_circuits.masks.statistics import record_signature

    A = [("Free evening?", "Out with friends.")]
    B = [("Free evening?", "Home with a book.")]
    sigs = {"a": record_signature(tiny_gpt2, A, pole="a"), "b": record_signature(tiny_gpt2, B, pole="b")}
    dirs = torch.randn(tiny_gpt2.cfg.n_layers, tiny_gpt2.cfg.d_model, generator=torch.Generator().manual_seed(2))
    ma, mb = projection_gate_masks(tiny_gpt2, *sigs.values(), dirs)
    b = mean_push(tiny_gpt2, ma, sigs)
    layers = {l.name: l for l in prunable_layers(tiny_gpt2)}
    name = next(iter(b))
    w = layers[name].weight.detach().double()
    mean, _ = pooled_moments(tuple(sigs.values()), name)
    want = torch.stack([-sum(w[i, j] * mean[j] for j in range(w.shape[1]) if not ma.masks[name][i, j])
                        for i in range(3)])
    assert torch.allclose(b[name][:3].double(), want, atol=1e-5)
    biased = _diff(tiny_gpt2, Intervention(steer=WriterBias(b, 0.3)), items)
    params = {n: layers[n].module.bias for n in b}
    saved = {n: p.detach().clone() for n, p in params.items()}
    with torch.no_grad():
        for n, p in params.items():
            p.add_(0.3 * b[n].to(p.dtype))
    try:
        direct = _diff(tiny_gpt2, Intervention(), items)
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])
    assert torch.allclose(biased, direct, atol=1e-5)
    ivs = gate_bias_dial(tiny_gpt2, {"a": ma, "b": mb}, sigs).make(0.3)
    assert [iv.steer.coef for iv in ivs] == [0.3, 0.3] and torch.equal(ivs[0].steer.biases[name], b[name])
