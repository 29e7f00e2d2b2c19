"""Records of a strength search and of what the study measures at the strength it found: the library's
:func:`persona_circuits.measure.matching.fit_strengths` returns :class:`StrengthFit`; the study's cached stages
(``matched-real``, ``matched-null``, ``type-pair``, ``type-axis-alone``) return :class:`MatchedDraw` and
:class:`TypePairDraw`. They are not written to ``results.json`` (a matched row and a type row are), but one schema
serves the library, the stage cache and the study that reads them back."""

from __future__ import annotations

from dataclasses import field

from ._record import Record, record

Interval = tuple[float, float]


@record
class StrengthFit(Record):
    """The strength fitted for one target damage on the fit texts.

    Args:
        target_kl: the target damage (KL, nats/token).
        reached: whether the closest measured damage lies within the reach tolerance of the target.
        strength: the strength at that damage (``None`` when not reached).
        fit_damage_kl: the closest measured damage on the fit texts (``None`` without a measurement).
        history: every ``(strength, fit damage)`` measured, the dial's own earlier points first.
    """

    target_kl: float
    reached: bool
    strength: float | None = None
    fit_damage_kl: float | None = None
    history: list[tuple[float, float]] = field(default_factory=list)


@record
class MatchedDraw(StrengthFit):
    """A pair (real or null draw) brought to its target: the fit and, where reached, the held-out damage with its
    interval and the per-item contrasts on the set's held-out items (nats/token)."""

    damage_kl: float | None = None
    damage_kl_ci95: Interval | None = None
    shifts: list[float] | None = None


@record
class TypePairDraw(StrengthFit):
    """A type pair (real or null draw) brought to its target: the fit and, where reached, the held-out damage
    and the per-item contrasts on each MBTI axis's items (``{axis: shifts}``)."""

    damage_kl: float | None = None
    damage_kl_ci95: Interval | None = None
    shifts: dict[str, list[float]] | None = None
