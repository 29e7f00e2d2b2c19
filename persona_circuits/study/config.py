"""The study's settings: :class:`StudyConfig`, in sections, with the ``full`` and ``quick`` presets.

Every stage declares the settings it reads (``@stage(..., settings=(SETTINGS.nulls.matched_draws, ...))``:
:data:`SETTINGS` is typed as a :class:`StudyConfig`, so a reader or a tool follows each name to its field, and
at run time it gives the dotted path, ``"nulls.matched_draws"``, checked against the config's fields); the
stage's cache key is made of exactly those values and its inputs (:mod:`.stage`), so changing a setting reruns
the stages that read it and nothing else. ``StudyConfig.to_dict()`` is the study's identity in
``study.json``; :meth:`StudyConfig.get` reads a setting by its path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import cast, get_type_hints

from ..errors import PersonaCircuitsError
from ..results.constants import AI_TASKS, MAIN_METHODS  # one place for the names the report reads too


class StudyError(PersonaCircuitsError):
    """The study cannot run with these arguments (bad data root, foreign output folder...)."""


@dataclass
class SetSettings:
    """Which persona sets, and how many of their items."""

    sets: tuple[str, ...] | None = None  # names, paths or NAME=PATH; None: bundled sets (+ AI tasks with a data root)
    calib_size: int = 128  # calibration items per pole (masks, steering, nulls)
    calib_record: int = 160  # recorded on the analysis set (calibration-size sweep)
    test_size_mbti: int | None = None  # None: every held-out item
    test_size_ai: int | None = None
    analysis_set: str = "mbti-ei"


@dataclass
class MaskSettings:
    """The masks of the per-set comparison (the paper's Wanda operating point)."""

    sparsity: float = 0.5
    statistic: str = "l2"  # Wanda's activation statistic (the contrastive z uses the per-text RMS)
    tokens: str = "answer"  # statistics positions: answer / predict / all
    modules: str = "all"


@dataclass
class BaselineSettings:
    rag_k: int = 2
    steer_layers_frac: tuple[float, ...] = (0.33, 0.67)
    steer_coefs: tuple[float, ...] = (2.0, 8.0)
    steer_items: int = 6
    sft_sets: tuple[str, ...] = AI_TASKS
    sft_texts: int = 32
    lora_max_epochs: int = 6


@dataclass
class DamageSettings:
    """Neutral texts: reported damage on ``damage_texts`` (bundled texts 0..n−1), strengths fitted on the
    next ``fit_texts`` (disjoint)."""

    damage_texts: int = 24
    fit_texts: int = 24


@dataclass
class NullSettings:
    curve_draws: int = 2  # label-swapped pairs per curve point, and the strength-matched null
    matched_draws: int = 10  # damage-matched label-swapped draws per matched row, on every held-out item
    random_direction_draws: int = 4  # damage-matched random directions per steering row
    swap: str = "balanced"  # label swaps: exactly n/2 items per draw ("balanced") or a fair coin per item ("coins")


@dataclass
class HeadlineSettings:
    curve_sets: tuple[str, ...] = ("*",)  # sets with curves and a matched-damage table ("*": all)
    curve_items: int = 12
    keep_sparsities: tuple[float, ...] = (0.001, 0.01, 0.1, 0.3, 0.7)
    removal_fractions: tuple[float, ...] = (0.0003,)
    wanda_sparsities: tuple[float, ...] = (0.1,)
    sparse_sparsities: tuple[float, ...] = (0.1,)
    soft_strengths: tuple[float, ...] = (0.03, 1.0)
    steer_coefs: tuple[float, ...] = (0.5, 8.0)
    gate_strengths: tuple[float, ...] = (0.02, 0.08)  # projection gate and its mean-push control (gate-bias): s
    steer_all_coefs: tuple[float, ...] = (0.05, 0.5)  # every-layer steering: one coefficient for every block
    matched_damages: tuple[float, ...] = (0.02, 0.3)
    matched_methods: tuple[str, ...] = ("contrastive-wanda", "soft-mask", "steering", "projection-gate", "steering-all",
                                       "gate-bias")


@dataclass
class PaperTableSettings:
    """The paper's table under the released scoring, at the paper's operating points (AI tasks)."""

    enabled: bool = True
    wanda_sparsity: float = 0.5
    contrastive_sparsity: float = 0.3
    null_draws: int = 10  # label-swapped draws per method and operating point (own seeds per method)


@dataclass
class AnalysisSettings:
    analysis_items: int = 32
    sweep_sparsities: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
    sweep_calib_sizes: tuple[int, ...] = (8, 32, 160)
    n_boot: int = 5  # bootstrap resamples of the stability analysis (fewer than 2: skipped)
    ablation_groups: int = 3
    removal_fractions: tuple[float, ...] = (0.01, 0.1)
    capability_texts: int = 30
    capability_items: int = 80
    capability_methods: tuple[str, ...] = MAIN_METHODS
    similarity_splits: int = 20
    similarity_permutations: int = 200
    neutral_probe_texts: int = 32
    neutral_probe_tokens: int = 64


@dataclass
class TypesSettings:
    """The 16 MBTI types composed from the four axis masks (and steering vectors)."""

    enabled: bool = True
    methods: tuple[str, ...] = ("soft-mask", "steering")
    target_kl: float = 0.3  # each type pair's damage; each axis alone is fitted at a quarter of it (interference)
    null_draws: int = 10
    items_per_axis: int | None = 40  # the first held-out items of each axis (None: every one)


@dataclass
class AtlasSettings:
    enabled: bool = True
    fraction: float = 0.01  # top contrastive weights per row compared between sets
    null_draws: int = 4  # label-swapped draws per set (pooled in both directions: 2K per pair)
    #: sets that join only the atlas (calibrated, no other stage); names are found under --data-root
    extra_sets: tuple[str, ...] = ("desire-for-acquiring-power", "desire-for-acquiring-wealth", "narcissism")


SECTIONS = {"sets": SetSettings, "masks": MaskSettings, "baselines": BaselineSettings, "damage": DamageSettings,
            "nulls": NullSettings, "headline": HeadlineSettings, "paper": PaperTableSettings,
            "analysis": AnalysisSettings, "types": TypesSettings, "atlas": AtlasSettings}


@dataclass
class StudyConfig:
    """Settings of a study run, in sections (see :data:`SECTIONS`); :meth:`full` and :meth:`quick` presets."""

    preset: str = "full"
    seed: int = 0
    batch_size: int = 16
    sets: SetSettings = field(default_factory=SetSettings)
    masks: MaskSettings = field(default_factory=MaskSettings)
    baselines: BaselineSettings = field(default_factory=BaselineSettings)
    damage: DamageSettings = field(default_factory=DamageSettings)
    nulls: NullSettings = field(default_factory=NullSettings)
    headline: HeadlineSettings = field(default_factory=HeadlineSettings)
    paper: PaperTableSettings = field(default_factory=PaperTableSettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    types: TypesSettings = field(default_factory=TypesSettings)
    atlas: AtlasSettings = field(default_factory=AtlasSettings)

    @property
    def quick(self) -> bool:
        return self.preset == "quick"

    @classmethod
    def full(cls) -> StudyConfig:
        return cls()

    @classmethod
    def quick_preset(cls) -> StudyConfig:
        """The main job at a reduced size (``make reproduce``): every stage on mbti-ei, 4 held-out items, 3 + 3 neutral
        texts, 2 damage-matched null draws per matched row and 1 per curve point. About 4.5 minutes in float32 on an
        AVX2-only CPU with 2 cores (README); the AI tasks join with ``--sets mbti-ei,power``."""
        return cls(
            preset="quick",
            sets=SetSettings(sets=("mbti-ei",), calib_size=8, calib_record=8, test_size_mbti=4, test_size_ai=4),
            baselines=BaselineSettings(steer_layers_frac=(0.5,), steer_coefs=(4.0,), steer_items=2, sft_sets=("mbti-ei",),
                                       sft_texts=4, lora_max_epochs=1),
            damage=DamageSettings(damage_texts=3, fit_texts=3),
            nulls=NullSettings(curve_draws=1, matched_draws=2, random_direction_draws=0, swap="balanced"),
            headline=HeadlineSettings(curve_sets=("mbti-ei",), curve_items=4, keep_sparsities=(),
                                      removal_fractions=(), wanda_sparsities=(), sparse_sparsities=(),
                                      soft_strengths=(0.03, 1.0), steer_coefs=(0.5, 8.0), gate_strengths=(),
                                      steer_all_coefs=(), matched_damages=(0.05,),
                                      matched_methods=("soft-mask", "steering")),
            paper=PaperTableSettings(null_draws=1),
            analysis=AnalysisSettings(analysis_items=2, sweep_sparsities=(0.7,), sweep_calib_sizes=(8,), n_boot=0,
                                      ablation_groups=2, removal_fractions=(0.05,), capability_texts=2, capability_items=4,
                                      capability_methods=("contrastive-wanda",), similarity_splits=10,
                                      similarity_permutations=50, neutral_probe_texts=4, neutral_probe_tokens=32),
            types=TypesSettings(enabled=False),
            atlas=AtlasSettings(null_draws=2, extra_sets=()),
        )

    def get(self, path):
        """The setting at a path (``SETTINGS.nulls.matched_draws`` or the dotted ``"nulls.matched_draws"``); a section
        name gives the section."""
        obj = self
        for part in str(path).split("."):
            if not hasattr(obj, part):
                raise KeyError(f"no study setting {path!r}")
            obj = getattr(obj, part)
        return obj

    def with_changes(self, **sections) -> StudyConfig:
        """A copy with sections replaced (``sets=replace(cfg.sets, sets=(...))``)."""
        return replace(self, **sections)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StudyConfig:
        """Inverse of :meth:`to_dict` (lists become tuples); unknown keys are an error naming them."""
        top = {f.name for f in fields(cls)}
        bad = sorted(set(d) - top)
        if bad:
            raise StudyError(f"unknown study settings: {', '.join(bad)}")
        kw = {}
        for k, v in d.items():
            if k in SECTIONS:
                sec = SECTIONS[k]
                names = {f.name for f in fields(sec)}
                unknown = sorted(set(v) - names)
                if unknown:
                    raise StudyError(f"unknown study settings in {k}: {', '.join(unknown)}")
                kw[k] = sec(**{n: tuple(x) if isinstance(x, list) else x for n, x in v.items()})
            else:
                kw[k] = v
        return cls(**kw)


class SettingPath:
    """The path of a study setting, built by attribute access from :data:`SETTINGS` and checked against the
    config's fields as it is built (a misspelt name is an ``AttributeError`` where the stage is declared);
    ``str()`` gives the dotted path, which is what a stage's cache key holds."""

    def __init__(self, parts: tuple[str, ...] = (), kind: type = StudyConfig) -> None:
        self._parts, self._kind = parts, kind

    def __getattr__(self, name: str) -> SettingPath:
        if name.startswith("_") or not is_dataclass(self._kind):
            raise AttributeError(f"{self} has no setting {name!r}")
        hints = get_type_hints(self._kind)
        if name not in {f.name for f in fields(self._kind)}:
            raise AttributeError(f"no study setting {'.'.join((*self._parts, name))!r}")
        return SettingPath((*self._parts, name), hints[name])

    def __str__(self) -> str:
        return ".".join(self._parts)

    def __repr__(self) -> str:
        return f"SETTINGS.{self}"


#: The study's settings by name, for declarations: ``SETTINGS.nulls.matched_draws`` (typed as the config, so it
#: can be followed to its field; ``str()`` of it is ``"nulls.matched_draws"``).
SETTINGS: StudyConfig = cast(StudyConfig, SettingPath())
