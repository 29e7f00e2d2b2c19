"""Models loaded with a ``device_map`` (weights placed by accelerate, possibly over several devices).

CPU-only CI cannot place weights on several devices; these tests check that ``device_map`` reaches
``from_pretrained``, that nothing moves the weights afterwards, and that statistics, masks, scoring
and generation give the same results as a model loaded the ordinary way.
"""

import pytest
import torch

pytest.importorskip("accelerate")

from persona_circuits import build_masks, load_model, record_persona_signatures, score_choices  # noqa: E402
from persona_circuits.errors import ModelLoadError  # noqa: E402
from persona_circuits.measure.evaluation import generate  # noqa: E402
from persona_circuits.model.interventions import apply_mask  # noqa: E402
from persona_circuits.model.loading import hf_model, input_device  # noqa: E402

PER_MODULE = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu", "model.norm": "cpu",
              "model.rotary_emb": "cpu", "lm_head": "cpu"}


def _pipeline(model, persona):
    sigs = record_persona_signatures(model, persona, batch_size=4)
    masks = build_masks(model, "contrastive-wanda", sigs, sparsity=0.5)
    with apply_mask(model, masks["introvert"]):
        scores = score_choices(model, persona.test, batch_size=4, capture_layers=[0, 1])
        text = generate(model, "Hello?", max_new_tokens=5)
    return sigs, masks, scores, text


@pytest.mark.parametrize("device_map", [{"": "cpu"}, PER_MODULE], ids=["whole", "per-module"])
def test_device_map_gives_the_same_statistics_masks_and_scores(tiny_model_dir, small_persona, device_map):
    # float32: in bfloat16 an ordinary load casts the rotary inv_freq buffer to bfloat16 (``hf.to(dtype)``)
    # while a device_map load keeps it in float32, so the two differ by design of the loads, not of the map
    plain = load_model(str(tiny_model_dir), dtype="float32")
    mapped = load_model(str(tiny_model_dir), device_map=device_map, dtype="float32")
    assert input_device(mapped) == torch.device("cpu")
    s0, m0, c0, t0 = _pipeline(plain, small_persona)
    s1, m1, c1, t1 = _pipeline(mapped, small_persona)
    for pole in s0:
        for layer, sums in s0[pole].sums.items():
            for k, v in sums.items():
                assert torch.equal(v, s1[pole].sums[layer][k]), (pole, layer, k)
    for pole in m0:
        assert m0[pole].masks.keys() == m1[pole].masks.keys()
        assert all(torch.equal(m0[pole].masks[k], m1[pole].masks[k]) for k in m0[pole].masks)
    assert torch.equal(c0.logp, c1.logp) and torch.equal(c0.features, c1.features)
    assert t0 == t1


def test_dispatched_model_is_not_moved(tiny_model_dir):
    """A model already placed by accelerate (``hf_device_map`` set) keeps its placement: load_model does
    not call ``.to(device)`` on it, and inputs go to its embedding's device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    hf.hf_device_map = {"": "cpu"}
    before = sorted(p.data_ptr() for p in hf.parameters())
    model = load_model(hf, AutoTokenizer.from_pretrained(tiny_model_dir), device="meta", model_id="tiny")
    assert sorted(p.data_ptr() for p in hf_model(model).parameters()) == before  # same storage: nothing moved
    assert input_device(model) == torch.device("cpu")


def test_device_map_with_a_loaded_model_is_refused(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with pytest.raises(ModelLoadError, match="device_map"):
        load_model(hf, AutoTokenizer.from_pretrained(tiny_model_dir), device_map="auto")
