"""The 16 MBTI types by composition (a study stage after the four MBTI axes).

A type's condition is composed from the four axes' pole conditions (:mod:`persona_circuits.masks.compose`): soft
masks by the product of the axes' gates (the contrastive-Wanda masks at the study's sparsity, one ``γ``),
steering by the sum of the axes' signed difference-of-means directions at one common layer. Each of the 8
pairs (type, opposite type) is a strength dial brought to ``target_kl`` on the fit texts (as the table's
rows, :mod:`persona_circuits.measure.matching`) and measured at it on the first ``items_per_axis`` held-out items of
each axis: the pole contrast towards the type's letter on every axis (the opposite type's row is the
same measurement seen from its own letters, so 16 rows hold 8 measurements). The null: the same composition from each axis's label-swapped calibration data, damage-matched the same way;
draw ``k`` of axis ``a`` for ``method`` is seeded by ``derive_seed(null_seed, a, k)`` with ``null_seed =
derive_seed(seed, "types", method)`` (recorded), so every axis and method has its own draws. Because the two
pseudo-poles of a label-swapped draw are exchangeable, the null of every type pair has the same distribution,
so ``null_draws`` composed draws serve all 16 rows.

**Tests** (:mod:`.verdicts`): one per (method, axis): the letter-signed contrast on the axis averaged over the
8 type pairs, over the null RMS of one composed pair's draws on that axis. Under the null every pair's contrast
has that spread, and a mean of 8 of them has at most that spread, so the test is conservative.

**Interference**: each axis's contrast under the type's composition (the damage of four axes, about a quarter
each) against the same axis's condition *alone at a quarter of the target damage* (fitted here, on the same
items, at the composition's common steering layer): comparing with the axis alone at the full damage would
credit the composition with the difference between a quarter and the whole of the damage budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..results import AxisInterference, Headline, MatchedDraw, TypeAxisContrast, TypePairDraw, TypeRow, TypesResult
from .config import SETTINGS
from .dials import item_contrast
from .stage import stage
from .state import Study

TYPE_SETTINGS = (SETTINGS.types, SETTINGS.damage, SETTINGS.masks)


@dataclass
class AxisState:
    """What the types stage keeps of one MBTI axis's run."""

    name: str
    poles: list[str]
    items: list
    cw_masks: dict
    draws: dict  # method -> [NullDraw] (steering draws keep only their directions)
    resid: tuple  # (pole A, pole B) per-text residual features
    n_calib: int
    identity_: dict
    alone: dict  # {(method, target): per-item shifts on every held-out item} from the matched table

    def identity(self) -> dict:
        return self.identity_


def types_seed(study: Study, method: str) -> int:
    """The seed of ``method``'s 16-type null draws (recorded as ``null_seed``)."""
    from ..measure.nulls import derive_seed

    return derive_seed(study.cfg.seed, "types", method)


def axis_alone(study: Study, run, headline: Headline | None) -> dict:
    """The per-item contrasts of an axis's reached matched-damage rows, ``{(method, target): shifts}`` (read back
    from their cached stage; not in the results, so a set shard stores them for the cross-set shard)."""
    from .matched import matched_real

    alone = {}
    for method, curve in (headline.curves if headline is not None else {}).items():
        if method in study.cfg.headline.matched_methods:
            for target, r in zip(study.cfg.headline.matched_damages, matched_real(study, run=run, method=method, curve=curve)):
                if r.reached:
                    alone[(method, target)] = r.shifts
    return alone


def axis_state(study: Study, run, alone: dict) -> AxisState:
    """Keep what the types stage needs from an axis's :class:`~.setup.SetRun`: its items, masks, residuals, its
    own null draws per method (seeds of :func:`types_seed`), and ``alone`` (:func:`axis_alone`)."""
    from dataclasses import replace

    from ..measure.nulls import derive_seed

    draws = {}
    for method in study.cfg.types.methods:
        seeds = [derive_seed(types_seed(study, method), run.name, k) for k in range(study.cfg.types.null_draws)]
        draws[method] = [replace(d, sigs={}) if method == "steering" else d for d in map(run.null_draw, seeds)]
    return AxisState(run.name, run.poles, list(run.ps.test), run.masks["contrastive-wanda"], draws,
                     tuple(run.stats[p].resid[: run.n_calib] for p in run.poles), run.n_calib, run.identity(), alone)


class _TypeDials:
    """Strength dials of a type pair (real or label-swapped draw ``k``) for one method."""

    def __init__(self, study: Study, axes: list[AxisState], layer: int) -> None:
        self.study, self.axes, self.layer = study, axes, layer

    def dial(self, method: str, type_str: str, draw: int | None):
        from ..masks.compose import compose_steering, compose_type, opposite_type
        from ..measure.dials import Dial, steering_dial
        from ..model.interventions import Intervention

        if method == "steering":
            vecs = {}
            for a in self.axes:
                ra, rb = a.resid
                v = ra.mean(0) - rb.mean(0) if draw is None else a.draws[method][draw].directions
                vecs[a.name] = v[self.layer]
            return steering_dial(compose_steering(vecs, type_str), self.layer, lo=1e-3, hi=1e4)
        masks = {a.name: (a.cw_masks if draw is None else self._null_masks(a, draw)) for a in self.axes}

        def make(s: float):
            g = min(max(1.0 - s, 0.0), 1.0)
            return [Intervention(label=f"{t}@{g:.4g}", mask=compose_type(masks, t, rule="soft", gamma=g))
                    for t in (type_str, opposite_type(type_str))]

        return Dial("soft-mask", make, 1e-3, 1.0, True)

    def _null_masks(self, a: AxisState, draw: int) -> dict:
        from ..masks.registry import build_masks

        m = self.study.cfg.masks
        return build_masks(self.study.model, "contrastive-wanda", a.draws["soft-mask"][draw].sigs, sparsity=m.sparsity,
                           statistic=m.statistic, modules=m.modules)


def _axis_items(study: Study, a: AxisState) -> list:
    n = study.cfg.types.items_per_axis
    return a.items if n is None else a.items[:n]


@stage("type-pair", settings=TYPE_SETTINGS, version=2, result=TypePairDraw)
def type_pair(study: Study, *, axes: list[AxisState], layer: int, method: str, type_str: str, draw: int | None,
              prior: list) -> TypePairDraw:
    """One type pair (real, or label-swapped draw ``draw``) at the target damage: its fit, held-out damage and
    per-item contrasts (preference for each axis's pole-A answer, type minus opposite type) on every axis."""
    from ..measure.curves import pair_item_shifts
    from ..measure.matching import fit_strengths, held_out_damage

    target = study.cfg.types.target_kl
    dial = _TypeDials(study, axes, layer).dial(method, type_str, draw)
    f = fit_strengths(study.model, dial, [target], study.fit_reference(), prior=prior, own=[])[0]
    out = TypePairDraw.from_dict(f.to_dict())
    if f.reached:
        pair = dial.make(f.strength)
        h = held_out_damage(study.model, pair, study.held_out_reference(), seed=study.cfg.seed)
        out.update(damage_kl=h.damage_kl, damage_kl_ci95=h.damage_kl_ci95, shifts={
            a.name: [float(x) for x in pair_item_shifts(study.model, pair, _axis_items(study, a), batch_size=study.cfg.batch_size)]
            for a in axes})
    return out


def _letter_sign(type_str: str, axis_index: int) -> float:
    from ..masks.compose import MBTI_AXES

    return 1.0 if type_str[axis_index] == MBTI_AXES[axis_index][1] else -1.0


def _rows(study: Study, axes: list[AxisState], method: str, real: dict[str, TypePairDraw],
          nulls: list[TypePairDraw]) -> list[TypeRow]:
    """The 16 x 4 table: each type's contrast towards its letter on every axis, with the shared null draws."""
    from ..masks.compose import ALL_TYPES, opposite_type

    cfg = study.cfg
    rows = []
    for t in ALL_TYPES:
        pair = t if t in real else opposite_type(t)
        r = real[pair]
        row = TypeRow(type=t, contrasts=[], damage_kl=r.damage_kl, reached=r.reached)
        for i, a in enumerate(axes):
            if not r.reached:
                continue
            # the pair's shifts are the preference for pole A's answer, pair type minus its opposite
            d = _letter_sign(t, i) * (1.0 if pair == t else -1.0) * np.asarray(r.shifts[a.name])
            c = item_contrast(d, cfg.seed)
            alone = a.alone.get((method, cfg.types.target_kl))
            row.contrasts.append(TypeAxisContrast(
                axis=a.name, pole=a.poles[0] if _letter_sign(t, i) > 0 else a.poles[1],
                shift=c.shift, shift_ci95=c.shift_ci95, moved=c.moved,
                alone_shift=None if alone is None else float(_letter_sign(t, i) * np.mean(alone[: len(d)])),
                null_shifts=[float(np.mean(n.shifts[a.name])) for n in nulls if n.reached]))
        rows.append(row)
    return rows


@stage("type-axis-alone", settings=TYPE_SETTINGS, version=1, result=MatchedDraw)
def type_axis_alone(study: Study, *, axis: AxisState, layer: int, method: str, target: float) -> MatchedDraw:
    """One axis's real condition alone (steering at the composition's ``layer``, or its soft masks) brought to
    ``target`` on the fit texts and measured on the axis's items: the interference's reference."""
    from ..measure.curves import pair_item_shifts
    from ..measure.dials import soft_mask_dial, steering_dial
    from ..measure.matching import fit_strengths, held_out_damage

    ra, rb = axis.resid
    dial = (steering_dial((ra.mean(0) - rb.mean(0))[layer], layer, lo=1e-3, hi=1e4) if method == "steering"
            else soft_mask_dial(axis.cw_masks))
    f = fit_strengths(study.model, dial, [target], study.fit_reference(), prior=[], own=[])[0]
    out = MatchedDraw.from_dict(f.to_dict())
    if f.reached:
        pair = dial.make(f.strength)
        h = held_out_damage(study.model, pair, study.held_out_reference(), seed=study.cfg.seed)
        out.update(damage_kl=h.damage_kl, shifts=[float(x) for x in pair_item_shifts(
            study.model, pair, _axis_items(study, axis), batch_size=study.cfg.batch_size)])
    return out


def _interference(study: Study, axes: list[AxisState], method: str, real: dict[str, TypePairDraw],
                  layer: int) -> list[AxisInterference]:
    """Per axis: the contrast towards each type's letter, averaged over the type pairs, against the axis's
    condition alone at a quarter of the target damage (interval: bootstrap over the axis's items)."""
    from ..measure.evaluation import bootstrap_ci

    out = []
    quarter = study.cfg.types.target_kl / 4
    for i, a in enumerate(axes):
        alone = type_axis_alone(study, axis=a, layer=layer, method=method, target=quarter)
        per = [_letter_sign(t, i) * np.asarray(r.shifts[a.name]) for t, r in real.items() if r.reached]
        if not alone.reached or not per:
            continue
        comp = np.mean(per, axis=0)
        al = np.asarray(alone.shifts[: len(comp)])
        out.append(AxisInterference(axis=a.name, alone_target_kl=quarter, alone_damage_kl=alone.damage_kl,
                                    alone_shift=float(al.mean()), composed_shift=float(comp.mean()),
                                    change=float((comp - al).mean()),
                                    change_ci95=bootstrap_ci(comp - al, seed=study.cfg.seed)))
    return out


def run_types(study: Study, axes: list[AxisState], layer: int) -> list[TypesResult]:
    """The 16-type table of every method in ``types.methods`` (see the module docstring)."""
    from ..masks.compose import ALL_TYPES

    cfg = study.cfg
    out = []
    for method in cfg.types.methods:
        with study.timed(f"types: {method}"):
            pairs = [t for t in ALL_TYPES if t[0] == "E"]
            first = type_pair(study, axes=axes, layer=layer, method=method, type_str=pairs[0], draw=None, prior=[])
            prior = [list(h) for h in first.history]
            real = {pairs[0]: first, **{t: type_pair(study, axes=axes, layer=layer, method=method, type_str=t, draw=None,
                                                     prior=prior) for t in pairs[1:]}}
            nulls = [type_pair(study, axes=axes, layer=layer, method=method, type_str=pairs[0], draw=k, prior=prior)
                     for k in range(cfg.types.null_draws)]
        n = [len(_axis_items(study, a)) for a in axes]
        out.append(TypesResult(method=method, axes=[a.name for a in axes], n_items=min(n), target_kl=cfg.types.target_kl,
                               layer=layer if method == "steering" else None, null_draws=sum(x.reached for x in nulls),
                               null_seed=types_seed(study, method),
                               null_swap=axes[0].draws[method][0].swap if nulls else None,
                               rows=_rows(study, axes, method, real, nulls),
                               interference=_interference(study, axes, method, real, layer)))
    return out

