import itertools
import math

import pytest
import torch

from persona_circuits.errors import MaskError
from persona_circuits.masks.gate import (best_prefix, gate_directions, gate_scores, pooled_moments, projection_gate_masks,
                                   with_strength, writer_layers)
from persona_circuits.model.interventions import apply_mask
from persona_circuits.masks.build import Mask, load_masks, save_masks
from persona_circuits.masks.registry import build_masks
from persona_circuits.model.loading import prunable_layers


def brute_force_best(p, c):
    """The best ratio over every subset of weights (small case)."""
    best = (0.0, ())
    for r in range(1, len(p) + 1):
        for s in itertools.combinations(range(len(p)), r):
            cs = sum(c[i] for i in s)
            if cs > 0:
                best = max(best, (sum(p[i] for i in s) / math.sqrt(cs), s))
    return best


def test_best_prefix_by_hand():
    # p/c: 4, 1, 0.5, -, 3 ; prefix by p/c: idx0 (2/0.5=4), idx4 (3/1), idx1 (1/1), idx2 (1/2)
    p = torch.tensor([2.0, 1.0, 1.0, -1.0, 3.0])
    c = torch.tensor([0.5, 1.0, 2.0, 1.0, 1.0])
    sel, ratio = best_prefix(p, c)
    # prefixes: {0}: 2/sqrt(.5)=2.83; {0,4}: 5/sqrt(1.5)=4.08; {0,4,1}: 6/sqrt(2.5)=3.79; +2: 7/sqrt(4.5)=3.30
    assert sel.tolist() == [True, False, False, False, True]
    assert ratio == pytest.approx(5 / math.sqrt(1.5))
    assert ratio == pytest.approx(brute_force_best(p.tolist(), c.tolist())[0])


def test_best_prefix_matches_exhaustive_search_on_random_cases():
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        p = torch.randn(9, generator=g)
        c = torch.rand(9, generator=g) + 0.05
        sel, ratio = best_prefix(p, c)
        want, subset = brute_force_best(p.tolist(), c.tolist())
        assert ratio == pytest.approx(want, rel=1e-9)
        assert set(torch.nonzero(sel).squeeze(1).tolist()) == set(subset)


def test_best_prefix_nothing_positive():
    sel, ratio = best_prefix(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 1.0]))
    assert not sel.any() and ratio == 0.0


def test_gate_scores_formula():
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    mean, meansq, v = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 4.0]), torch.tensor([3.0, 4.0])
    p, c = gate_scores(w, mean, meansq, v)
    vn = v / 5
    for i in range(2):
        for j in range(2):
            assert float(p[i, j]) == pytest.approx(-float(w[i, j] * mean[j] * vn[i]))
            assert float(c[i, j]) == pytest.approx(float(w[i, j] ** 2 * meansq[j]))


@pytest.fixture(scope="module")
def gate_inputs(tiny_llama, small_persona_module):
    return gate_directions(tiny_llama, small_persona_module, n_calib=4, batch_size=4)


@pytest.fixture(scope="module")
def small_persona_module():
    from persona_circuits.data import load_persona_set

    return load_persona_set("mbti-ei").subset(calib_size=4, test_size=4)


def _selected(mask: Mask) -> dict:
    return {k: ~m for k, m in mask.masks.items()}


def test_projection_gate_selects_the_best_ratio_and_pole_b_uses_minus_p(tiny_llama, gate_inputs):
    sigs, dirs = gate_inputs
    assert dirs.shape == (tiny_llama.cfg.n_layers, tiny_llama.cfg.d_model)
    masks = build_masks(tiny_llama, "projection-gate", sigs, sparsity=0.1, directions=dirs)
    a, b = masks.values()
    layers = writer_layers(tiny_llama)
    assert set(a.masks) == {l.name for l in layers} and all(l.role in ("o", "down") for l in layers)
    p, c = [], []
    for l in layers:
        m, q = pooled_moments(tuple(sigs.values()), l.name)
        pl, cl = gate_scores(l.weight, m, q, dirs[l.block])
        p.append(pl.reshape(-1))
        c.append(cl.reshape(-1))
    p, c = torch.cat(p), torch.cat(c)
    sel_a = torch.cat([_selected(a)[l.name].reshape(-1) for l in layers])
    sel_b = torch.cat([_selected(b)[l.name].reshape(-1) for l in layers])
    assert sel_a.any() and sel_b.any() and not (sel_a & sel_b).any()
    assert bool((p[sel_a] > 0).all()) and bool((p[sel_b] < 0).all())
    ratio = lambda s, sign: float((sign * p[s]).double().sum() / c[s].double().sum().sqrt())  # noqa: E731
    assert ratio(sel_a, 1) == pytest.approx(a.config.extra["ratio"], rel=1e-6)
    assert ratio(sel_b, -1) == pytest.approx(b.config.extra["ratio"], rel=1e-6)
    # a threshold on p / c: every selected weight has a larger p / c than every unselected positive one
    r = p / c
    rest = (p > 0) & ~sel_a
    assert float(r[sel_a].min()) >= float(r[rest].max())
    # adding the next weight or dropping the last lowers the ratio
    order = torch.argsort(-(r[rest]))
    nxt = torch.nonzero(rest).squeeze(1)[order[0]]
    plus = sel_a.clone()
    plus[nxt] = True
    assert ratio(plus, 1) <= ratio(sel_a, 1)
    assert a.config.method == "projection-gate" and a.config.extra["gamma"] == pytest.approx(0.9)
    assert a.config.extra["selected"] == int(sel_a.sum())


def test_projection_gate_is_deterministic_and_roundtrips(tiny_llama, gate_inputs, tmp_path):
    sigs, dirs = gate_inputs
    m1 = build_masks(tiny_llama, "projection-gate", sigs, directions=dirs)
    m2 = build_masks(tiny_llama, "projection-gate", sigs, directions=dirs.clone())
    for p in m1:
        assert m1[p].identity() == m2[p].identity()
    save_masks(tmp_path / "m", m1)
    back = load_masks(tmp_path / "m")
    for p in m1:
        assert back[p].identity() == m1[p].identity()
        assert back[p].config.extra["gamma"] == pytest.approx(0.95)


def test_projection_gate_needs_directions_of_the_right_shape(tiny_llama, gate_inputs):
    sigs, dirs = gate_inputs
    with pytest.raises(MaskError, match="directions"):
        build_masks(tiny_llama, "projection-gate", sigs)
    with pytest.raises(MaskError, match="directions"):
        projection_gate_masks(tiny_llama, *sigs.values(), dirs[:1])


def test_gate_applies_through_the_soft_mask_path(tiny_model, small_persona_module):
    sigs, dirs = gate_directions(tiny_model, small_persona_module, n_calib=4, batch_size=4)
    a = build_masks(tiny_model, "projection-gate", sigs, sparsity=0.2, directions=dirs)[small_persona_module.pole_names[0]]
    before = {l.name: l.weight.detach().clone() for l in prunable_layers(tiny_model)}
    with apply_mask(tiny_model, a, gamma=a.config.extra["gamma"]):
        for l in prunable_layers(tiny_model):
            w = before[l.name]
            if l.name in a.masks:
                want = torch.where(a.masks[l.name].to(w.device), w, w * torch.tensor(0.8, dtype=w.dtype))
                assert torch.equal(l.weight, want)
            else:
                assert torch.equal(l.weight, w)
    assert all(torch.equal(l.weight, before[l.name]) for l in prunable_layers(tiny_model))
    b = with_strength({"x": a}, 0.5)["x"]
    assert b.config.extra["gamma"] == 0.5 and b.masks is a.masks and a.config.extra["gamma"] == pytest.approx(0.8)


def test_gated_model_exports_and_reloads_to_the_same_scores(tiny_llama, gate_inputs, small_persona_module, tmp_path,
                                                           tokenizer_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persona_circuits import load_model
    from persona_circuits.measure.evaluation import score_choices
    from persona_circuits.model.export import export_model

    sigs, dirs = gate_inputs
    a = build_masks(tiny_llama, "projection-gate", sigs, sparsity=0.3, directions=dirs)[small_persona_module.pole_names[0]]
    items = small_persona_module.test[:4]
    gamma = a.config.extra["gamma"]
    with apply_mask(tiny_llama, a, gamma=gamma):
        gated = score_choices(tiny_llama, items, batch_size=4)
    dense = score_choices(tiny_llama, items, batch_size=4)
    out = export_model(tiny_llama, a, tmp_path / "gated", gamma=gamma)
    hf = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    back = score_choices(load_model(hf, AutoTokenizer.from_pretrained(out), model_id="reloaded"), items, batch_size=4)
    assert torch.allclose(torch.as_tensor(back.diff(True)), torch.as_tensor(gated.diff(True)), atol=1e-5)
    assert not torch.allclose(torch.as_tensor(dense.diff(True)), torch.as_tensor(gated.diff(True)), atol=1e-6)
