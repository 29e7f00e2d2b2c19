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


def as_study(m16, f):
    """``f`` run as the study runs ``m16`` (a bfloat16 model): inside
    :func:`~persona_circuits.model.upcast.bf16_compute`, so on a CPU without native bfloat16 its products run in
    float32 (torch's generic bfloat16 kernels there are several times slower than the study's path)."""
    from persona_circuits.model.upcast import bf16_compute

    def run():
        with bf16_compute(m16):
            return f()

    return run


def bf16_note(m16) -> str:
    """The note naming how ``m16``'s bfloat16 products were computed in this run."""
    from persona_circuits.model.upcast import bf16_products

    how = bf16_products(m16)
    return (f"bfloat16 products: {how} (as the study computes them on this CPU: persona_circuits/model/upcast.py; "
            + ("native bfloat16 kernels)" if how == "native" else "converted to float32, result rounded to bfloat16)"))


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


__all__ = ["agreement", "as_study", "bf16_note", "get_bf16_model", "get_model", "test_items", "torch"]
