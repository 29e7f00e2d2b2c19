"""The matched-damage table of one persona set: every method at every target damage, with damage-matched
null draws on every held-out item (see :mod:`.headline` for the design, :mod:`persona_circuits.measure.matching`
for the fit and the held-out damage).

**Seeds.** Row (set, method, target) draws from ``null_seed = run.draw_seed("matched", method, target)``; its draw
``k`` is the label-swapped draw of ``derive_seed(null_seed, k)``, fitted to the row's own target (a draw serves one
row only, so the rows' tests are independent). The search of draw ``k`` starts from the real pair's points and
the median fitted strength of the row's earlier draws."""

from __future__ import annotations

import numpy as np

from ..results import CurvePoint, DamageMatchedNull, MatchedDraw, MatchedRow, RandomDirectionNull, StrengthMatchedNull
from .config import SETTINGS
from .dials import DIAL_SETTINGS, Dials, dials_of, item_contrast
from .setup import SetRun
from .stage import stage
from .state import Study

#: What the matched stages read besides the dials: the targets, and the curve (through ``prior``).
MATCH_SETTINGS = (*DIAL_SETTINGS, SETTINGS.headline.matched_damages)


def row_seed(run: SetRun, method: str, target: float) -> int:
    """The seed of the matched row (``run``'s set, ``method``, ``target``): recorded as the row's ``null_seed``."""
    return run.draw_seed("matched", method, float(target))


def draw_seeds(seed: int, draws: int) -> list[int]:
    """The seeds of a row's ``draws`` label-swapped draws, from the row's seed."""
    from ..measure.nulls import derive_seed

    return [derive_seed(seed, k) for k in range(draws)]


def real_prior(curve: list[CurvePoint], fits: list[MatchedDraw]) -> list[list[float]]:
    """The real pair's ``(strength, fit damage)`` points: its curve's grid and its own fitting steps."""
    return [[p.strength, p.damage_kl] for p in curve] + [list(h) for f in fits for h in f.history]


def _measure(study: Study, dial, targets, run: SetRun, prior, own, start=None) -> list[MatchedDraw]:
    """Fit every target on the fit texts; at each reached strength the held-out damage (with interval) and
    the per-item contrasts on every held-out item."""
    from ..measure.curves import pair_item_shifts
    from ..measure.matching import fit_strengths, held_out_damage

    fits = fit_strengths(study.model, dial, targets, study.fit_reference(), prior=prior, own=own, start=start)
    out = []
    for f in fits:
        d = MatchedDraw.from_dict(f.to_dict())
        if f.reached:
            pair = dial.make(f.strength)
            h = held_out_damage(study.model, pair, study.held_out_reference(), seed=study.cfg.seed)
            shifts = pair_item_shifts(study.model, pair, run.ps.test, batch_size=study.cfg.batch_size)
            d.update(damage_kl=h.damage_kl, damage_kl_ci95=h.damage_kl_ci95, shifts=[float(x) for x in shifts])
        out.append(d)
    return out


@stage("matched-real", settings=MATCH_SETTINGS, version=4, result=list[MatchedDraw])
def matched_real(study: Study, *, run: SetRun, method: str, curve: list[CurvePoint]) -> list[MatchedDraw]:
    """The real pair's fitted strength per target and, where reached, its held-out damage and contrasts."""
    own = real_prior(curve, [])
    return _measure(study, dials_of(study, run).real(method), list(study.cfg.headline.matched_damages), run, own, own)


@stage("matched-null", settings=(*MATCH_SETTINGS, SETTINGS.nulls.swap), version=6, result=MatchedDraw)
def matched_null(study: Study, *, run: SetRun, method: str, target: float, seed: int, kind: str, prior: list,
                 start: float | None) -> MatchedDraw:
    """The null draw ``seed`` (label-swapped; for ``kind="random-direction"`` the index of a random direction)
    brought to ``target`` by its own strength search (from ``start``, the median strength of the row's earlier
    draws), then measured like the real pair."""
    return _measure(study, dials_of(study, run).null(method, seed, kind), [target], run, prior, [], [start])[0]


def draw_start(draws: list[MatchedDraw]) -> float | None:
    """The median fitted strength of the row's draws so far (``None`` before the first)."""
    s = [d.strength for d in draws if d.reached]
    return float(np.median(s)) if s else None


@stage("strength-matched", settings=(*DIAL_SETTINGS, SETTINGS.headline.curve_items, SETTINGS.nulls.curve_draws, SETTINGS.nulls.swap),
       version=3, result=StrengthMatchedNull)
def strength_matched(study: Study, *, run: SetRun, method: str, strength: float) -> StrengthMatchedNull:
    """The older null: the first draws at the real pair's own strength, on the curve items."""
    from ..measure.curves import dial_curve

    cfg = study.cfg
    dials = dials_of(study, run)
    seeds = dials.curve_seeds(method)
    k = len(seeds)
    items = run.ps.test[: cfg.headline.curve_items]
    pt = dial_curve(study.model, dials.real(method), [strength], items, study.fit_reference(),
                    null_dials=[dials.null(method, s, keep=True) for s in seeds], batch_size=cfg.batch_size,
                    seed=cfg.seed)[0]
    return StrengthMatchedNull(null_draws=k, null_items=len(items), shift=pt.shift, null_shifts=pt.null_shifts,
                               null_damage_kl=pt.null_damage_kl, damage_kl=pt.damage_kl)


def _with_draws(rec: DamageMatchedNull, draws: list[MatchedDraw], n: int) -> DamageMatchedNull:
    """``rec`` with the null draws of one row: their contrasts (mean over every item) and damages."""
    reached = [d for d in draws if d.reached]
    return rec.update(null_draws=len(reached), null_items=n, null_draws_not_reached=len(draws) - len(reached),
                      null_shifts=[float(np.mean(r.shifts)) for r in reached], null_damage_kl=[r.damage_kl for r in reached],
                      null_strengths=[r.strength for r in reached], null_fit_damage_kl=[r.fit_damage_kl for r in reached])


def _row(study: Study, method: str, ti: int, real: MatchedDraw, nulls: list[MatchedDraw], rnd: list[MatchedDraw], n: int,
         seed: int) -> MatchedRow:
    from ..measure.matching import within

    target = study.cfg.headline.matched_damages[ti]
    row = MatchedRow(method=method, target_kl=target, reached=real.reached, search=[list(h) for h in real.history],
                     fit_damage_kl=real.fit_damage_kl, fit_texts=study.fit_reference().indices,
                     damage_texts=study.held_out_reference().indices)
    if not real.reached:
        dm = [d for _, d in real.history]
        row.curve_damage_range = (min(dm), max(dm)) if dm else None
        return row
    row.update(strength=real.strength, damage_kl=real.damage_kl, damage_kl_ci95=real.damage_kl_ci95,
               within_tolerance=within(real.damage_kl, target), null_kind="label-swapped", null_swap=study.cfg.nulls.swap,
               null_seed=seed)
    row.update_from(item_contrast(np.asarray(real.shifts), study.cfg.seed))
    _with_draws(row, nulls, n)
    if rnd:
        row.random_direction_null = _with_draws(RandomDirectionNull(null_kind="random-direction"), rnd, n)
    return row


def matched_rows(study: Study, run: SetRun, dials: Dials, curves: dict[str, list[CurvePoint]],
                 per_item_refs: dict) -> list[MatchedRow]:
    """Every (method, target) row of the table; steering first, as every mask row is compared with it."""
    from ..measure.curves import paired_difference

    cfg = study.cfg
    rows, steer_d = [], {}
    for method in sorted(cfg.headline.matched_methods, key=lambda m: m != "steering"):
        if method not in curves:
            continue
        real = matched_real(study, run=run, method=method, curve=curves[method])
        prior = real_prior(curves[method], real)
        for ti, target in enumerate(cfg.headline.matched_damages):
            seed = row_seed(run, method, target)
            with study.timed(f"{run.name}: {method} matched-damage nulls"):
                nulls = _draws(study, run, method, target, "label-swapped", draw_seeds(seed, cfg.nulls.matched_draws), prior)
                rnd = _draws(study, run, method, target, "random-direction",
                             list(range(cfg.nulls.random_direction_draws if method == "steering" else 0)), prior)
            r = real[ti]
            row = _row(study, method, ti, r, nulls, rnd, len(run.ps.test), seed)
            if r.reached:
                row.strength_matched_null = strength_matched(study, run=run, method=method, strength=r.strength)
                d = np.asarray(r.shifts)
                if "prompt" in per_item_refs:
                    row.vs_prompt = paired_difference(d, per_item_refs["prompt"], seed=cfg.seed)
                if method == "steering":
                    steer_d[target] = d
                elif target in steer_d:
                    row.vs_steering = paired_difference(d, steer_d[target], seed=cfg.seed)
            rows.append(row)
    return rows


def _draws(study: Study, run: SetRun, method: str, target: float, kind: str, seeds: list[int],
           prior: list) -> list[MatchedDraw]:
    """The row's null draws, each fitted to ``target``, every search warm-started from the earlier draws."""
    out: list[MatchedDraw] = []
    for s in seeds:
        out.append(matched_null(study, run=run, method=method, target=float(target), seed=int(s), kind=kind, prior=prior,
                                start=draw_start(out)))
    return out
