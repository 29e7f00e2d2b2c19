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
"""

from .data import ChoiceItem, PersonaSet, Pole, bundled_personas, load_persona_set, parse_set_specs, resolve_set
from .compose import (ALL_TYPES, GateMask, compose_masks, compose_steering, compose_type, mbti_type_poles, opposite_type,
                      type_signs)
from .analysis.atlas import atlas, atlas_record, pair_overlap, top_contrastive_weights
from .errors import (DatasetError, MaskError, ModelLoadError, ModelMismatchError, OutputError,
                     PersonaCircuitsError, SignatureError)
from .damage import (Damage, Dial, NeutralReference, StrengthSearch, find_strength, kl_damage, mask_dial,
                     measure_damage, neutral_reference, soft_mask_dial, steering_dial)
from .evaluation import ChoiceResult, ChoiceScores, generate, pole_contrast, score_choices, summarize
from .export import export_model
from .interventions import Intervention, MaskSwitcher, ResidualSteering, apply_mask, switch_masks
from .masks import (METHODS, Mask, MaskConfig, build_masks, contrastive_removal_masks, contrastive_sparse_masks,
                    contrastive_wanda_masks, load_masks, load_null_masks, random_like, random_mask, save_masks,
                    topk_rows, wanda_mask)
from .models import DEFAULT_MODEL, LinearLayer, load_model, prunable_layers
from .nulls import NullTest, label_swapped_signatures, null_mask_pairs, null_test, random_directions, random_pairs_like
from .statistics import (ActivationSignature, PerTextStats, load_signatures, persona_signatures,
                         record_persona_per_text, record_persona_signatures, record_signature, save_signatures)

__version__ = "0.1.0"
__all__ = [n for n in dir() if not n.startswith("_")]
