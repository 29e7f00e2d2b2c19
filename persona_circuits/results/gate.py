"""Records of the projection gate's analyses (``sets.<set>.gate`` and the top-level ``gate_overlap``), written by
:mod:`persona_circuits.study.gate_analysis`; both optional (absent: the study did not measure the gate)."""

from __future__ import annotations

from ._record import Record, record


@record
class GateLayoutRow(Record):
    """One writer matrix: where it is and how many of its weights each pole's set gates."""

    layer: str
    block: int
    kind: str
    n_weights: int
    selected: dict[str, int]


@record
class GatePole(Record):
    """One pole's selected set: size, fraction of the writer weights, efficiency ratio, size per writer kind."""

    selected: int
    fraction: float
    ratio: float
    by_kind: dict[str, int]


@record
class GateOverlap(Record):
    """Jaccard of the real poles' sets (0 by construction), of each real set with each null draw's, between draws."""

    poles: float
    real_vs_null: dict[str, list[float]]
    null_vs_null: list[float]


@record
class GateAnalysis(Record):
    """Where the gate's weights sit and how its sets overlap the null's (``sets.<set>.gate``)."""

    null_draws: int
    layout: list[GateLayoutRow]
    poles: dict[str, GatePole]
    overlap: GateOverlap


@record
class GateCrossPair(Record):
    """Two persona sets' real sets (same poles, crossed poles) against their null draws' overlap, draw by draw."""

    sets: list[str]
    same: float
    crossed: float
    null: list[float]
