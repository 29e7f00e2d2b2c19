import pytest
import torch

from persona_circuits.measure.baselines import (LoRA, RagRetriever, persona_prompt, select_steering, steering_vectors,
                                        train_lora)
from persona_circuits.measure.evaluation import score_choices


def test_persona_prompt_names_the_pole(small_persona):
    p = persona_prompt(small_persona, "introvert")
    assert "solitude" in p and p.startswith("You are")


def test_rag_retrieves_nearest_calibration_examples(small_persona):
    rag = RagRetriever(small_persona, "extravert", k=2)
    q = small_persona.calibration[3].question
    got = rag.retrieve(q)
    assert got[0] == (q, small_persona.calibration[3].answer_a)  # the item itself is nearest
    assert len(got) == 2 and rag.retrieve(q) == got
    assert small_persona.calibration[3].answer_a in rag.context(q)


def test_steering_vectors_and_selection(tiny_llama, small_persona):
    fa, fb = torch.randn(5, 2, 64), torch.randn(7, 2, 64) + 1.0
    v = steering_vectors(fa, fb)
    torch.testing.assert_close(v, fa.mean(0) - fb.mean(0))
    sel = select_steering(tiny_llama, small_persona, v, [0, 1], [1.0, 3.0], n_items=2)
    assert len(sel.table) == 4 and (sel.layer, sel.coef) in {(r.layer, r.coef) for r in sel.table}
    best = max(r.contrast for r in sel.table)
    assert next(r for r in sel.table if (r.layer, r.coef) == (sel.layer, sel.coef)).contrast == best


def test_lora_starts_at_base_model_and_training_lowers_loss(tiny_llama, small_persona):
    items = small_persona.test[:2]
    base = score_choices(tiny_llama, items)
    lora = LoRA(tiny_llama, rank=4)
    with lora.active():
        same = score_choices(tiny_llama, items)
    torch.testing.assert_close(base.logp, same.logp)
    pairs = small_persona.calibration_pairs("extravert")[:4]
    lora, cost = train_lora(tiny_llama, pairs, epochs=3, lr=5e-3, batch_size=4)
    assert cost.steps == 3 and cost.last_loss < cost.first_loss
    after = score_choices(tiny_llama, items)
    torch.testing.assert_close(base.logp, after.logp)  # hooks are gone outside `active()`
    assert all(p.requires_grad for p in tiny_llama.parameters()) or not any(p.requires_grad for p in tiny_llama.parameters())


def test_lora_trains_and_runs_on_a_bfloat16_model(tokenizer_dir):
    from transformers import AutoTokenizer

    from persona_circuits import load_model

    from ..conftest import tiny_hf

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = load_model(tiny_hf("llama", len(tok)), tok, model_id="tiny-bf16", dtype="bfloat16")
    lora, cost = train_lora(model, [("Hi?", "Hello there."), ("Plans?", "Staying in.")], epochs=1, batch_size=2)
    assert cost.steps == 1 and all(p.dtype == torch.float32 for p in lora.parameters())
    with lora.active():
        out = model(torch.tensor([[1, 2, 3]]))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_lora_stops_when_its_held_out_loss_stops_falling(tiny_llama, small_persona):
    pairs = small_persona.calibration_pairs("extravert")
    # a learning rate so high that the held-out loss cannot keep falling: training stops early
    _, cost = train_lora(tiny_llama, pairs[:4], epochs=8, lr=0.5, batch_size=4, val_pairs=pairs[4:8])
    assert cost.converged is True and cost.epochs < 8 and cost.max_epochs == 8
    assert len(cost.val_losses) == cost.epochs + 1 and cost.val_texts == 4
    # a tiny learning rate: the loss falls by less than the threshold at once, also "converged" after one epoch
    _, slow = train_lora(tiny_llama, pairs[:4], epochs=3, lr=1e-7, batch_size=4, val_pairs=pairs[4:8])
    assert slow.epochs == 1 and slow.converged is True
    # no held-out pairs: a fixed number of epochs, as before
    _, fixed = train_lora(tiny_llama, pairs[:4], epochs=2, lr=1e-3, batch_size=4)
    assert fixed.epochs == 2 and fixed.converged is None and fixed.val_losses == []


def test_lora_keeps_the_adapters_of_its_best_epoch(tiny_llama, small_persona):
    from persona_circuits.measure.baselines import answer_loss

    pairs = small_persona.calibration_pairs("extravert")
    lora, cost = train_lora(tiny_llama, pairs[:4], epochs=6, lr=0.05, batch_size=4, val_pairs=pairs[4:8])
    with lora.active():
        final = answer_loss(tiny_llama, pairs[4:8])
    assert final == pytest.approx(min(cost.val_losses), rel=1e-4)
