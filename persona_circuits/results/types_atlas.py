"""Records of the two optional stages after every set: the 16 MBTI types by composition (``types``: one result
per method) and the overlap atlas between persona sets (``atlas``). Version-1 files have neither."""

from __future__ import annotations

from ._record import Record, record
from .records import Interval

#: The two letters of each MBTI axis: a type's opposite flips every letter.
_FLIP = {a: b for a, b in ("EI", "SN", "TF", "JP")} | {b: a for a, b in ("EI", "SN", "TF", "JP")}


def opposite_type(type_str: str) -> str:
    """The type with every letter flipped (``INTJ`` -> ``ESFP``)."""
    return "".join(_FLIP.get(x, x) for x in type_str)


@record
class TypeAxisContrast(Record):
    """One axis's pole contrast for one type (the axes' conditions composed), towards the type's own letter on that
    axis, with its composed label-swapped null draws and the test against them (Holm over the 8 type pairs x axes:
    a type and its opposite are one measurement, so their verdicts mirror each other)."""

    axis: str
    pole: str
    shift: float
    shift_ci95: Interval
    moved: float | None = None
    alone_shift: float | None = None
    null_shifts: list[float] | None = None
    null_threshold: float | None = None
    null_center: str | None = None
    detectable_shift: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    persona_specific: bool | None = None
    persona_specific_adjusted: bool | None = None
    detectable_shift_adjusted: float | None = None  # the bound at Holm's strictest level, 1 − α / m

    @property
    def specific(self) -> bool | None:
        """The verdict after Holm's correction when the study made one, else the uncorrected one."""
        return self.persona_specific_adjusted if self.persona_specific_adjusted is not None else self.persona_specific


@record
class TypeRow(Record):
    """One MBTI type: its pair's damage at the target and the contrast on every axis (none when not reached)."""

    type: str
    contrasts: list[TypeAxisContrast]
    damage_kl: float | None = None
    reached: bool | None = None


@record
class AxisInterference(Record):
    """How much composing the other axes changes an axis's contrast: composed (mean over the type pairs) minus the
    axis's condition alone, on the same items, with a bootstrap interval. Older files: the axis alone at the same
    damage (its matched row); from issue 23 at a quarter of it (``alone_target_kl``, fitted in the types stage)."""

    axis: str
    alone_shift: float
    composed_shift: float
    change: float
    change_ci95: Interval | None = None
    alone_target_kl: float | None = None
    alone_damage_kl: float | None = None


@record
class TypeAxisTest(Record):
    """One test of the 16-type family: an axis's letter-signed contrast averaged over the type pairs against the
    null RMS of the composed draws on that axis (``z``, one-sided ``p`` on ``null_draws`` degrees of freedom)."""

    axis: str
    shift: float
    type_pairs: int
    null_draws: int
    z: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    persona_specific_adjusted: bool | None = None


@record
class TypesResult(Record):
    """The 16 types of one method (``soft-mask`` or ``steering``; ``types`` in ``results.json`` is a list of these)."""

    method: str
    axes: list[str]
    rows: list[TypeRow]
    n_items: int | None = None
    target_kl: float | None = None
    layer: int | None = None
    null_draws: int | None = None
    interference: list[AxisInterference] | None = None
    null_seed: int | None = None
    null_swap: str | None = None
    axis_tests: list[TypeAxisTest] | None = None  # the family's tests (issue 23): one per axis

    def tests(self) -> list[TypeAxisContrast]:
        """The distinct tests: the contrasts of the types whose first letter is ``E`` (their opposites mirror them)."""
        return [c for r in self.rows if r.type.startswith("E") for c in r.contrasts if c.p_value is not None]

    def row(self, type_str: str) -> TypeRow | None:
        """The row of ``type_str`` (``None`` when absent)."""
        return next((r for r in self.rows if r.type == type_str), None)

    def verdict(self, row: TypeRow, c: TypeAxisContrast) -> bool | None:
        """The Holm verdict of ``c``: its own, else its opposite type's on the same axis (the study writes the adjusted
        verdict on one row of each pair: the same measurement), else the uncorrected one."""
        if c.persona_specific_adjusted is not None:
            return c.persona_specific_adjusted
        opp = self.row(opposite_type(row.type))
        m = next((x for x in opp.contrasts if x.axis == c.axis), None) if opp else None
        return m.persona_specific_adjusted if m is not None and m.persona_specific_adjusted is not None \
            else c.persona_specific


@record
class OverlapMatrix(Record):
    """Jaccard overlap between persona sets' top weights for one module type or layer (``by``), with the
    random-density expectation and the label-swapped null's 95th percentile; the test matrices (``p_value``,
    ``p_holm``, ``shared``) where the atlas wrote them (the whole model)."""

    by: str
    sets: list[str]
    jaccard: list[list[float]]
    method: str | None = None
    random_expectation: list[list[float]] | None = None
    null_p95: list[list[float]] | None = None
    null_mean: list[list[float | None]] | None = None
    null_sd: list[list[float | None]] | None = None
    p_value: list[list[float | None]] | None = None
    p_holm: list[list[float | None]] | None = None
    shared: list[list[bool | None]] | None = None


@record
class SteeringCosines(Record):
    """Cosines between persona sets' steering directions at one layer, next to random directions'."""

    sets: list[str]
    cosine: list[list[float]]
    random_mean: float | None = None
    random_p95: float | None = None
    layer: int | None = None


@record
class AtlasPair(Record):
    """One pair of sets: whole-model Jaccard, its random-density expectation, the label-swapped null, the test
    (``p_holm``, ``shared``: Holm over the pairs) and the steering cosine per layer with the layers beyond the
    null after Holm over (pair, layer)."""

    a: str
    b: str
    jaccard: float
    expected_jaccard: float
    null_mean: float | None = None
    null_sd: float | None = None
    null_p95: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    shared: bool | None = None
    cosine: list[float] | None = None
    steering_shared_layers: list[int] | None = None
    # issue 23: one test per pair for the directions (max over layers of |cos| against the same of the null draws)
    steering_max_cos: float | None = None
    steering_p: float | None = None
    steering_p_holm: float | None = None
    steering_shared: bool | None = None


@record
class TestFamily(Record):
    """A family of tests made inside one analysis (the atlas's), with its level and null."""

    family: str
    method: str
    n_tests: int
    alpha: float | None = None
    null: str | None = None


@record
class Atlas(Record):
    """Overlap between persona sets (``atlas`` in ``results.json``; optional). The verdicts are ``pairs[].shared``
    (Holm); ``conclusions`` are the atlas's own computed sentences."""

    overlaps: list[OverlapMatrix]
    method: str | None = None
    steering: SteeringCosines | None = None
    sets: list[str] | None = None
    pairs: list[AtlasPair] | None = None
    multiple_comparisons: list[TestFamily] | None = None
    conclusions: list[str] | None = None
    fraction: float | None = None
    null_draws: int | None = None

    def overlap(self, by: str) -> OverlapMatrix | None:
        """The overlap matrix of module type or layer ``by`` (``all``: the whole model)."""
        return next((m for m in self.overlaps if m.by == by), None)

    def family(self, name: str) -> TestFamily | None:
        """The atlas's test family ``name`` (``atlas overlap``, ``atlas steering cosines``)."""
        return next((f for f in self.multiple_comparisons or [] if f.family == name), None)
