"""The study's analysis-set stage: ablations (restore layer groups, matched-count removals), bootstrap
stability, sparsity and calibration-size sweeps, general capability."""

from __future__ import annotations

from .state import Study


def run_analysis_set(study: Study, name: str, ps, set_res: dict) -> dict:
    """Ablations, stability, sweeps and capability checks on the analysis set's first
    ``analysis_items`` held-out items, reusing the set stage's masks and calibration records."""
    from ..analysis.ablation import group_layers, layer_groups, removal_comparison, restore_ablation
    from ..analysis.capability import choice_accuracy, general_choice_items, neutral_texts, perplexity
    from ..analysis.stability import bootstrap_stability
    from ..evaluation import pole_contrast, score_choices, summarize
    from ..interventions import apply_mask
    from ..masks import build_masks
    from ..nulls import null_test

    cfg, model = study.cfg, study.model
    poles = ps.pole_names
    items = ps.test[: cfg.analysis_items]
    set_key = (name, ps.content_hash(), [it.id for it in items], cfg.tokens, "analysis")
    masks, recs = set_res["_masks"], set_res["_recs"]
    bs = cfg.batch_size
    out: dict = {"set": name, "n_items": len(items)}

    def scored(cond, mask, **kw):
        def fn():
            with apply_mask(model, mask, **kw):
                return score_choices(model, items, batch_size=bs)
        return study.scores(set_key, cond, fn)

    def scorer(label, mask, dense_layers=frozenset()):
        # labels name the condition within this stage; "v2": the matched-count removals and two-mask restore
        return scored("dense" if label == "dense" else f"ablation-v2:{label}", mask, dense_layers=set(dense_layers))

    # -- ablation 1: restore groups of layers to dense inside both poles' contrastive-Wanda masks
    # -- ablation 2: remove top contrastive vs top pooled-Wanda vs random weights, matched per row
    with study.timed(f"{name}: ablation"):
        ma, mb = masks["contrastive-wanda"][poles[0]], masks["contrastive-wanda"][poles[1]]
        groups = [(f"blocks {g[0]}-{g[-1]}", group_layers(ma, blocks=g)) for g in layer_groups(model.cfg.n_layers, cfg.ablation_groups)]
        groups += [("all attention", group_layers(ma, kind="attn")), ("all MLP", group_layers(ma, kind="mlp"))]
        # gate: the full masks' contrast must beat its label-swapped null on the same items (nulls.null_test)
        full = pole_contrast(scorer("full:a", ma), scorer("full:b", mb), condition="full", seed=cfg.seed)
        null_shifts = [pole_contrast(scorer(f"null-full:{i}:a", pair[poles[0]]), scorer(f"null-full:{i}:b", pair[poles[1]]),
                                     condition="null", seed=cfg.seed).shift for i, pair in enumerate(set_res["_null_cw"])]
        t = null_test(full.shift, null_shifts, shift_ci95=full.shift_ci95)
        gate = {"test": f"null_test: the full contrast exceeds the one-sided 95 % prediction bound of {len(null_shifts)} "
                        "label-swapped mask pairs on the same items, with its interval above 0",
                "passed": bool(t.persona_specific), **{k: v for k, v in t.to_dict().items() if k != "shift"}}
        out["restore"] = {"method": "contrastive-wanda", "poles": poles,
                          **restore_ablation(model, items, ma, mb, groups, scorer=scorer, seed=cfg.seed, gate=gate)}
        sa, sb = recs[poles[0]]["sig"], recs[poles[1]]["sig"]
        out["removal"] = {"poles": poles, **removal_comparison(
            model, items, sa, sb, cfg.removal_fractions, modules=cfg.modules, statistic=cfg.statistic,
            seed=cfg.seed, scorer=scorer)}

    # -- stability under bootstrap resampling of the calibration texts
    with study.timed(f"{name}: stability"):
        ra, rb = recs[poles[0]]["rec"], recs[poles[1]]["rec"]
        out["stability"] = study.cached_json("stability", (set_key, cfg.n_boot, cfg.sparsity, cfg.seed), lambda: [
            bootstrap_stability(model, ra, rb, poles, method=meth, sparsity=cfg.sparsity, n_boot=cfg.n_boot,
                                seed=cfg.seed, modules=cfg.modules, n_texts=cfg.calib_size)
            for meth in ("wanda", "contrastive-wanda")])

    # -- sweeps
    with study.timed(f"{name}: sparsity and calibration-size sweeps"):
        sweep = []
        for rho in cfg.sweep_sparsities:
            mm = build_masks(model, "contrastive-wanda", {p: recs[p]["sig"] for p in poles}, sparsity=rho, modules=cfg.modules)
            sc = {p: scored(f"sweep-rho:{rho}:{p}", mm[p]) for p in poles}
            c = pole_contrast(sc[poles[0]], sc[poles[1]], condition=f"rho={rho}", seed=cfg.seed).to_dict()
            accs = {p: summarize(sc[p], i, condition="", pole=p, seed=cfg.seed).to_dict() for i, p in enumerate(poles)}
            sweep.append({"sparsity": rho, "contrast": c, "per_pole": accs})
        out["sparsity_sweep"] = {"method": "contrastive-wanda", "calib_size": cfg.calib_size, "rows": sweep}
        csweep = []
        for n in cfg.sweep_calib_sizes:
            n_eff = min(n, len(ra.n_tok), len(rb.n_tok))
            sg = {poles[0]: ra.signature(range(n_eff), pole=poles[0]), poles[1]: rb.signature(range(n_eff), pole=poles[1])}
            mm = build_masks(model, "contrastive-wanda", sg, sparsity=cfg.sparsity, modules=cfg.modules)
            sc = {p: scored(f"sweep-n:{n_eff}:{p}", mm[p]) for p in poles}
            c = pole_contrast(sc[poles[0]], sc[poles[1]], condition=f"n={n_eff}", seed=cfg.seed).to_dict()
            accs = {p: summarize(sc[p], i, condition="", pole=p, seed=cfg.seed).to_dict() for i, p in enumerate(poles)}
            csweep.append({"calib_size": n_eff, "contrast": c, "per_pole": accs})
        out["calibration_sweep"] = {"method": "contrastive-wanda", "sparsity": cfg.sparsity, "rows": csweep}

    # -- general capability
    with study.timed(f"{name}: general capability"):
        texts = neutral_texts(cfg.capability_texts)
        gk = general_choice_items(cfg.capability_items)
        conds = [("dense", None), ("random mask", study.random_masks()[0])]
        conds += [(f"{meth} ({poles[0]})", masks[meth][poles[0]]) for meth in cfg.capability_methods]
        cap = []
        for label, mask in conds:
            def fn(mask=mask):
                with apply_mask(model, mask):
                    return {"perplexity": perplexity(model, texts, batch_size=bs),
                            "general_choice": choice_accuracy(model, gk, batch_size=bs, seed=cfg.seed)}
            cap.append({"condition": label, **study.cached_json("capability", (set_key, label, len(texts), len(gk), cfg.sparsity), fn)})
        out["capability"] = cap
    return out
