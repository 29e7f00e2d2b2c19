"""The study plan: its settings (:class:`StudyConfig`, full and ``--quick``) and the persona sets it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import PersonaCircuitsError

AI_TASKS = ("power", "wealth", "hallucination")
STUDY_FILE = "study.json"
MAIN_METHODS = ("wanda", "contrastive-wanda", "contrastive-sparse")

#: Settings added after the first full study: left unset (``None``) they take these values (full run,
#: quick run). Unset options are left out of a study's identity, so an older output folder resumes
#: with the new analyses and reuses its cached stages.
LATER_DEFAULTS = {
    "similarity_splits": (20, 10),  # random splits averaged per split-half reliability
    "similarity_permutations": (200, 50),  # label permutations of its null
    "neutral_probe_texts": (32, 6),  # neutral texts for decoding which pole's mask / prompt is active
    "neutral_probe_tokens": (64, 64),  # their first tokens kept (4 forward passes per set)
    "null_draws": (2, 2),  # label-swapped mask pairs / directions per curve point (and the strength-matched null)
    "matched_null_draws": (10, 3),  # damage-matched label-swapped draws per matched row, on every held-out item
    "random_direction_draws": (4, 2),  # damage-matched random steering directions per steering row
    "damage_texts": (24, 8),  # held-out neutral texts: every reported damage (bundled texts 0 .. n-1)
    "fit_texts": (24, 8),  # neutral texts the strengths are fitted on (the next n bundled texts, disjoint)
    "curve_sets": (("*",), ("mbti-ei",)),  # sets with effect-damage curves and a matched-damage table ("*": all)
    "curve_items": (12, 4),  # held-out items per curve point (the matched-damage table uses every item)
    "curve_keep_sparsities": ((0.001, 0.01, 0.1, 0.3, 0.7), (0.001, 0.7)),  # contrastive-Wanda keep masks
    "curve_removal_fractions": ((0.0003,), ()),  # contrastive-removal (one weight per row and up)
    "curve_wanda_sparsities": ((0.1,), ()),  # pole Wanda masks
    "curve_sparse_sparsities": ((0.1,), ()),  # the paper's contrastive-sparse masks
    "curve_soft_strengths": ((0.03, 1.0), ()),  # soft contrastive-Wanda masks at the study's sparsity, 1 - gamma
    "curve_steer_coefs": ((0.5, 8.0), (0.5, 8.0)),  # steering at the selected layer
    "matched_damages": ((0.02, 0.3), (0.05,)),  # target damages (KL, nats/token) of the matched-damage table
    "matched_methods": (("contrastive-wanda", "soft-mask", "steering"), ("contrastive-wanda", "steering")),
    "lora_max_epochs": (6, 1),  # LoRA trains until its held-out calibration loss stops falling, at most this
}


class StudyError(PersonaCircuitsError):
    """The study cannot run with these arguments (bad data root, foreign output folder...)."""


@dataclass
class StudyConfig:
    """Sizes and settings of a study run (``quick`` or full)."""

    quick: bool = False
    sets: tuple[str, ...] | None = None  # None: every bundled set and, with a data root, every AI task
    calib_size: int = 128
    calib_record: int = 160  # texts recorded per pole on the analysis set (calibration-size sweep)
    test_size_mbti: int | None = None  # None: every held-out item
    test_size_ai: int | None = None
    sparsity: float = 0.5
    statistic: str = "l2"
    tokens: str = "answer"
    modules: str = "all"
    rag_k: int = 2
    steer_layers_frac: tuple[float, ...] = (0.33, 0.67)
    steer_coefs: tuple[float, ...] = (2.0, 8.0)
    steer_items: int = 6
    sft_sets: tuple[str, ...] = ("power", "wealth", "hallucination")
    sft_texts: int = 32
    sft_epochs: int = 2
    analysis_set: str = "mbti-ei"
    analysis_items: int = 32
    sweep_sparsities: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
    sweep_calib_sizes: tuple[int, ...] = (8, 32, 160)
    n_boot: int = 5
    ablation_groups: int = 3
    removal_fractions: tuple[float, ...] = (0.01, 0.1)
    capability_texts: int = 30
    capability_items: int = 80
    capability_methods: tuple[str, ...] = MAIN_METHODS
    batch_size: int = 16
    seed: int = 0
    similarity_splits: int | None = None
    similarity_permutations: int | None = None
    neutral_probe_texts: int | None = None
    neutral_probe_tokens: int | None = None
    null_draws: int | None = None
    damage_texts: int | None = None
    fit_texts: int | None = None
    random_direction_draws: int | None = None
    curve_sets: tuple[str, ...] | None = None
    curve_items: int | None = None
    curve_keep_sparsities: tuple[float, ...] | None = None
    curve_removal_fractions: tuple[float, ...] | None = None
    curve_steer_coefs: tuple[float, ...] | None = None
    curve_wanda_sparsities: tuple[float, ...] | None = None
    curve_sparse_sparsities: tuple[float, ...] | None = None
    curve_soft_strengths: tuple[float, ...] | None = None
    matched_damages: tuple[float, ...] | None = None
    matched_methods: tuple[str, ...] | None = None
    matched_null_draws: int | None = None
    lora_max_epochs: int | None = None

    @classmethod
    def quick_config(cls) -> "StudyConfig":
        return cls(quick=True, sets=("mbti-ei", "power"), calib_size=8, calib_record=8, test_size_mbti=4, test_size_ai=4, steer_layers_frac=(0.5,),
                   steer_coefs=(4.0,), steer_items=2, sft_sets=("mbti-ei",), sft_texts=4, sft_epochs=1,
                   analysis_items=2, sweep_sparsities=(0.1, 0.7), sweep_calib_sizes=(4, 8), n_boot=2,
                   ablation_groups=2, removal_fractions=(0.05,), capability_texts=2, capability_items=4,
                   capability_methods=("contrastive-wanda",))

    def setting(self, name: str):
        """A :data:`LATER_DEFAULTS` setting: its value, or the default of a full / quick run when unset."""
        v = getattr(self, name)
        return LATER_DEFAULTS[name][1 if self.quick else 0] if v is None else v

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StudyConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def check_data_root(root: str | Path | None) -> Path | None:
    """The resolved ``--data-root``, or :class:`StudyError` if it is not laid out like shared/data."""
    if root is None:
        return None
    p = Path(root)
    missing = [f"ai_persona/{t}/{f}" for t in AI_TASKS for f in ("train.csv", "test_ab.csv") if not (p / "ai_persona" / t / f).is_file()]
    if missing:
        raise StudyError(f"--data-root {p} does not have the expected layout (missing {', '.join(missing[:3])}"
                         f"{'...' if len(missing) > 3 else ''}); point it at a folder laid out like shared/data")
    return p.resolve()


def persona_sets(cfg: StudyConfig, data_root: Path | None) -> list[tuple[str, object, str]]:
    """``(name, PersonaSet cut to the study's sizes, family)`` for every set the study runs."""
    from ..data import bundled_personas, load_persona_set

    out = []
    for name in bundled_personas():
        if cfg.sets is not None and name not in cfg.sets:
            continue
        ps = load_persona_set(name)
        out.append((name, ps.subset(max(cfg.calib_size, cfg.calib_record if name == cfg.analysis_set else 0),
                                     cfg.test_size_mbti), "mbti"))
    if data_root is not None:
        for t in AI_TASKS:
            if cfg.sets is not None and t not in cfg.sets:
                continue
            ps = load_persona_set(data_root / "ai_persona" / t)
            out.append((t, ps.subset(max(cfg.calib_size, cfg.calib_record if t == cfg.analysis_set else 0),
                                     cfg.test_size_ai), "ai"))
    return out
