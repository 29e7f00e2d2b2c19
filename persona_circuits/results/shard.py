"""The record of a study shard's file (``SHARD_DIR/shard.json``, :mod:`persona_circuits.study.shards`): what one
set's shard, or the cross-set shard, hands to the merge. A set shard's ``results`` are that set's
:class:`~.study.SetResults`, the cross shard's its :class:`CrossResults`; both are kept as stored and read by
:meth:`Shard.set_results` / :meth:`Shard.cross_results`, so a malformed set never passes for a cross shard."""

from __future__ import annotations

from typing import Any

from ._record import Record, record
from .analyses import AnalysisSet
from .gate import GateCrossPair
from .study import Meta, Paper, SetResults
from .types_atlas import Atlas, TypesResult


@record
class ShardInfo(Record):
    """Which shard: a set's (``name``, ``family`` and ``set``: the set's identity with its content hash) or the
    cross shard (``sets``: the identity of every set it saw)."""

    name: str
    family: str | None = None
    set: dict[str, Any] | None = None
    sets: list[dict[str, Any]] | None = None


@record
class AxisShifts(Record):
    """An MBTI axis's per-item contrasts at one matched-damage row (not in the results; the 16 types read them)."""

    method: str
    target_kl: float
    shifts: list[float]


@record
class ShardCross(Record):
    """What a set shard keeps for the cross shard: an MBTI axis's matched-row contrasts (``alone``)."""

    alone: list[AxisShifts] | None = None


@record
class CrossResults(Record):
    """The cross shard's results: the 16 types, the atlas, the projection gate's cross-persona overlap."""

    types: list[TypesResult] | None = None
    atlas: Atlas | None = None
    gate_overlap: list[GateCrossPair] | None = None


@record
class Shard(Record):
    """One shard's file: the study's identity (compared as stored, JSON for JSON), which shard it is, its results,
    the analysis-set results (the analysis set's shard), what the cross shard needs, timings, the paper's
    numbers and how it was computed (``meta``)."""

    format: int
    identity: dict[str, Any]
    shard: ShardInfo
    results: dict[str, Any]
    timings: dict[str, float]
    analysis: AnalysisSet | None = None
    cross: ShardCross | None = None
    paper: Paper | None = None
    meta: Meta | None = None

    def set_results(self) -> SetResults:
        """A set shard's results."""
        return SetResults.from_dict(self.results, f"shard {self.shard.name}: results")

    def cross_results(self) -> CrossResults:
        """The cross shard's results."""
        return CrossResults.from_dict(self.results, f"shard {self.shard.name}: results")
