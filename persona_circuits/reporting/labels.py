"""Names and small readings of the results shared by the report and the figures (neither imports the other)."""

from __future__ import annotations

from ..results import SetResults

#: Conditions of the alignment tables, in the order the figures show them, and their labels.
COND_ORDER = ("dense", "prompt", "rag", "steering", "random-mask", "wanda", "contrastive-wanda",
              "contrastive-sparse", "contrastive-wanda+prompt", "sft")
COND_LABEL = {"dense": "dense", "prompt": "persona prompt", "rag": "RAG", "steering": "steering",
              "random-mask": "random mask", "wanda": "Wanda mask", "contrastive-wanda": "contrastive Wanda",
              "contrastive-sparse": "contrastive sparse", "contrastive-wanda+prompt": "c-Wanda + prompt",
              "sft": "LoRA SFT"}

#: The headline's dials: what each method's strength is.
DIAL_LABEL = {"contrastive-wanda": "contrastive-Wanda keep mask (sparsity)",
              "contrastive-removal": "contrastive removal (fraction)",
              "wanda": "Wanda keep mask (sparsity)",
              "contrastive-sparse": "contrastive-sparse keep mask (sparsity)",
              "soft-mask": "soft contrastive-Wanda mask (1 - gamma)",
              "steering": "steering (coefficient)",
              "projection-gate": "projection gate (strength s)",
              "steering-all": "every-layer steering (coefficient)",
              "gate-bias": "the gate's mean push as writer biases (strength s)"}

#: What a 16-type result composes, per method (``persona_circuits.masks.compose``).
COMPOSE_LABEL = {"soft-mask": "soft contrastive-Wanda masks (the product of the axes' gates)",
                 "steering": "steering directions (the sum of the axes' signed difference-of-means directions)"}

#: Sets where the answers' length decides the summed score: only the per-token accuracy and the pole
#: contrast are reported for them.
LENGTH_DECIDED = ("hallucination",)


def lora_trained(s: SetResults) -> bool | None:
    """Whether the set's LoRA adapters moved the model away from the dense one.

    The study's ``trained`` flag when it wrote one (on the runs, the ``sft`` contrast or the headline's ``sft`` point); otherwise
    read from the measured damage: ``False`` when every pole's KL to the dense model is exactly 0 (the adapters
    stayed at zero), ``True`` when any is above 0, ``None`` without LoRA or without a measured damage.
    """
    runs = list((s.sft or {}).values())
    point = (s.headline.points.get("sft") if s.headline else None)
    contrast = s.contrast("sft")
    flags = ([r.trained for r in runs if r.trained is not None] + ([point.trained] if point and point.trained is not None else [])
             + ([contrast.trained] if contrast and contrast.trained is not None else []))
    if flags:
        return all(flags)
    damages = [r.damage_kl for r in runs if r.damage_kl is not None]
    if not damages:
        return None
    return any(d > 0 for d in damages)


def lora_label(s: SetResults, short: bool = False) -> str:
    """``LoRA fine-tuning (upper bound)`` only where its adapters moved the model; otherwise says why not."""
    name = "LoRA" if short else "LoRA fine-tuning"
    status = lora_trained(s)
    if status is True:
        return f"{name} (upper bound)"
    if status is False:
        return f"{name} (adapters at zero)" if short else f"{name} (adapters at zero: no upper bound)"
    return name
