"""The study's headline measurement, per persona set: effect against damage for every method, and the
matched-damage table with damage-matched nulls.

**Damage.** Two disjoint sets of bundled neutral texts: strengths are fitted on the *fit* texts, the
damage that is reported is measured on the *held-out* texts (:mod:`persona_circuits.matching`), with a
bootstrap interval. The persona prompt and RAG are measured in the chat format they are used in.

**Curves.** Every method has a strength dial (:mod:`persona_circuits.damage`): keep-mask sparsity
(contrastive Wanda, Wanda, contrastive sparse), removed fraction (contrastive removal), soft-mask strength
``1 − γ`` of the contrastive-Wanda masks at the study's sparsity, and the steering coefficient. At each
strength of its grid the pole contrast (first ``curve_items`` held-out items) and the fit damage are
measured for the real pair and for ``null_draws`` label-swapped pairs at the same strength (descriptive:
the curves draw the figure and start the search; the verdicts come from the table).

**Matched damage.** For each target damage each method's strength is fitted; at it the real pair is
measured on every held-out item, and so is each of ``matched_null_draws`` label-swapped null draws at its
*own* strength, fitted to the same target (same data with the labels shuffled; for steering, the
difference of means of the shuffled calibration data). Steering also gets random directions of the
persona vector's norm, damage-matched. Beside them, the older strength-matched null (the first draws at
the real pair's strength, on the curve items). The null tests are made once all sets are measured
(:mod:`.verdicts`: the symmetry check of the nulls, then Holm's adjustment over the table).
"""

from __future__ import annotations

from dataclasses import dataclass

from .state import Study

#: Methods of the curves, in the order they are measured and drawn.
CURVE_METHODS = ("contrastive-wanda", "contrastive-removal", "wanda", "contrastive-sparse", "soft-mask", "steering")
_GRIDS = {"contrastive-wanda": "curve_keep_sparsities", "contrastive-removal": "curve_removal_fractions",
          "wanda": "curve_wanda_sparsities", "contrastive-sparse": "curve_sparse_sparsities",
          "soft-mask": "curve_soft_strengths", "steering": "curve_steer_coefs"}


@dataclass
class HeadlineInputs:
    """What the set stage hands to the headline: signatures, null signatures, the soft-mask dial's masks,
    the steering vector with its label-swapped and random counterparts, and the reference conditions."""

    sigs: dict
    null_sigs: list
    cw_masks: dict
    null_cw_masks: list
    vector: object
    null_vectors: object  # [K, d_model] label-swapped difference-of-means directions at the steering layer
    layer: int
    scores: dict
    reference_pairs: dict
    sft: dict | None


def _contrast_of(d, seed: int) -> dict:
    """A row's or reference point's contrast on its items, with "moved" for the share of items moved."""
    from ..evaluation import contrast_from_items

    c = contrast_from_items(d, condition="", seed=seed)
    return {"n": c.n, "shift": c.shift, "shift_ci95": list(c.shift_ci95), "moved": c.accuracy,
            "moved_ci95": list(c.accuracy_ci95)}


class _Dials:
    """The real dial of each method and its null dials, made on demand (a ranked null dial holds its
    ranks, about 0.4 GB: the caller drops it after use)."""

    def __init__(self, study: Study, inp: HeadlineInputs) -> None:
        from ..nulls import random_directions

        self.study, self.inp = study, inp
        self.kw = dict(modules=study.cfg.modules, statistic=study.cfg.statistic)
        n = max(len(inp.null_sigs), study.cfg.setting("random_direction_draws"))
        self.random = random_directions(inp.vector, draws=n, seed=study.cfg.seed + 7919)
        self._real: dict = {}

    def real(self, method: str):
        if method not in self._real:  # one dial per method: a ranked dial sorts its scores once
            self._real[method] = self._make(method, self.inp.sigs, self.inp.cw_masks, self.inp.vector)
        return self._real[method]

    def null(self, method: str, k: int, kind: str = "label-swapped"):
        if kind == "random-direction":
            return self._make("steering", None, None, self.random[k])
        return self._make(method, self.inp.null_sigs[k], self.inp.null_cw_masks[k], self.inp.null_vectors[k])

    def _make(self, method, sigs, cw_masks, vector):
        from ..damage import mask_dial, soft_mask_dial, steering_dial

        if method == "soft-mask":
            return soft_mask_dial(cw_masks)
        if method == "steering":  # a wide range: label-swapped directions are shorter than the persona's
            return steering_dial(vector, self.inp.layer, lo=1e-3, hi=1e4)
        return mask_dial(self.study.model, method, sigs, **self.kw)


def _base_key(study: Study, name: str, ps, items) -> tuple:
    cfg = study.cfg
    return (name, ps.content_hash(), [it.id for it in items], cfg.tokens, cfg.modules, cfg.statistic, cfg.seed,
            cfg.calib_size, study.fit_reference().indices, "v3")


def _curves(study: Study, name: str, ps, dials: _Dials, layer: int) -> dict:
    """Every method's curve on the curve items, with label-swapped nulls at each strength (fit texts)."""
    from ..curves import dial_curve

    cfg = study.cfg
    items = ps.test[: cfg.setting("curve_items")]
    k = min(len(dials.inp.null_sigs), cfg.setting("null_draws"))
    base = _base_key(study, name, ps, items)
    out = {}
    for method in CURVE_METHODS:
        grid = cfg.setting(_GRIDS[method])
        if not grid:
            continue
        key = base + (k, method, list(grid), layer if method == "steering" else None,
                      cfg.sparsity if method == "soft-mask" else None)

        def run(method=method, grid=grid):
            nulls = [dials.null(method, i) for i in range(k)]
            pts = dial_curve(study.model, dials.real(method), grid, items, study.fit_reference(), null_dials=nulls,
                             batch_size=cfg.batch_size, seed=cfg.seed,
                             progress=f"{name} {method} curve" if study.progress else False)
            return [p.to_dict() for p in pts]

        out[method] = study.cached_json("curve", key, run)
    return out


def _reference_points(study: Study, name: str, ps, inp: HeadlineInputs) -> tuple[dict, dict]:
    """Prompt, RAG and LoRA on every held-out item, with their held-out damage (prompt and RAG in the chat
    format they are used in). Returns ``(points, per-item contrasts)``."""
    from ..evaluation import item_shifts
    from ..matching import held_out_damage

    cfg, poles = study.cfg, ps.pole_names
    points, per_item = {}, {}
    for cond in ("prompt", "rag", "sft"):
        ka, kb = f"{cond}:{poles[0]}", f"{cond}:{poles[1]}"
        if ka not in inp.scores or kb not in inp.scores:
            continue
        per_item[cond] = item_shifts(inp.scores[ka], inp.scores[kb])
        if cond == "sft":
            dmg = {"damage_kl": inp.sft["damage_kl"], "damage_kl_ci95": inp.sft["damage_kl_ci95"],
                   "trained": inp.sft["trained"]}
        else:
            ref = study.chat_reference()
            dmg = study.cached_json("point-damage", (name, ps.content_hash(), cond, ref.indices, cfg.calib_size, cfg.rag_k, "chat"),
                                    lambda cond=cond, ref=ref: held_out_damage(study.model, inp.reference_pairs[cond], ref,
                                                                               seed=cfg.seed).to_dict())
            dmg.pop("per_pole", None)
        points[cond] = {**_contrast_of(per_item[cond], cfg.seed), **dmg}
    return points, per_item


def run_headline(study: Study, name: str, ps, inp: HeadlineInputs) -> dict:
    """Curves, matched-damage rows and reference points of one set (see the module docstring)."""
    from .matched import matched_rows

    cfg = study.cfg
    dials = _Dials(study, inp)
    fit, held = study.fit_reference(), study.held_out_reference()
    out: dict = {"n_items_curve": min(len(ps.test), cfg.setting("curve_items")), "n_items_table": len(ps.test),
                 "null_draws": min(len(inp.null_sigs), cfg.setting("null_draws")),
                 "matched_null_draws": min(len(inp.null_sigs), cfg.setting("matched_null_draws")),
                 "steering_layer": inp.layer, "soft_mask_sparsity": cfg.sparsity,
                 "targets": list(cfg.setting("matched_damages")), "n_damage_texts": len(held.texts),
                 "damage": {"fit_texts": fit.indices, "damage_texts": held.indices,
                            "chat_texts": study.chat_reference().indices, "tolerance": 0.25}}
    out["curves"] = _curves(study, name, ps, dials, inp.layer)
    out["points"], per_item = _reference_points(study, name, ps, inp)
    out["matched"] = matched_rows(study, name, ps, dials, out["curves"], per_item)
    return out

