"""Helpers shared by the throughput benchmarks (issue 9): a bfloat16 copy of the default model, test
items, and agreement between two sets of choice scores."""

from __future__ import annotations

import torch

from _common import MODELS, SHARED_POWER, get_model


def get_bf16_model():
    """The default model loaded again in bfloat16 (once per process; from the converted-weights cache)."""
    if "default-bf16" not in MODELS:
        import persona_circuits as pc

        MODELS["default-bf16"] = pc.load_model(dtype="bfloat16")
    return MODELS["default-bf16"]


def test_items(n: int):
    """``n`` test items: half mbti-ei (bundled), half the power task when present."""
    import persona_circuits as pc

    sets = [pc.load_persona_set("mbti-ei")] + ([pc.load_persona_set(SHARED_POWER)] if SHARED_POWER.is_dir() else [])
    per = [n // len(sets) + (1 if i < n % len(sets) else 0) for i in range(len(sets))]
    return [it for ps, k in zip(sets, per) for it in ps.test[:k]]


def agreement(ref, new) -> dict:
    """Share of identical choices (summed and per-token log-likelihood), largest per-token margin
    difference and largest summed log-likelihood difference of ``new`` vs ``ref``."""
    same_sum = ((ref.diff() > 0) == (new.diff() > 0)).double().mean().item()
    same_norm = ((ref.diff(True) > 0) == (new.diff(True) > 0)).double().mean().item()
    return {"same_choice_summed": same_sum, "same_choice_per_token": same_norm,
            "same_choices": min(same_sum, same_norm),
            "max_margin_diff": float((ref.diff(True) - new.diff(True)).abs().max()),
            "max_logp_diff": float((ref.logp - new.logp).abs().max())}


__all__ = ["agreement", "get_bf16_model", "get_model", "test_items", "torch"]
