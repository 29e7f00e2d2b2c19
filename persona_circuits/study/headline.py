"""The study's headline measurement, per persona set: effect against damage for every method, and the
matched-damage table with damage-matched nulls.

**Damage.** Two disjoint sets of bundled neutral texts: strengths are fitted on the *fit* texts, the
damage that is reported is measured on the *held-out* texts (:mod:`persona_circuits.measure.matching`), with a
bootstrap interval. The persona prompt and RAG are measured in the chat format they are used in.

**Curves.** Every method has a strength dial (:mod:`persona_circuits.measure.damage`): keep-mask sparsity
(contrastive Wanda, Wanda, contrastive sparse), removed fraction (contrastive removal), soft-mask strength
``1 − γ`` of the contrastive-Wanda masks at the study's sparsity, and the steering coefficient. At each
strength of its grid the pole contrast (first ``curve_items`` held-out items) and the fit damage are
measured for the real pair and for ``curve_draws`` label-swapped pairs at the same strength (descriptive:
the curves draw the figure and start the search; the verdicts come from the table). The curve's draws have
their own seeds per (set, method) (:meth:`~.setup.SetRun.draw_seed`), and serve the strength-matched null.

**Matched damage** (:mod:`.matched`). For each target damage each method's strength is fitted; at it the
real pair is measured on every held-out item, and so is each of ``matched_draws`` label-swapped null draws
at its *own* strength, fitted to the same target (same data with the labels swapped, ``nulls.swap``; for
steering, the difference of means of the swapped calibration data). Every (set, method, target) row draws
from its own seed (``null_seed`` in the row), so rows, sets and targets have independent nulls. Steering also gets random directions of the persona
vector's norm, damage-matched. Beside them, the older strength-matched null (the first draws at the real
pair's strength, on the curve items). The null tests are made once all sets are measured (:mod:`.verdicts`).
"""

from __future__ import annotations

from ..results import CurvePoint, DamageTexts, Headline, HeldOutDamage, LoraRun, ReferencePoint
from .config import SETTINGS
from .dials import CURVE_GRIDS, CURVE_METHODS, DIAL_SETTINGS, dials_of, item_contrast
from .setup import SetRun
from .stage import stage
from .state import Study


@stage("curve", settings=(*DIAL_SETTINGS, SETTINGS.headline, SETTINGS.nulls.curve_draws, SETTINGS.nulls.swap), version=5,
       result=list[CurvePoint])
def curve(study: Study, *, run: SetRun, method: str) -> list[CurvePoint]:
    """One method's curve on the curve items, with label-swapped nulls at each strength (fit texts)."""
    from ..measure.curves import dial_curve

    cfg = study.cfg
    dials = dials_of(study, run)
    return dial_curve(study.model, dials.real(method), cfg.get(CURVE_GRIDS[method]), run.ps.test[: cfg.headline.curve_items],
                      study.fit_reference(), null_dials=[dials.null(method, s, keep=True) for s in dials.curve_seeds(method)],
                      batch_size=cfg.batch_size, seed=cfg.seed, progress=f"{run.name} {method} curve" if study.progress else False)


@stage("point-damage", settings=(*DIAL_SETTINGS, SETTINGS.baselines.rag_k), version=2, result=HeldOutDamage)
def point_damage(study: Study, *, run: SetRun, condition: str) -> HeldOutDamage:
    """Held-out damage of the persona prompt or RAG, in the chat format they are used in."""
    from ..measure.matching import held_out_damage
    from .conditions import condition_interventions

    return held_out_damage(study.model, condition_interventions(run, condition, study), study.chat_reference(),
                           seed=study.cfg.seed)


def reference_points(study: Study, run: SetRun, sft: dict[str, LoraRun] | None) -> tuple[dict[str, ReferencePoint], dict]:
    """Prompt, RAG and LoRA on every held-out item with their held-out damage. Returns ``(points, per-item
    contrasts)``."""
    from ..measure.evaluation import item_shifts

    points, per_item = {}, {}
    for cond in ("prompt", "rag", "sft"):
        a, b = run.scores.get(f"{cond}:{run.poles[0]}"), run.scores.get(f"{cond}:{run.poles[1]}")
        if a is None or b is None:
            continue
        per_item[cond] = item_shifts(a, b)
        point = ReferencePoint.from_dict(item_contrast(per_item[cond], study.cfg.seed).to_dict())
        if cond == "sft":
            point.update(damage_kl=sum(x.damage_kl for x in sft.values()) / len(sft),
                         trained=all(x.trained for x in sft.values()))
        else:
            h = point_damage(study, run=run, condition=cond)
            point.update(damage_kl=h.damage_kl, damage_kl_ci95=h.damage_kl_ci95)
        points[cond] = point
    return points, per_item


def run_headline(study: Study, run: SetRun, sft: dict[str, LoraRun] | None) -> Headline:
    """Curves, matched-damage rows and reference points of one set (see the module docstring)."""
    from .matched import matched_rows

    cfg = study.cfg
    fit, held = study.fit_reference(), study.held_out_reference()
    curves = {m: curve(study, run=run, method=m) for m in CURVE_METHODS if cfg.get(CURVE_GRIDS[m])}
    points, per_item = reference_points(study, run, sft)
    return Headline(n_items_curve=min(len(run.ps.test), cfg.headline.curve_items), n_items_table=len(run.ps.test),
                    null_draws=cfg.nulls.curve_draws, matched_null_draws=cfg.nulls.matched_draws,
                    null_swap=cfg.nulls.swap, steering_layer=run.steering.layer, soft_mask_sparsity=cfg.masks.sparsity,
                    targets=list(cfg.headline.matched_damages), n_damage_texts=len(held.texts),
                    damage=DamageTexts(fit_texts=fit.indices, damage_texts=held.indices,
                                       chat_texts=study.chat_reference().indices, tolerance=0.25),
                    curves=curves, points=points, matched=matched_rows(study, run, dials_of(study, run), curves, per_item))
