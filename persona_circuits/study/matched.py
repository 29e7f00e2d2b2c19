"""The matched-damage table of one persona set: every method at every target damage, with damage-matched
null draws on every held-out item (see :mod:`.headline` for the design, :mod:`persona_circuits.matching`
for the fit and the held-out damage)."""

from __future__ import annotations

import numpy as np

from .state import Study


def _prior(curve: list[dict], fits: list[dict]) -> list[tuple[float, float]]:
    """The real pair's ``(strength, fit damage)`` points: its curve's grid and its own fitting steps."""
    pts = [(p["strength"], p["damage_kl"]) for p in curve if p.get("matched_target") is None]
    return pts + [tuple(h) for f in fits for h in f["history"]]


def _own_null_points(curve: list[dict], k: int) -> list[tuple[float, float]]:
    """Points of label-swapped draw ``k`` already measured on the curve (the first ``null_draws`` draws)."""
    return [(p["strength"], p["null_damage_kl"][k]) for p in curve
            if p.get("matched_target") is None and k < len(p.get("null_damage_kl", []))]


def _measure_at(study: Study, dial, strength: float, ps) -> dict:
    """Held-out damage (with interval) and the per-item contrasts on every held-out item at one strength."""
    from ..curves import pair_item_shifts
    from ..matching import held_out_damage

    pair = dial.make(strength)
    h = held_out_damage(study.model, pair, study.held_out_reference(), seed=study.cfg.seed)
    d = pair_item_shifts(study.model, pair, ps.test, batch_size=study.cfg.batch_size)
    return {"damage_kl": h.damage_kl, "damage_kl_ci95": list(h.damage_kl_ci95), "shifts": [float(x) for x in d]}


def _real(study: Study, name: str, ps, dials, method: str, curve: list[dict], key: tuple) -> list[dict]:
    """The real pair's fitted strength per target, and at each reached one its held-out damage and contrasts."""
    from ..matching import fit_strengths

    cfg = study.cfg
    targets = list(cfg.setting("matched_damages"))

    def run():
        own = _prior(curve, [])
        fits = fit_strengths(study.model, dials.real(method), targets, study.fit_reference(), own=own, prior=own)
        out = []
        for f in fits:
            d = f.to_dict()
            if f.reached:
                d.update(_measure_at(study, dials.real(method), f.strength, ps))
            out.append(d)
        return out

    return study.cached_json("matched-real", key + (method, targets), run)


def _null_draw(study: Study, ps, dials, method: str, k: int, kind: str, prior, own, key: tuple) -> list[dict]:
    """One null draw brought to every target by its own strength search (fit texts), then measured like the
    real pair: held-out damage and the contrast on every held-out item."""
    from ..matching import fit_strengths

    targets = list(study.cfg.setting("matched_damages"))

    def run():
        dial = dials.null(method, k, kind)
        fits = fit_strengths(study.model, dial, targets, study.fit_reference(), prior=prior, own=own)
        out = []
        for f in fits:
            d = f.to_dict()
            if f.reached:
                d.update(_measure_at(study, dial, f.strength, ps))
            out.append(d)
        return out

    return study.cached_json("matched-null", key + (method, kind, k, targets, [round(s, 10) for s, _ in prior]), run)


def _strength_matched(study: Study, ps, dials, method: str, strength: float, key: tuple) -> dict:
    """The older null: the first draws at the real pair's own strength, on the curve items."""
    from ..curves import dial_curve

    cfg = study.cfg
    k = min(len(dials.inp.null_sigs), cfg.setting("null_draws"))
    items = ps.test[: cfg.setting("curve_items")]

    def run():
        pt = dial_curve(study.model, dials.real(method), [strength], items, study.fit_reference(),
                        null_dials=[dials.null(method, i) for i in range(k)], batch_size=cfg.batch_size, seed=cfg.seed)[0]
        return {"null_draws": k, "null_items": len(items), "shift": pt.shift, "null_shifts": pt.null_shifts,
                "null_damage_kl": pt.null_damage_kl, "null_threshold": pt.null_threshold,
                "persona_specific": pt.persona_specific, "damage_kl": pt.damage_kl}

    return study.cached_json("strength-matched", key + (method, round(strength, 10), k), run)


def _null_block(draws: list[list[dict]], ti: int, n: int) -> dict:
    """The null draws of one target: their contrasts (mean over every item) and damages."""
    reached = [d[ti] for d in draws if d[ti]["reached"]]
    return {"null_draws": len(reached), "null_items": n, "null_draws_not_reached": len(draws) - len(reached),
            "null_shifts": [float(np.mean(r["shifts"])) for r in reached],
            "null_damage_kl": [r["damage_kl"] for r in reached], "null_strengths": [r["strength"] for r in reached],
            "null_fit_damage_kl": [r["fit_damage_kl"] for r in reached]}


def _row(study: Study, method: str, ti: int, target: float, real: dict, nulls: list, rnd: list, sm: dict | None,
         n: int) -> dict:
    from ..matching import within
    from .headline import _contrast_of

    row = {"method": method, "target_kl": target, "reached": bool(real["reached"]), "search": real["history"],
           "fit_damage_kl": real["fit_damage_kl"], "fit_texts": study.fit_reference().indices,
           "damage_texts": study.held_out_reference().indices}
    if not real["reached"]:
        dm = [d for _, d in real["history"]]
        row["fit_damage_range"] = [min(dm), max(dm)] if dm else None
        return row
    row.update(strength=real["strength"], damage_kl=real["damage_kl"], damage_kl_ci95=real["damage_kl_ci95"],
               within_tolerance=within(real["damage_kl"], target), **_contrast_of(np.asarray(real["shifts"]), study.cfg.seed))
    row.update(null_kind="label-swapped", **_null_block(nulls, ti, n))
    if rnd:
        row["random_direction_null"] = {"null_kind": "random-direction", **_null_block(rnd, ti, n)}
    if sm is not None:
        row["strength_matched_null"] = sm
    return row


def matched_rows(study: Study, name: str, ps, dials, curves: dict, per_item_refs: dict) -> list[dict]:
    """Every (method, target) row of the table; steering first, as every mask row is compared with it."""
    from ..curves import paired_difference
    from .headline import _base_key

    cfg = study.cfg
    key = _base_key(study, name, ps, ps.test)
    K = min(len(dials.inp.null_sigs), cfg.setting("matched_null_draws"))
    rows, steer_d = [], {}
    for method in sorted(cfg.setting("matched_methods"), key=lambda m: m != "steering"):
        if method not in curves:
            continue
        real = _real(study, name, ps, dials, method, curves[method], key)
        prior = _prior(curves[method], real)
        with study.timed(f"{name}: {method} matched-damage nulls"):
            nulls = [_null_draw(study, ps, dials, method, k, "label-swapped", prior, _own_null_points(curves[method], k), key)
                     for k in range(K)]
            rnd = [_null_draw(study, ps, dials, method, k, "random-direction", prior, [], key)
                   for k in range(cfg.setting("random_direction_draws"))] if method == "steering" else []
        for ti, target in enumerate(cfg.setting("matched_damages")):
            r = real[ti]
            sm = _strength_matched(study, ps, dials, method, r["strength"], key) if r["reached"] else None
            row = _row(study, method, ti, target, r, nulls, rnd, sm, len(ps.test))
            if r["reached"]:
                d = np.asarray(r["shifts"])
                if "prompt" in per_item_refs:
                    row["vs_prompt"] = paired_difference(d, per_item_refs["prompt"], seed=cfg.seed)
                if method == "steering":
                    steer_d[target] = d
                elif target in steer_d:
                    row["vs_steering"] = paired_difference(d, steer_d[target], seed=cfg.seed)
            rows.append(row)
    return rows
