"""Records of choices, contrasts and the headline (effect against damage, the matched-damage table).

Vocabulary (one word per quantity, from the study to the report):

* ``shift`` - the pole contrast: the same items under pole A's condition minus under pole B's, as the
  change of the per-token preference for pole A's answer (nats/token), with ``shift_ci95``;
* ``moved`` - the share of items whose preference moved towards the pole (``moved_ci95``); version-1
  files called it ``accuracy`` in their contrasts;
* ``accuracy`` - the share of items whose pole answer has the higher summed log-likelihood;
  ``accuracy_length_normalized`` the same per token;
* ``damage_kl`` - KL(dense || intervened) on neutral text (nats/token);
* ``null_*`` - the same method built without a persona difference: its draws' contrasts (``null_shifts``),
  damages, mean, sd, the one-sided 95 % bound ``null_threshold`` and the verdict ``persona_specific``.

A matched row's null test has one of two designs, :attr:`MatchedRow.null_design`, which the report and the
figures read instead of the file's version: :data:`DAMAGE_MATCHED` (the rebuilt study: label-swapped calibration
data, ``null_kind``; for steering, the difference of means of the label-swapped data; each draw brought to the
row's target damage by its own strength search, on the row's items, tested with the centre ``null_center``,
``zero`` or ``estimated``, :mod:`persona_circuits.measure.nulls`) or :data:`STRENGTH_MATCHED` (the older study, version-1
files: label-swapped masks and random steering directions at the real pair's own strength, on the curve items).
"""

from __future__ import annotations

from ._record import Record, record

Interval = tuple[float, float]

#: A matched row's null draws each brought to the row's target damage by their own strength search (``null_kind``
#: names the draws).
DAMAGE_MATCHED = "damage-matched"
#: A matched row's null draws at the real pair's own strength (the older study: no ``null_kind``).
STRENGTH_MATCHED = "strength-matched"


@record
class ChoiceRow(Record):
    """Two-way-choice accuracy of one condition for one pole on the held-out items."""

    condition: str
    pole: str
    n: int
    accuracy: float
    accuracy_ci95: Interval
    accuracy_length_normalized: float
    accuracy_length_normalized_ci95: Interval
    mean_margin: float
    mean_margin_ci95: Interval | None = None
    condition_key: str | None = None


@record
class Shift(Record):
    """A shift on the held-out items: ``shift`` (nats/token) and ``moved`` (share of items moved towards the pole),
    with the damage where it was measured; ``trained`` on a LoRA shift: whether its adapters moved the model."""

    n: int
    shift: float
    shift_ci95: Interval
    moved: float | None = None
    moved_ci95: Interval | None = None
    damage_kl: float | None = None
    damage_kl_ci95: Interval | None = None
    trained: bool | None = None


@record
class Contrast(Shift):
    """A pole contrast of a named condition (a :class:`Shift`). Files that called the share moved ``accuracy``
    are renamed by :func:`persona_circuits.results.upgrade.upgrade`."""

    condition: str


@record
class PairedDiff(Record):
    """Paired difference of two contrasts on the same items (``diff``, bootstrap ``ci95``) and its verdict
    (``higher`` / ``lower`` / ``not distinguishable``), raw and, when the study made it, after correction."""

    diff: float
    ci95: Interval
    n: int
    verdict: str
    p_value: float | None = None
    p_adjusted: float | None = None
    verdict_adjusted: str | None = None


@record
class NullDraws(Record):
    """Draws of a null condition at one strength and the test of the real contrast against them."""

    null_draws: int | None = None
    null_shifts: list[float] | None = None
    null_damage_kl: list[float] | None = None
    null_shift_mean: float | None = None
    null_shift_sd: float | None = None
    null_threshold: float | None = None
    persona_specific: bool | None = None

    @property
    def n_null(self) -> int:
        """Number of null draws (``null_draws`` when stated, else the length of ``null_shifts``)."""
        return self.null_draws if self.null_draws is not None else len(self.null_shifts or [])

    @property
    def null_damage_mean(self) -> float | None:
        """Mean damage of the null draws (``None`` without draws)."""
        d = self.null_damage_kl or []
        return sum(d) / len(d) if d else None


@record
class CurvePoint(NullDraws):
    """One strength of a method's dial on the curve items: contrast, damage and its null draws."""

    strength: float
    n: int
    shift: float
    shift_ci95: Interval
    damage_kl: float
    dial: str | None = None
    moved: float | None = None
    damage_kl_ci95: Interval | None = None
    matched_target: float | None = None


@record
class StrengthMatchedNull(NullDraws):
    """The older null test: the first label-swapped draws at the real pair's own strength, on the curve items
    (estimated centre), with the real contrast on them (``shift``) and its p-value."""

    null_items: int | None = None
    shift: float | None = None
    damage_kl: float | None = None
    p_value: float | None = None


@record
class DamageMatchedNull(NullDraws):
    """Null draws each brought to the target damage by its own strength search (version 2), on the same items as
    the real contrast, and the test of the real contrast against them (:func:`persona_circuits.measure.nulls.null_test`)."""

    null_kind: str | None = None
    null_items: int | None = None
    null_strengths: list[float] | None = None
    null_fit_damage_kl: list[float] | None = None
    null_draws_not_reached: int | None = None
    null_center: str | None = None
    null_mean_t: float | None = None
    null_z: float | None = None
    null_p_perm: float | None = None
    p_value: float | None = None
    detectable_shift: float | None = None


@record
class RandomDirectionNull(DamageMatchedNull):
    """Steering rows (version 2): random directions, each at its own damage-matched strength, tested like the
    label-swapped null and reported beside it (not part of the verdict, nor of the Holm family)."""


@record
class EstimatedCenter(Record):
    """A matched row's test with the estimated centre, reported beside the zero-centred one the study used."""

    null_threshold: float | None = None
    p_value: float | None = None
    persona_specific: bool | None = None


@record
class NullSymmetry(Record):
    """The pooled check that the label-swapped nulls are centred on 0 (``null_symmetry`` in ``results.json``):
    Stouffer's z over the rows' ``null_mean_t``, its p-value, the share of rows rejecting at 5 %, and the centre the
    study then used for every row (``zero`` when the check does not reject, else ``estimated``). From issue 23
    (``role == "description"``) the zero centre is always used (the antithetic argument) and this is a description."""

    n_rows: int
    centered: bool
    stouffer_z: float | None = None
    p_value: float | None = None
    share_rejected: float | None = None
    center_used: str | None = None
    role: str | None = None  # "description" (issue 23); absent: the pre-check that chose the centre


@record
class MatchedRow(DamageMatchedNull):
    """One (method, target damage) row of the matched-damage table.

    A reached row holds the real pair at the strength matched to ``target_kl``: its contrast on every
    held-out item (``shift``, ``moved``), its damage, and the null test. Version-1 files ran the null on the
    curve items only (``curve_shift`` is the real contrast on them); from version 2 ``null_items`` says on how
    many items it ran (the same ``n`` items as the contrast). :attr:`tested_shift` is the contrast the null
    test judged, so a table and a figure that use it agree with ``persona_specific``.
    """

    method: str
    target_kl: float
    reached: bool
    search: list[list[float]] | None = None
    curve_damage_range: Interval | None = None
    strength: float | None = None
    n: int | None = None
    damage_kl: float | None = None
    damage_kl_ci95: Interval | None = None
    shift: float | None = None
    shift_ci95: Interval | None = None
    moved: float | None = None
    moved_ci95: Interval | None = None
    curve_shift: float | None = None
    curve_shift_ci95: Interval | None = None
    vs_prompt: PairedDiff | None = None
    vs_steering: PairedDiff | None = None
    # version 2: damage on held-out neutral texts, the null on the same items at its own matched damage
    damage_texts: list[int] | None = None
    fit_texts: list[int] | None = None
    fit_damage_kl: float | None = None
    within_tolerance: bool | None = None
    p_adjusted: float | None = None
    persona_specific_adjusted: bool | None = None
    detectable_shift_adjusted: float | None = None  # the bound at Holm's strictest level, 1 − α / m
    estimated_center: EstimatedCenter | None = None
    strength_matched_null: StrengthMatchedNull | None = None
    random_direction_null: RandomDirectionNull | None = None
    # issue 23: the draws' design and seed, and the row's z = shift / zero-centred null RMS (t on K df)
    null_swap: str | None = None  # "balanced" or "coins" (absent: coins, the older design)
    null_seed: int | None = None
    null_rms: float | None = None
    z: float | None = None
    z_ci95: Interval | None = None
    z_p_value: float | None = None

    @property
    def null_on_same_items(self) -> bool:
        """Whether the null test ran on the same items as the all-item contrast (version 2)."""
        return self.null_items is not None and self.null_items == self.n

    @property
    def tested_shift(self) -> float | None:
        """The real contrast the null test judged: on every item (version 2) or on the curve items (version 1)."""
        return self.shift if self.null_on_same_items or self.curve_shift is None else self.curve_shift

    @property
    def tested_shift_ci95(self) -> Interval | None:
        """The bootstrap interval of :attr:`tested_shift`."""
        return self.shift_ci95 if self.null_on_same_items or self.curve_shift is None else self.curve_shift_ci95

    @property
    def specific(self) -> bool | None:
        """The verdict a reader should take: after multiple-comparison correction when the study made one."""
        return self.persona_specific_adjusted if self.persona_specific_adjusted is not None else self.persona_specific

    @property
    def damage_matched(self) -> bool:
        """Whether the row's null draws were each brought to the target damage (``null_kind`` set)."""
        return self.null_kind is not None

    @property
    def null_design(self) -> str | None:
        """How the row's null draws were made: :data:`DAMAGE_MATCHED` or :data:`STRENGTH_MATCHED` (the module's
        docstring); ``None`` for a row whose target was not reached (it has no null test)."""
        if not self.reached:
            return None
        return DAMAGE_MATCHED if self.damage_matched else STRENGTH_MATCHED


@record
class HeldOutDamage(Record):
    """The damage of an intervention (or a pair: the mean over its interventions) on the held-out neutral texts:
    mean KL(dense ‖ intervened) per predicted token, its bootstrap interval over texts, and each intervention's
    own mean (``per_pole``). Returned by :func:`persona_circuits.measure.matching.held_out_damage`."""

    damage_kl: float
    damage_kl_ci95: Interval
    per_pole: list[float] | None = None


@record
class Damage(Record):
    """The cost of one intervention, as :func:`persona_circuits.measure.damage.measure_damage` returns it: mean
    KL(dense ‖ intervened) per predicted token on neutral text with its bootstrap interval over texts, the
    perplexity of those texts with and without the intervention, and (when measured) the accuracy on the bundled
    general-knowledge choice items with its interval and the dense model's."""

    label: str
    kl: float
    kl_ci95: Interval
    n_texts: int
    n_tokens: int
    perplexity: float
    perplexity_dense: float
    general_accuracy: float | None = None
    general_accuracy_ci95: Interval | None = None
    general_accuracy_dense: float | None = None
    general_n: int | None = None


@record
class ReferencePoint(Shift):
    """A condition without a strength dial (persona prompt, RAG, LoRA), measured on every held-out item (a
    :class:`Shift`)."""


@record
class DamageTexts(Record):
    """The neutral texts of the damage (``headline.damage``, version 2): strengths are fitted on ``fit_texts``, the
    reported damage is measured on the disjoint ``damage_texts`` (the persona prompt and RAG on ``chat_texts``, in
    their chat format); a held-out damage within ``±tolerance`` (relative) of its target is "within tolerance"."""

    fit_texts: list[int]
    damage_texts: list[int]
    chat_texts: list[int] | None = None
    tolerance: float | None = None


@record
class Headline(Record):
    """Effect against damage for one persona set (``sets.<set>.headline``; version 1: ``effect_damage``)."""

    targets: list[float]
    curves: dict[str, list[CurvePoint]]
    matched: list[MatchedRow]
    points: dict[str, ReferencePoint]
    n_items_curve: int
    n_items_table: int
    null_draws: int
    n_damage_texts: int
    matched_null_draws: int | None = None
    null_swap: str | None = None  # nulls.swap of the run (absent: coins)
    steering_layer: int | None = None
    soft_mask_sparsity: float | None = None
    damage: DamageTexts | None = None

    @property
    def null_draws_matched(self) -> int:
        """Null draws at the matched strengths (``matched_null_draws``, else the curves' ``null_draws``)."""
        return self.matched_null_draws if self.matched_null_draws is not None else self.null_draws

    def null_items(self, row: MatchedRow) -> int:
        """Items of ``row``'s null test: ``null_items`` (version 2) or the curve items (version 1)."""
        return row.null_items if row.null_items is not None else self.n_items_curve

    def reached(self) -> list[MatchedRow]:
        """The matched rows whose target damage was reached."""
        return [r for r in self.matched if r.reached]

    @property
    def null_design(self) -> str:
        """The design of the reached rows' null tests (:attr:`MatchedRow.null_design`): :data:`DAMAGE_MATCHED` when
        every one is, else :data:`STRENGTH_MATCHED`, the older design (also when no row was reached: a table of
        unreached rows shows only the fields they have)."""
        designs = {r.null_design for r in self.reached()}
        return DAMAGE_MATCHED if designs == {DAMAGE_MATCHED} else STRENGTH_MATCHED


@record
class PaperTableRow(Record):
    """One row of an AI set's paper table: accuracy under the released scoring (mean loss over every token,
    persona system prompt on) at an operating point, with the label-swapped null draws' accuracies."""

    condition: str
    scoring: str
    pole: str
    accuracy: float
    accuracy_ci95: Interval
    n: int
    operating_point: dict[str, float] | None = None
    null_accuracies: list[float] | None = None
    null_seed: int | None = None
    null_swap: str | None = None  # "balanced" or "coins" (absent: coins, the older design)

    @property
    def sparsity(self) -> float | None:
        """The mask's sparsity at its operating point (``None`` for a condition without a mask)."""
        return (self.operating_point or {}).get("sparsity")
