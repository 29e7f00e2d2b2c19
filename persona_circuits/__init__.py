"""persona_circuits: find the persona subnetworks inside a language model.

Quick start::

    import persona_circuits as pc
    model = pc.load_model()                                  # embedded SmolLM2-135M-Instruct, offline
    persona = pc.load_persona_set("mbti-ei")                 # bundled persona pair
    sigs = pc.record_persona_signatures(model, persona, calib_size=64)
    masks = pc.build_masks(model, "contrastive-wanda", sigs, sparsity=0.5)
    with pc.apply_mask(model, masks["extravert"]):
        scores = pc.score_choices(model, persona.test)
    print(pc.summarize(scores, 0, condition="mask", pole="extravert"))

The public names are imported on first use (PEP 562): ``import persona_circuits`` imports neither torch
nor transformers, so the command line answers ``--help`` and argument errors at once.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._moved import MOVED, moved_warning
from ._moved import install as install_moved_modules

__version__ = "0.1.0"

#: submodule -> the public names it provides
_EXPORTS: dict[str, tuple[str, ...]] = {
    "data": ("ChoiceItem", "PersonaSet", "Pole", "bundled_personas", "load_persona_set", "parse_set_specs",
             "resolve_set"),
    "masks.compose": ("ALL_TYPES", "GateMask", "compose_masks", "compose_steering", "compose_type",
                      "mbti_type_poles", "opposite_type", "type_signs"),
    "analysis.atlas": ("atlas", "atlas_record", "pair_overlap", "top_contrastive_weights"),
    "study": ("StudyConfig", "run_study"),
    "results": ("StudyResults", "load_results"),
    "errors": ("DatasetError", "MaskError", "ModelLoadError", "ModelMismatchError", "OutputError",
               "PersonaCircuitsError", "SignatureError"),
    "measure.damage": ("Damage", "NeutralReference", "StrengthSearch", "find_strength", "kl_damage",
                       "measure_damage", "neutral_reference"),
    "measure.dials": ("Dial", "all_layer_steering_dial", "gate_bias_dial", "gate_dial", "mask_dial",
                      "soft_mask_dial", "steering_dial"),
    "model.dtypes": ("resolve_dtype",),
    "model.upcast": ("bf16_compute",),
    "measure.evaluation": ("ChoiceResult", "ChoiceScores", "generate", "pole_contrast", "score_choices", "summarize"),
    "measure.released": ("ReleasedResult", "ReleasedScores", "released_system_prompt", "score_released",
                         "summarize_released"),
    "model.export": ("export_model",),
    "masks.gate": ("WriterBias", "gate_directions", "mean_push", "projection_gate_masks"),
    "model.steering_all": ("AllLayerSteering",),
    "model.interventions": ("Intervention", "MaskSwitcher", "ResidualSteering", "apply_mask", "switch_masks"),
    "masks.build": ("METHODS", "Mask", "MaskConfig", "contrastive_removal_masks", "contrastive_sparse_masks",
                    "contrastive_wanda_masks", "load_masks", "load_null_masks", "random_like", "random_mask",
                    "save_masks", "topk_rows", "wanda_mask"),
    "masks.registry": ("MaskMethod", "build_masks", "register_mask_method"),
    "model.loading": ("DEFAULT_MODEL", "LinearLayer", "Model", "load_model", "prunable_layers"),
    "measure.nulls": ("NullTest", "derive_seed", "holm", "label_swap_indices", "label_swapped_directions",
                      "label_swapped_signatures", "null_mask_pairs", "null_test", "random_directions",
                      "random_pairs_like"),
    "masks.statistics": ("ActivationSignature", "PerTextStats", "load_signatures", "persona_signatures",
                         "record_persona_per_text", "record_persona_signatures", "record_signature",
                         "save_signatures"),
}
#: the package's own modules and subpackages (``pc.study``, ``pc.masks``, ...), imported on first access
_SUBMODULES = ("analysis", "data", "errors", "masks", "measure", "model", "options", "results", "study")
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(set(_WHERE) | set(_SUBMODULES))

install_moved_modules()


def __getattr__(name: str) -> Any:
    """Import the submodule that provides ``name`` on first access and cache the value here."""
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in MOVED:  # pc.nulls and the like: the module under its new name, with a DeprecationWarning
        moved_warning(name)
        return importlib.import_module(f".{MOVED[name]}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
