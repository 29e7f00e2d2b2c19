"""The mask method registry: every method by name, and a researcher's own method next to them."""

import pytest
import torch

from persona_circuits.errors import MaskError
from persona_circuits.masks.build import Mask, random_mask
from persona_circuits.masks.registry import REGISTRY, MaskMethod, build_masks, register_mask_method
from persona_circuits.options import DEFAULT_SPARSITY, METHODS

from persona_circuits.masks.statistics import record_signature

from .test_masks import A as TEXTS_A
from .test_masks import B as TEXTS_B

A, B = "a", "b"


@pytest.fixture(scope="module")
def tiny_sigs(tiny_llama):
    return {A: record_signature(tiny_llama, TEXTS_A, pole=A), B: record_signature(tiny_llama, TEXTS_B, pole=B)}


def test_the_registry_has_every_method_of_the_command_line():
    assert tuple(REGISTRY) == METHODS
    assert {m: r.default_sparsity for m, r in REGISTRY.items()} == DEFAULT_SPARSITY
    assert not REGISTRY["wanda"].pair and not REGISTRY["random"].pair
    assert all(REGISTRY[m].pair for m in METHODS if m not in ("wanda", "random"))


def test_a_registered_method_is_built_by_name(tiny_llama, tiny_sigs):
    calls = []

    def mine(model, sigs, o):
        calls.append((tuple(sigs), o.sparsity, o.seed))
        return {p: random_mask(model, sparsity=o.sparsity, seed=o.seed, pole=p) for p in sigs}

    method = MaskMethod("my-method", pair=True, build=mine, default_sparsity=0.25)
    try:
        register_mask_method(method)
        masks = build_masks(tiny_llama, "my-method", tiny_sigs, seed=3)
        assert calls == [((A, B), 0.25, 3)]
        assert all(isinstance(m, Mask) for m in masks.values())
        with pytest.raises(MaskError, match="already registered"):
            register_mask_method(method)
        with pytest.raises(MaskError, match="needs a persona pair"):
            build_masks(tiny_llama, "my-method", {A: tiny_sigs[A]})
    finally:
        REGISTRY.pop("my-method", None)
    with pytest.raises(MaskError, match="unknown method 'my-method'"):
        build_masks(tiny_llama, "my-method", tiny_sigs)


def test_build_masks_is_the_method_builder(tiny_llama, tiny_sigs):
    """Dispatch changes nothing: the registry's contrastive-wanda masks are the builder's, bit for bit."""
    from persona_circuits.masks.build import contrastive_wanda_masks

    ma, mb = contrastive_wanda_masks(tiny_llama, tiny_sigs[A], tiny_sigs[B], sparsity=0.4)
    got = build_masks(tiny_llama, "contrastive-wanda", tiny_sigs, sparsity=0.4)
    for want, m in ((ma, got[A]), (mb, got[B])):
        assert want.config == m.config
        assert all(torch.equal(want.masks[n], m.masks[n]) for n in want.masks)
