"""One set's analyses of representations: probes against lexical baselines, split-half reliability of the
pole difference, and neutral-text decoding of which pole's mask or prompt is active.

Training texts: the recorded calibration texts of both poles; held-out texts: both answers of every
held-out item. The neutral-text decoding compares the poles' contrastive-Wanda masks and persona prompts
with two random masks of the same sparsity (a pair that differs in damage only: pole masks that are no
more decodable than it give no evidence of persona structure).
"""

from __future__ import annotations

import numpy as np
import torch

from ..results import Decoding, Probes, Similarity
from .config import SETTINGS
from .setup import SetRun
from .stage import stage
from .state import Study

#: The reference pair of the neutral-text decoding.
RANDOM_PAIR = "two random masks (reference)"


@stage("probes", version=3, result=Probes)
def probes(study: Study, *, run: SetRun) -> Probes:
    """Layer probes of the pole on held-out answers, next to bag-of-words and embedding probes."""
    from ..analysis.features import answer_embeddings
    from ..analysis.probes import probes_with_baselines

    model, poles, ps = study.model, run.poles, run.ps
    ra, rb = (run.stats[p].resid for p in poles)
    pairs = [ps.calibration_pairs(p)[: len(r)] for p, r in ((poles[0], ra), (poles[1], rb))]
    feats = run.scores["dense"].features  # [n, 2, layer, d]: answer A, answer B of held-out items
    test_pairs = [(it.question, it.answer_a) for it in ps.test] + [(it.question, it.answer_b) for it in ps.test]
    train_pairs = pairs[0] + pairs[1]
    return probes_with_baselines(
        torch.cat([ra, rb]).numpy(), np.r_[np.zeros(len(ra), int), np.ones(len(rb), int)],
        torch.cat([feats[:, 0], feats[:, 1]]).numpy(), np.r_[np.zeros(len(feats), int), np.ones(len(feats), int)],
        train_texts=[a for _, a in train_pairs], test_texts=[a for _, a in test_pairs],
        train_embed=answer_embeddings(model, train_pairs).numpy(), test_embed=answer_embeddings(model, test_pairs).numpy(),
        test_groups=np.r_[np.arange(len(feats)), np.arange(len(feats))], seed=study.cfg.seed)


@stage("similarity", settings=(SETTINGS.analysis.similarity_splits, SETTINGS.analysis.similarity_permutations), version=3,
       result=Similarity)
def similarity(study: Study, *, run: SetRun) -> Similarity:
    """Split-half reliability of the pole difference per layer, with its permutation null."""
    from ..analysis.similarity import split_half_reliability

    a = study.cfg.analysis
    ra, rb = (run.stats[p].resid for p in run.poles)
    return split_half_reliability(ra, rb, n_splits=a.similarity_splits, n_permutations=a.similarity_permutations,
                                  seed=study.cfg.seed)


def _decoding_conditions(study: Study, run: SetRun) -> dict:
    from ..measure.baselines import persona_prompt
    from ..model.interventions import apply_mask

    model, poles = study.model, run.poles
    cw = run.masks["contrastive-wanda"]
    return {"contrastive-wanda masks": (lambda: apply_mask(model, cw[poles[0]]), lambda: apply_mask(model, cw[poles[1]])),
            "persona prompts": (persona_prompt(run.ps, poles[0]), persona_prompt(run.ps, poles[1]))}


_DECODE_SETTINGS = (SETTINGS.masks, SETTINGS.analysis.neutral_probe_texts, SETTINGS.analysis.neutral_probe_tokens)


def _decode(study: Study, ia, ib) -> Decoding:
    from ..analysis.capability import neutral_texts
    from ..analysis.probes import decode_intervention

    a = study.cfg.analysis
    return decode_intervention(study.model, ia, ib, neutral_texts(a.neutral_probe_texts), seed=study.cfg.seed,
                               batch_size=study.cfg.batch_size, max_tokens=a.neutral_probe_tokens)


@stage("neutral-decode", settings=_DECODE_SETTINGS, version=2, result=Decoding)
def neutral_decode(study: Study, *, run: SetRun, label: str) -> Decoding:
    """Decoding from neutral-text features which pole's condition (``label``) is active."""
    return _decode(study, *_decoding_conditions(study, run)[label])


@stage("random-decode", settings=_DECODE_SETTINGS, version=2, result=Decoding)
def random_decode(study: Study) -> Decoding:
    """The same for two random masks of the study's sparsity (set-independent: decoded once per study)."""
    from ..model.interventions import apply_mask

    model, rnd = study.model, study.random_masks()
    return _decode(study, lambda: apply_mask(model, rnd[0]), lambda: apply_mask(model, rnd[1]))


def neutral_decoding(study: Study, run: SetRun) -> dict[str, Decoding]:
    """The neutral-text decoding of every pair of conditions (see the module docstring), with the reference pair
    of two random masks under :data:`RANDOM_PAIR`."""
    out = {label: neutral_decode(study, run=run, label=label).update(poles=list(run.poles))
           for label in _decoding_conditions(study, run)}
    out[RANDOM_PAIR] = random_decode(study).update(poles=["random mask 1", "random mask 2"])
    return out
