"""Records of the primary family and the placebo calibration (``primary`` and ``calibration`` in
``results.json``, :mod:`persona_circuits.study.primary`). Absent in files written before issue 23."""

from __future__ import annotations

from ._record import Record, record

Interval = tuple[float, float]


@record
class PrimaryTest(Record):
    """One primary test: a method at a target damage, pooled over ``sets`` (``statistic``: mean over the sets of
    contrast / null RMS; ``p_value`` against the mean of independent t's; Holm over the family)."""

    method: str
    target_kl: float | None
    statistic: float
    p_value: float
    p_adjusted: float
    persona_specific: bool
    sets: list[str]
    null_draws: list[int] | None = None


@record
class PlaceboRate(Record):
    """Placebos (label-swapped draws tested like the real pair, leave one out) and how many were called
    persona-specific, with the Clopper-Pearson interval (``rate_ci95``: placebos taken as independent;
    ``rate_ci95_rows``: one trial per row, the wide end of what their within-row correlation allows)."""

    placebos: int
    false_positives: int
    rate: float | None = None
    rate_ci95: Interval | None = None
    rows: int | None = None
    rate_ci95_rows: Interval | None = None


@record
class TargetCalibration(PlaceboRate):
    """The placebo rate of one method at one target (``primary``: the primary statistic's own placebos)."""

    target_kl: float | None = None
    sets: list[str] | None = None
    primary: PlaceboRate | None = None


@record
class MethodCalibration(PlaceboRate):
    """The placebo rate of one method, pooled over its targets (``target_kl``) and broken down (``by_target``)."""

    target_kl: list[float | None] | None = None
    sets: list[str] | None = None
    by_target: list[TargetCalibration] | None = None
    primary: PlaceboRate | None = None
