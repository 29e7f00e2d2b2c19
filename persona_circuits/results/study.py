"""The top of the results contract: :class:`StudyResults` (what ``results.json`` holds) and
:func:`load_results` / :func:`write_results`; the optional 16-type and atlas results are in :mod:`.types_atlas`."""

from __future__ import annotations

import json
from pathlib import Path

from ._record import Record, ResultsError, record
from .analyses import (AnalysisSet, Decoding, LoraRun, MaskOverlap, Probes, Similarity, SparsityProfile,
                       SteeringChoice)
from .constants import study_order
from .paper import Paper
from .primary import MethodCalibration, PrimaryTest
from .gate import GateAnalysis, GateCrossPair
from .records import DAMAGE_MATCHED, STRENGTH_MATCHED, ChoiceRow, Contrast, Headline, NullSymmetry, PaperTableRow
from .types_atlas import Atlas, TypesResult
from .upgrade import SCHEMA_VERSION, upgrade


@record
class RunSettings(Record):
    """The study's settings that the report quotes (every other setting is kept in ``extra``)."""

    tokens: str
    statistic: str
    modules: str
    sparsity: float
    calib_size: int
    rag_k: int
    seed: int
    text_stat: str | None = None
    analysis_set: str | None = None


@record
class ShardMeta(Record):
    """Where and how one shard of a merged study was computed (``meta.shards``)."""

    shard: str
    command: str | None = None
    machine: str | None = None
    cpu: str | None = None
    threads: int | None = None
    seconds: float | None = None
    finished: str | None = None
    git_commit: str | None = None
    bf16_products: str | None = None  # a bfloat16 shard: "native" kernels or "float32" (model.upcast)
    runs: int | None = None  # a shard computed with a checkpoint: the runs its run log holds (this one included)
    seconds_all_runs: float | None = None  # ... and their seconds together (``seconds`` is the last run's)
    runs_complete: bool | None = None  # ... whether the log holds every run (false: it began after the first)


@record
class Meta(Record):
    """How the results were made: model, command, machine, settings, time."""

    model: str
    config: RunSettings
    command: str | None = None
    quick: bool | None = None
    dtype: str | None = None
    torch: str | None = None
    cpu_count: int | None = None
    seconds: float | None = None
    finished: str | None = None
    format: int | None = None
    fingerprint: str | None = None
    data_root: str | None = None
    package_version: str | None = None
    python: str | None = None
    machine: str | None = None
    cpu: str | None = None  # the CPU model: bfloat16 results reproduce bit for bit on the same model
    #: bfloat16 on a CPU: its matrix products by torch's "native" kernels or in "float32" (model.upcast); else "n/a"
    bf16_products: str | None = None
    threads: int | None = None
    verdicts_command: str | None = None  # the command that last recomputed the verdicts from the stored draws
    missing_shards: list[str] | None = None  # a partial merge (merge --partial): the study's shards not in it
    shards: list[ShardMeta] | None = None  # a merged study: each shard's machine and command
    git_commit: str | None = None  # a shard: the commit of the checkout that computed it
    study_config: dict | None = None  # every setting of the study (``config`` holds those the report quotes)
    #: a shard computed with a checkpoint (``--checkpoint``), carried over runs: how many runs its log holds, their
    #: seconds together (``seconds`` is the last run's), and whether the log holds every run (false when the
    #: checkpoint predates the log, so the first runs are missing and the sum is a lower bound)
    runs: int | None = None
    seconds_all_runs: float | None = None
    runs_complete: bool | None = None


@record
class MultipleComparison(Record):
    """A family of tests and how many passed before and after correction (e.g. Holm)."""

    family: str
    method: str
    n_tests: int
    n_raw: int
    n_adjusted: int


@record
class SetResults(Record):
    """Everything the study measured on one persona set."""

    family: str
    poles: list[str]
    n_calibration: int
    n_test: int
    conditions: list[ChoiceRow]
    contrasts: list[Contrast]
    source: str | None = None
    answer_tokens: dict[str, float] | None = None
    sparsity: dict[str, dict[str, SparsityProfile]] | None = None
    overlap: dict[str, MaskOverlap] | None = None
    probes: Probes | None = None
    similarity: Similarity | None = None
    neutral_decoding: dict[str, Decoding] | None = None
    steering: SteeringChoice | None = None
    sft: dict[str, LoraRun] | None = None
    headline: Headline | None = None
    paper_table: list[PaperTableRow] | None = None
    tokens: str | None = None
    gate: GateAnalysis | None = None

    def row(self, condition: str, pole: str) -> ChoiceRow | None:
        """The choice row of ``condition`` for ``pole`` (``None`` when the study did not run it)."""
        return next((r for r in self.conditions if r.condition == condition and r.pole == pole), None)

    def contrast(self, condition: str) -> Contrast | None:
        """The pole contrast of ``condition`` (``None`` when absent)."""
        return next((c for c in self.contrasts if c.condition == condition), None)

    def condition_names(self) -> list[str]:
        """Conditions in the order the study ran them."""
        return list(dict.fromkeys(r.condition for r in self.conditions))


@record
class StudyResults(Record):
    """What ``results.json`` holds: the study's settings and every set's results (in the study's order)."""

    meta: Meta
    sets: dict[str, SetResults]
    schema: int = SCHEMA_VERSION
    analysis: AnalysisSet | None = None
    paper: Paper | None = None
    timings: dict[str, float] | None = None
    multiple_comparisons: list[MultipleComparison] | None = None
    null_symmetry: NullSymmetry | None = None
    types: list[TypesResult] | None = None
    atlas: Atlas | None = None
    primary: list[PrimaryTest] | None = None  # issue 23: the primary family (absent in older files)
    calibration: dict[str, MethodCalibration] | None = None  # issue 23: placebo rates, keyed by method
    gate_overlap: list[GateCrossPair] | None = None

    def __post_init__(self):
        self.sets = {n: self.sets[n] for n in study_order(self.sets)}

    def ai_sets(self) -> dict[str, SetResults]:
        """The AI-persona tasks among the sets."""
        return {n: s for n, s in self.sets.items() if s.family == "ai"}

    def headlines(self) -> dict[str, Headline]:
        """Every set's headline (effect against damage), where the study ran one."""
        return {n: s.headline for n, s in self.sets.items() if s.headline is not None}

    @property
    def null_design(self) -> str:
        """The design of the matched rows' null tests over every set (:attr:`Headline.null_design`):
        :data:`~.records.DAMAGE_MATCHED` when some set's rows are damage-matched, else
        :data:`~.records.STRENGTH_MATCHED`."""
        designs = {h.null_design for h in self.headlines().values()}
        return DAMAGE_MATCHED if DAMAGE_MATCHED in designs else STRENGTH_MATCHED

    @property
    def analysis_set_name(self) -> str:
        """The analysis set (the first set when the study ran none)."""
        return self.analysis.set if self.analysis else next(iter(self.sets))


def load_results(source: str | Path | dict | StudyResults) -> StudyResults:
    """The typed results of a ``results.json`` path, of its dict, or the results themselves.

    An older file is brought to the current schema by :func:`.upgrade.upgrade` (the one place that knows the
    versions); a file of a newer version loads with a warning, its unknown keys kept in ``extra``.
    :class:`ResultsError` when a required value is missing or of the wrong kind.
    """
    if isinstance(source, StudyResults):
        return source
    if isinstance(source, dict):
        d = source
    else:
        try:
            d = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultsError(f"cannot read {source}: {exc}") from exc
    return StudyResults.from_dict(upgrade(d), "results")


def write_results(results: StudyResults, path: str | Path) -> Path:
    """Write ``results`` as ``results.json`` (schema :data:`SCHEMA_VERSION`, sorted keys, atomically)."""
    from .._io import atomic_write_json

    return atomic_write_json(path, results.to_dict())
