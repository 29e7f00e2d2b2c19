"""MBTI types by composition: the rule of each kind of mask, exact soft gates, steering sums, the CLI."""

import json

import pytest
import torch

from persona_circuits.masks.compose import (ALL_TYPES, ComposeError, GateMask, check_type, compose_masks, compose_steering,
                                      compose_type, infer_rule, mbti_type_poles, opposite_type, type_signs)
from persona_circuits.model.interventions import Intervention, apply_mask, weights_snapshot
from persona_circuits.errors import MaskError
from persona_circuits.masks.build import Mask, load_masks, random_mask
from persona_circuits.model.loading import prunable_layers


def test_the_sixteen_types_their_poles_and_opposites():
    assert len(ALL_TYPES) == len(set(ALL_TYPES)) == 16 and "INTJ" in ALL_TYPES and "ESFP" in ALL_TYPES
    assert mbti_type_poles("intj") == {"mbti-ei": "introvert", "mbti-sn": "intuition", "mbti-tf": "thinking",
                                       "mbti-jp": "judging"}
    assert mbti_type_poles("ESFP") == {"mbti-ei": "extravert", "mbti-sn": "sensing", "mbti-tf": "feeling",
                                       "mbti-jp": "perceiving"}
    assert opposite_type("INTJ") == "ESFP"
    assert all(opposite_type(opposite_type(t)) == t and set(opposite_type(t)).isdisjoint(t) for t in ALL_TYPES)
    assert type_signs("ENFP") == {"mbti-ei": 1.0, "mbti-sn": -1.0, "mbti-tf": -1.0, "mbti-jp": -1.0}
    for bad in ("INT", "IXTJ", "NITJ", ""):
        with pytest.raises(ComposeError):
            check_type(bad)


def _parts(model, n=3, sparsity=0.4, method=None):
    parts = {}
    for i in range(n):
        m = random_mask(model, sparsity=sparsity, seed=10 + i, pole=f"pole{i}")
        if method:
            m.config.method = method
        parts[f"axis{i}"] = m
    return parts


def test_keep_masks_compose_by_the_intersection_of_kept_weights(tiny_llama):
    parts = _parts(tiny_llama)
    out = compose_masks(parts, pole="T")
    assert isinstance(out, Mask) and infer_rule(parts) == "keep"
    for name, m in out.masks.items():
        assert torch.equal(m, parts["axis0"].masks[name] & parts["axis1"].masks[name] & parts["axis2"].masks[name])
    comp = out.config.extra["composed"]
    assert comp["rule"] == "keep" and [p["axis"] for p in comp["parts"]] == ["axis0", "axis1", "axis2"]
    assert [p["pole"] for p in comp["parts"]] == ["pole0", "pole1", "pole2"] and out.config.pole == "T"
    assert out.config.sparsity == 0.4 and out.density() == pytest.approx(0.6 ** 3, abs=0.02)


def test_removal_masks_compose_by_the_union_of_removed_weights(tiny_llama):
    parts = _parts(tiny_llama, sparsity=0.05, method="contrastive-removal")
    out = compose_masks(parts)
    assert out.config.extra["composed"]["rule"] == "removal"
    for name, kept in out.masks.items():
        removed = [~p.masks[name] for p in parts.values()]
        assert torch.equal(~kept, removed[0] | removed[1] | removed[2])  # a weight any axis removes is removed
        assert int((~kept).sum(1).max()) <= sum(int(r.sum(1).max()) for r in removed)
    keep_rule = compose_masks(parts, rule="keep")  # the same bits: De Morgan in the keep representation
    assert all(torch.equal(out.masks[k], keep_rule.masks[k]) for k in out.masks)
    mixed = dict(parts, other=random_mask(tiny_llama, sparsity=0.3, seed=1))
    with pytest.raises(ComposeError, match="removal masks with keep masks"):
        compose_masks(mixed)


def test_soft_masks_compose_by_the_product_of_gates_applied_exactly_and_restored(tiny_llama):
    parts = _parts(tiny_llama, sparsity=0.5)
    gammas = {"axis0": 0.5, "axis1": 0.25, "axis2": 0.5}  # powers of two: every product is exact in float32
    gm = compose_masks(parts, gamma=gammas)
    assert isinstance(gm, GateMask) and gm.config.extra["composed"]["gammas"] == [0.5, 0.25, 0.5]
    before = weights_snapshot(tiny_llama)
    layers = {l.name: l for l in prunable_layers(tiny_llama)}
    with apply_mask(tiny_llama, gm):
        for name, w0 in before.items():
            g = torch.ones_like(w0)
            for axis, p in parts.items():
                g = g * torch.where(p.masks[name], 1.0, gammas[axis])
            assert torch.equal(layers[name].weight.detach(), w0 * g)
            n_pruned = sum((~p.masks[name]).int() for p in parts.values())
            assert torch.equal(g == 1.0, n_pruned == 0)  # a weight is scaled once per part that prunes it
    assert all(torch.equal(layers[n].weight, w) for n, w in before.items())  # restored bit for bit
    with Intervention(mask=gm).active(tiny_llama):
        assert not torch.equal(layers["blocks.0.mlp.in"].weight, before["blocks.0.mlp.in"])
    assert all(torch.equal(layers[n].weight, w) for n, w in before.items())
    with pytest.raises(Exception, match="boom"), apply_mask(tiny_llama, gm):
        raise RuntimeError("boom")
    assert all(torch.equal(layers[n].weight, w) for n, w in before.items())
    with pytest.raises(MaskError, match="its own gates"), apply_mask(tiny_llama, gm, gamma=0.3):
        pass


def test_one_soft_part_is_apply_mask_with_its_gamma_bit_for_bit(tiny_gpt2):
    m = random_mask(tiny_gpt2, sparsity=0.3, seed=3)
    gm = compose_masks({"a": m}, gamma=0.37)
    layers = {l.name: l for l in prunable_layers(tiny_gpt2)}
    with apply_mask(tiny_gpt2, m, gamma=0.37):
        ref = {n: l.weight.detach().clone() for n, l in layers.items()}
    with apply_mask(tiny_gpt2, gm):
        assert all(torch.equal(layers[n].weight, ref[n]) for n in ref)


def test_compose_type_takes_each_axis_pole_of_the_type(tiny_llama):
    axes = {}
    for i, axis in enumerate(("mbti-ei", "mbti-sn", "mbti-tf", "mbti-jp")):
        from persona_circuits.data import load_persona_set

        poles = load_persona_set(axis).pole_names
        axes[axis] = {p: random_mask(tiny_llama, sparsity=0.2, seed=2 * i + j, pole=p) for j, p in enumerate(poles)}
    out = compose_type(axes, "INTJ")
    assert out.config.pole == "INTJ" and out.config.poles == ["introvert", "intuition", "thinking", "judging"]
    for name, m in out.masks.items():
        want = axes["mbti-ei"]["introvert"].masks[name] & axes["mbti-sn"]["intuition"].masks[name] \
            & axes["mbti-tf"]["thinking"].masks[name] & axes["mbti-jp"]["judging"].masks[name]
        assert torch.equal(m, want)
    with pytest.raises(ComposeError, match="mbti-jp"):
        compose_type({k: v for k, v in axes.items() if k != "mbti-jp"}, "INTJ")


def test_composed_steering_is_the_sum_of_the_signed_axis_vectors():
    g = torch.Generator().manual_seed(0)
    vecs = {a: torch.randn(3, 8, generator=g) for a in ("mbti-ei", "mbti-sn", "mbti-tf", "mbti-jp")}
    v = compose_steering(vecs, "ISTP")
    want = -vecs["mbti-ei"] + vecs["mbti-sn"] + vecs["mbti-tf"] - vecs["mbti-jp"]
    assert torch.allclose(v, want, atol=1e-6) and v.dtype == torch.float32
    assert torch.allclose(compose_steering(vecs, "ISTP"), -compose_steering(vecs, opposite_type("ISTP")))
    with pytest.raises(ComposeError, match="different layers"):
        compose_steering(vecs, "ISTP", layers={"mbti-ei": 3, "mbti-sn": 3, "mbti-tf": 4, "mbti-jp": 3})
    with pytest.raises(ComposeError, match="shapes"):
        compose_steering(dict(vecs, **{"mbti-jp": torch.zeros(8)}), "ISTP")


def test_cli_mask_mbti_type_writes_the_type_and_its_opposite(tmp_path, capsys, tiny_model_dir):
    from persona_circuits.cli import main

    out = tmp_path / "intj"
    code = main(["mask", "mbti", "--type", "intj", "--method", "contrastive-removal", "--sparsity", "0.05",
                 "--calib-size", "3", "--damage-texts", "2", "--out", str(out), "--model", str(tiny_model_dir), "--no-progress",
                 "--batch-size", "4"])
    text = capsys.readouterr().out
    assert code == 0 and "INTJ" in text and "ESFP" in text
    masks = load_masks(out)
    assert set(masks) == {"INTJ", "ESFP"}
    comp = json.loads((out / "composition.json").read_text())
    assert comp["rule"] == "removal" and comp["masks"]["INTJ"]["damage_kl"] >= 0.0
    assert [p["pole"] for p in masks["INTJ"].config.extra["composed"]["parts"]] == ["introvert", "intuition", "thinking",
                                                                                   "judging"]
    assert masks["ESFP"].config.extra["damage_kl"] == comp["masks"]["ESFP"]["damage_kl"]
    for args, needle in ((["mask", "mbti", "--method", "wanda", "--sparsity", "0.5"], "needs --type"),
                         (["mask", "mbti-ei", "--type", "INTJ", "--method", "wanda", "--sparsity", "0.5"], "give the dataset mbti"),
                         (["mask", "mbti", "--type", "INTX", "--method", "wanda", "--sparsity", "0.5"], "unknown MBTI type")):
        assert main(args + ["--out", str(tmp_path / "x")]) == 2
        assert needle in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
