"""The study's headline measurement, per persona set: effect against damage for every method, and the
matched-damage table.

**Curves.** Every method has a strength dial (:mod:`persona_circuits.damage`): keep-mask sparsity
(contrastive Wanda, Wanda, contrastive sparse), removed fraction (contrastive removal), soft-mask strength
``1 − γ`` of the contrastive-Wanda masks at the study's sparsity, and the steering coefficient. At each
strength of its grid the pole contrast (on the first ``curve_items`` held-out items) and the damage (KL on
neutral text) are measured for the real pair and for ``null_draws`` null pairs at the same strength:
label-swapped calibration data for masks, random directions of the persona vector's norm for steering.

**Matched damage.** For each target damage the strength of a method is interpolated from its measured
curve (log strength against log damage, never extrapolated) and refined on neutral text only
(:func:`persona_circuits.curves.refine_strength`: up to three damage-only measurements); at that strength the real
pair and its ``matched_null_draws`` nulls are measured again on the curve items (the null test: same items, same strength), and
the real pair on **every** held-out item (the effect size, with a bootstrap interval). The persona prompt,
RAG and the LoRA upper bound are single points at the damage they happen to do. Each matched row is
compared, item by item, with the prompt and with steering at the same target (paired bootstrap).
"""

from __future__ import annotations

import numpy as np

from .state import Study

#: Methods of the curves, in the order they are measured and drawn.
CURVE_METHODS = ("contrastive-wanda", "contrastive-removal", "wanda", "contrastive-sparse", "soft-mask", "steering")
_GRIDS = {"contrastive-wanda": "curve_keep_sparsities", "contrastive-removal": "curve_removal_fractions",
          "wanda": "curve_wanda_sparsities", "contrastive-sparse": "curve_sparse_sparsities",
          "soft-mask": "curve_soft_strengths", "steering": "curve_steer_coefs"}


def _contrast_of(d, seed: int) -> dict:
    """A matched row's or reference point's contrast, with "moved" for the share of items moved."""
    from ..evaluation import contrast_from_items

    c = contrast_from_items(d, condition="", seed=seed)
    return {"n": c.n, "shift": c.shift, "shift_ci95": list(c.shift_ci95), "moved": c.accuracy,
            "moved_ci95": list(c.accuracy_ci95)}


def run_headline(study: Study, name: str, ps, *, sigs: dict, null_sigs: list, cw_masks: dict, null_cw_masks: list,
                 vector, layer: int, scores: dict, reference_pairs: dict, sft_damage: float | None) -> dict:
    """Curves, matched-damage rows and reference points of one set (see the module docstring).

    Args:
        sigs, null_sigs: the poles' calibration signatures and the label-swapped null signature pairs.
        cw_masks, null_cw_masks: contrastive-Wanda masks at the study's sparsity (real, and per null draw):
            the soft-mask dial's masks.
        vector, layer: the steering vector and its layer.
        scores: condition scores on every held-out item (``prompt:<pole>``, ``rag:<pole>``, ``sft:<pole>``).
        reference_pairs: ``{"prompt": [iv_a, iv_b], "rag": [...]}`` for their damage.
        sft_damage: mean KL damage of the two LoRA adapters (None when not trained on this set).
    """
    from ..curves import dial_curve, pair_item_shifts, paired_difference, refine_strength
    from ..damage import kl_damage, mask_dial, soft_mask_dial, steering_dial
    from ..evaluation import item_shifts
    from ..nulls import null_test, random_directions

    cfg, model = study.cfg, study.model
    poles = ps.pole_names
    items = ps.test[: cfg.setting("curve_items")]
    ref = study.neutral_reference()
    k_match = min(len(null_sigs), cfg.setting("matched_null_draws"))
    k = min(len(null_sigs), cfg.setting("null_draws"))
    kw = dict(modules=cfg.modules, statistic=cfg.statistic)
    dirs = random_directions(vector, draws=len(null_sigs), seed=cfg.seed)
    dials = {m: (mask_dial(model, m, sigs, **kw), [mask_dial(model, m, ns, **kw) for ns in null_sigs])
             for m in ("contrastive-wanda", "contrastive-removal", "wanda", "contrastive-sparse")}
    dials["soft-mask"] = (soft_mask_dial(cw_masks), [soft_mask_dial(nm) for nm in null_cw_masks])
    dials["steering"] = (steering_dial(vector, layer), [steering_dial(r, layer) for r in dirs])

    base = (name, ps.content_hash(), [it.id for it in items], cfg.tokens, cfg.modules, cfg.statistic, cfg.seed,
            cfg.calib_size, len(ref.texts))
    all_ids = [it.id for it in ps.test]

    def extra(method):
        return (layer if method == "steering" else None, cfg.sparsity if method == "soft-mask" else None)

    out: dict = {"n_items_curve": len(items), "n_items_table": len(ps.test), "n_damage_texts": len(ref.texts),
                 "null_draws": k, "matched_null_draws": k_match, "steering_layer": layer, "soft_mask_sparsity": cfg.sparsity,
                 "targets": list(cfg.setting("matched_damages")), "curves": {}, "matched": [], "points": {}}
    prog = study.progress
    for method in CURVE_METHODS:
        grid = cfg.setting(_GRIDS[method])
        if not grid:
            continue
        dial, nulls = dials[method]
        key = base + (k, method, list(grid), *extra(method))
        out["curves"][method] = study.cached_json("curve-v2", key, lambda dial=dial, nulls=nulls, grid=grid: [
            p.to_dict() for p in dial_curve(model, dial, grid, items, ref, null_dials=nulls[:k], batch_size=cfg.batch_size,
                                            seed=cfg.seed, progress=f"{name} {dial.name} curve" if prog else False)])

    # -- reference points on every held-out item: prompt, RAG, LoRA
    ref_d = {}
    for cond in ("prompt", "rag", "sft"):
        ka, kb = f"{cond}:{poles[0]}", f"{cond}:{poles[1]}"
        if ka not in scores or kb not in scores:
            continue
        ref_d[cond] = item_shifts(scores[ka], scores[kb])
        if cond == "sft":
            dmg = sft_damage
        else:
            dmg = study.cached_json("point-damage", (name, ps.content_hash(), cond, len(ref.texts), cfg.calib_size, cfg.rag_k),
                                    lambda cond=cond: float(np.mean([kl_damage(model, iv, ref, n_boot=1)[0]
                                                                     for iv in reference_pairs[cond]])))
        out["points"][cond] = {**_contrast_of(ref_d[cond], cfg.seed), "damage_kl": dmg}

    # -- matched damage: steering first (every other row is compared with it)
    order = sorted(cfg.setting("matched_methods"), key=lambda m: m != "steering")
    steer_d: dict[float, np.ndarray] = {}
    for method in order:
        if method not in out["curves"]:
            continue
        dial, nulls = dials[method]
        curve = out["curves"][method]
        for target in cfg.setting("matched_damages"):
            row: dict = {"method": method, "target_kl": target}
            grid_pts = [p for p in curve if not p.get("matched_target")]
            found = study.cached_json("matched-strength", base + (method, target, [p["strength"] for p in grid_pts], *extra(method)),
                                      lambda dial=dial, grid_pts=grid_pts, target=target: refine_strength(
                                          model, dial, target, ref, grid_pts))
            s, search = found[0], found[1]
            row["search"] = search
            if s is None:
                dm = [p["damage_kl"] for p in curve]
                row.update(reached=False, curve_damage_range=[min(dm), max(dm)])
                out["matched"].append(row)
                continue
            key = base + (k_match, method, round(s, 10), *extra(method))
            pt = study.cached_json("curve-point", key, lambda dial=dial, nulls=nulls, s=s: dial_curve(
                model, dial, [s], items, ref, null_dials=nulls[:k_match], batch_size=cfg.batch_size, seed=cfg.seed)[0].to_dict())
            curve.append({**pt, "matched_target": target})
            d = study.cached_torch("matched-items", (base, all_ids, method, round(s, 10), *extra(method)),
                                   lambda dial=dial, s=s: pair_item_shifts(model, dial.make(s), ps.test, batch_size=cfg.batch_size))
            d = np.asarray(d, float)
            t = null_test(pt["shift"], pt["null_shifts"], shift_ci95=tuple(pt["shift_ci95"]))
            row.update(reached=True, strength=s, damage_kl=pt["damage_kl"], **_contrast_of(d, cfg.seed),
                       curve_shift=pt["shift"], curve_shift_ci95=pt["shift_ci95"], null_shifts=pt["null_shifts"],
                       null_damage_kl=pt["null_damage_kl"], null_shift_mean=t.null_shift_mean,
                       null_shift_sd=t.null_shift_sd, null_threshold=t.null_threshold, persona_specific=t.persona_specific)
            if "prompt" in ref_d:
                row["vs_prompt"] = paired_difference(d, ref_d["prompt"], seed=cfg.seed)
            if method == "steering":
                steer_d[target] = d
            elif target in steer_d:
                row["vs_steering"] = paired_difference(d, steer_d[target], seed=cfg.seed)
            out["matched"].append(row)
        curve.sort(key=lambda p: p["strength"])
    return out
