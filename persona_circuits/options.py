"""Names and defaults of the options that the command line offers, importable without torch.

The modules that implement each option (:mod:`.masks`, :mod:`.statistics`, :mod:`.damage`, :mod:`.dtypes`,
:mod:`.evaluation_released`) import them from here, so ``persona-circuits --help`` and argument errors
are answered without importing torch or transformers.
"""

from __future__ import annotations

#: mask methods (``masks.build_masks``)
METHODS = ("wanda", "contrastive-wanda", "contrastive-sparse", "contrastive-sparse-released", "contrastive-removal",
           "random", "projection-gate")
#: default strength of each method: the released code's sparsities; the removed fraction for removal masks
DEFAULT_SPARSITY = {"wanda": 0.5, "contrastive-wanda": 0.3, "contrastive-sparse": 0.3,
                    "contrastive-sparse-released": 0.3, "contrastive-removal": 0.01, "random": 0.5,
                    "projection-gate": 0.05}  # projection-gate: the gate strength s (gamma = 1 - s), not a sparsity

#: channel statistics of Wanda scores
STATISTICS = ("l2", "mean_abs", "rms")
#: default channel statistic: the released code's per-text L2 norm, averaged over texts
DEFAULT_STATISTIC = "l2"
TOKEN_SELECTIONS = ("answer", "predict", "all")
#: per-text statistics the contrastive z-score can use
TEXT_STATISTICS = ("l2", "rms")
#: default per-text statistic of the contrastive z-score: the length-invariant RMS. On the default model the
#: mean z from per-text L2 norms tracks the pseudo-poles' token-count difference over label-swapped draws
#: (correlation +0.94 to +1.00 on mbti-ei, power and hallucination) and the RMS does much less (+0.06 to
#: +0.45): ``analyses/z_length.py`` -> figures/z_length.json. ``"l2"`` reproduces the paper and released code.
DEFAULT_TEXT_STAT = "rms"

#: neutral texts of the KL damage of each mask in ``evaluate``
DEFAULT_DAMAGE_TEXTS = 24

#: ``--dtype`` values; ``auto`` is bfloat16 where the hardware runs it natively, float32 elsewhere
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: logger of ``load_model``'s INFO record "dtype NAME (reason)" (the CLI prints it on stderr)
DTYPE_LOGGER = "persona_circuits.dtype"

#: two-way-choice scorings of ``evaluate --scoring`` (see :mod:`.evaluation` and :mod:`.evaluation_released`)
SCORINGS = ("summed", "per-token", "released")
DEFAULT_SCORING = "summed"
