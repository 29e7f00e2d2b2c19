"""The study's per-set stage: calibration, masks, every baseline with its pole contrast, and the
analyses of representations (probes against lexical baselines, split-half reliability of the pole
difference, neutral-text decoding of which pole's mask or prompt is active)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from .plan import MAIN_METHODS
from .state import Study, scores_to_dict

#: The reference pair of :func:`representation_analyses`' neutral-text decoding.
RANDOM_PAIR = "two random masks (reference)"


def run_set(study: Study, name: str, ps, family: str) -> dict:
    """Calibration, masks, every condition with its pole contrast, and the per-set analyses of one
    persona set. Returns the set's results; keys starting with ``_`` hold in-memory objects (masks,
    calibration records, scores) for the analysis-set stage and are not written."""
    from ..analysis.features import record_calibration
    from ..analysis.overlap import mask_overlap
    from ..analysis.sparsity import sparsity_profile
    from ..baselines import RagRetriever, persona_prompt, select_steering, steering_vectors, train_lora
    from ..nulls import label_swapped_directions
    from ..evaluation import ChoiceScores, pole_contrast, score_choices, summarize
    from ..interventions import apply_mask
    from ..masks import build_masks

    cfg, model = study.cfg, study.model
    poles = ps.pole_names
    n_layers = model.cfg.n_layers
    set_key = (name, ps.content_hash(), [it.id for it in ps.test], cfg.tokens)
    res: dict = {"family": family, "poles": poles, "n_calibration": min(cfg.calib_size, len(ps.calibration)),
                 "n_test": len(ps.test), "source": ps.source}
    bs = cfg.batch_size

    # -- calibration: per pole, one pass (signature of the first calib_size texts, residual features)
    recs, live = {}, {}
    with study.timed(f"{name}: calibration"):
        for p in poles:
            pairs = ps.calibration_pairs(p)
            def calib(p=p, pairs=pairs):
                rec = record_calibration(model, pairs, tokens=cfg.tokens, batch_size=bs,
                                         progress=f"{name}/{p} calibration" if study.progress else False)
                live[p] = rec
                return {"rec": rec if name == cfg.analysis_set else None, "resid": rec.resid,
                        "sig": rec.signature(range(min(cfg.calib_size, len(pairs))), pole=p, dataset=name,
                                             calibration_hash=ps.subset(cfg.calib_size).content_hash())}
            recs[p] = study.cached_torch("calib", (set_key, p, cfg.calib_size, len(pairs), name == cfg.analysis_set), calib)
    sigs = {p: recs[p]["sig"] for p in poles}
    n_null = max(cfg.setting("null_draws"), cfg.setting("matched_null_draws"))
    with study.timed(f"{name}: label-swapped null signatures"):
        null_sigs = study.cached_torch("null-sigs", (set_key, cfg.calib_size, n_null, cfg.seed),
                                       lambda: _null_signatures(study, name, ps, recs, live, n_null))

    # -- masks
    masks = {}
    with study.timed(f"{name}: masks"):
        for method in MAIN_METHODS:
            masks[method] = build_masks(model, method, sigs, sparsity=cfg.sparsity, statistic=cfg.statistic, modules=cfg.modules)
        rnd, rnd2 = study.random_masks()
        # label-swapped contrastive-Wanda masks at the study's sparsity: the soft-mask dial's nulls and the
        # restore ablation's gate
        null_cw = [build_masks(model, "contrastive-wanda", ns, sparsity=cfg.sparsity, statistic=cfg.statistic,
                               modules=cfg.modules) for ns in null_sigs]

    # -- conditions
    results, scores = [], {}
    def run(cond, fn, report_poles):
        s = study.scores(set_key, cond, fn)
        scores[cond] = s
        for p in report_poles:
            r = summarize(s, ps.pole_index(p), condition=cond.split(":")[0], pole=p, seed=cfg.seed)
            d = r.to_dict()
            d["condition_key"] = cond
            results.append(d)
        return s

    with study.timed(f"{name}: baselines and masks"):
        dense = run("dense", lambda: score_choices(model, ps.test, batch_size=bs, capture_layers=range(n_layers),
                                                    progress=f"{name} dense" if study.progress else False), poles)
        res["answer_tokens"] = {p: float(dense.n_tokens[:, i].float().mean()) for i, p in enumerate(poles)}
        rags = {p: RagRetriever(ps.subset(cfg.calib_size), p, k=cfg.rag_k) for p in poles}
        for p in poles:
            run(f"prompt:{p}", lambda p=p: score_choices(model, ps.test, system=persona_prompt(ps, p), batch_size=bs), [p])
            rag = rags[p]
            run(f"rag:{p}", lambda rag=rag: score_choices(model, ps.test, contexts=rag.contexts(ps.test), batch_size=bs), [p])
        def rand_scores():
            with apply_mask(model, rnd):
                return score_choices(model, ps.test, batch_size=bs)
        run("random-mask", rand_scores, poles)
        for method in MAIN_METHODS:
            for p in poles:
                def masked(method=method, p=p):
                    with apply_mask(model, masks[method][p]):
                        return score_choices(model, ps.test, batch_size=bs)
                run(f"{method}:{p}", masked, [p])

    # -- steering: the layer (and a coefficient) chosen on calibration items only; the coefficients of
    #    the comparison come from the damage targets of the headline measurement
    with study.timed(f"{name}: steering"):
        layers = sorted({min(n_layers - 1, int(round(f * (n_layers - 1)))) for f in cfg.steer_layers_frac})
        n_sel = min(cfg.calib_size, len(ps.calibration))
        vecs = steering_vectors(recs[poles[0]]["resid"][:n_sel], recs[poles[1]]["resid"][:n_sel])
        if len(layers) * len(cfg.steer_coefs) == 1:  # one candidate: nothing to select
            sel = {"layer": layers[0], "coef": float(cfg.steer_coefs[0]), "table": []}
        else:
            sel = study.cached_json("steer-select", (set_key, layers, cfg.steer_coefs, cfg.steer_items, n_sel),
                                    lambda: asdict(select_steering(model, ps, vecs[layers], layers, cfg.steer_coefs,
                                                                   n_items=cfg.steer_items, batch_size=bs)))
        res["steering"] = sel
        v = vecs[sel["layer"]]
        null_vecs = label_swapped_directions(recs[poles[0]]["resid"][:n_sel], recs[poles[1]]["resid"][:n_sel],
                                             draws=n_null, seed=cfg.seed)[:, sel["layer"]]

    # -- supervised fine-tuning upper bound
    if name in cfg.sft_sets:
        with study.timed(f"{name}: LoRA fine-tuning"):
            res["sft"] = {}
            n_val = cfg.sft_texts // 2
            max_ep = cfg.setting("lora_max_epochs")
            for p in poles:
                def sft(p=p):
                    from ..interventions import Intervention
                    from ..matching import held_out_damage

                    cal = ps.calibration_pairs(p)
                    lora, cost = train_lora(model, cal[: cfg.sft_texts], epochs=max_ep, lr=3e-3, seed=cfg.seed, batch_size=8,
                                            val_pairs=cal[cfg.sft_texts: cfg.sft_texts + n_val],
                                            progress=f"{name}/{p} LoRA" if study.progress else False)
                    with lora.active():
                        s = score_choices(model, ps.test, batch_size=bs)
                    d = scores_to_dict(s)
                    d["cost"] = {**cost, "trained": lora.trained}
                    h = held_out_damage(model, [Intervention(lora=lora)], study.held_out_reference(), seed=cfg.seed)
                    d["damage_kl"], d["damage_kl_ci95"] = h.damage_kl, list(h.damage_kl_ci95)
                    return d
                d = study.cached_torch("sft-v3", (set_key, p, cfg.sft_texts, n_val, max_ep, cfg.seed,
                                                  study.held_out_reference().indices), sft)
                res["sft"][p] = {**d["cost"], "damage_kl": d["damage_kl"], "damage_kl_ci95": d["damage_kl_ci95"]}
                run(f"sft:{p}", lambda d=d: ChoiceScores(d["logp"], d["n_tokens"]), [p])

    res["conditions"] = results
    # -- pole contrasts: the same items under the pole-A vs the pole-B condition
    #    with, where a null exists, the null test, and the damage (KL on neutral text) of both conditions
    from ..interventions import Intervention
    from ..matching import held_out_damage

    ivs = {m: [Intervention(mask=masks[m][p]) for p in poles] for m in MAIN_METHODS}
    chat = study.chat_reference()
    ivs["prompt"] = [Intervention(system=persona_prompt(ps, p)) for p in poles]
    ivs["rag"] = [Intervention(context=rags[p].context(" ".join(chat.texts))) for p in poles]
    sft = None
    if res.get("sft"):
        per_pole = list(res["sft"].values())
        sft = {"damage_kl": float(np.mean([c_["damage_kl"] for c_ in per_pole])), "damage_kl_ci95": None,
               "trained": all(c_["trained"] for c_ in per_pole)}
    contrasts = []
    with study.timed(f"{name}: contrasts and damage"):
        for cond in ["prompt", "rag", *MAIN_METHODS, "sft"]:
            ka, kb = f"{cond}:{poles[0]}", f"{cond}:{poles[1]}"
            if ka not in scores or kb not in scores:
                continue
            d = pole_contrast(scores[ka], scores[kb], condition=cond, seed=cfg.seed).to_dict()
            if cond in ivs:
                ref = chat if cond in ("prompt", "rag") else study.held_out_reference()
                key = (cond, set_key, cfg.sparsity, cfg.statistic, cfg.modules, ref.indices, ref.chat, cfg.rag_k)
                d.update(study.cached_json("damage-v2", key, lambda cond=cond, ref=ref: {
                    k: v for k, v in held_out_damage(model, ivs[cond], ref, seed=cfg.seed).to_dict().items() if k != "per_pole"}))
            elif cond == "sft":
                d.update(damage_kl=sft["damage_kl"], trained=sft["trained"])
            contrasts.append(d)
    res["contrasts"] = contrasts

    curve_sets = cfg.setting("curve_sets")
    if "*" in curve_sets or name in curve_sets:
        from .headline import HeadlineInputs, run_headline

        # RAG's damage: each pole's context retrieved for the neutral texts (one query: all of them), placed
        # in the user turn before every neutral text, as before a question
        inp = HeadlineInputs(sigs=sigs, null_sigs=null_sigs, cw_masks=masks["contrastive-wanda"], null_cw_masks=null_cw,
                             vector=v, null_vectors=null_vecs, layer=sel["layer"], scores=scores,
                             reference_pairs={"prompt": ivs["prompt"], "rag": ivs["rag"]}, sft=sft)
        with study.timed(f"{name}: effect-damage curves and matched-damage table"):
            res["effect_damage"] = run_headline(study, name, ps, inp)

    # -- per-set analyses (no forward pass)
    with study.timed(f"{name}: mask analyses"):
        res["sparsity"] = {m: {p: sparsity_profile(masks[m][p]) for p in poles} for m in MAIN_METHODS}
        res["overlap"] = {m: mask_overlap(masks[m][poles[0]], masks[m][poles[1]]) for m in MAIN_METHODS}
        res["overlap"]["random"] = mask_overlap(rnd, rnd2)
    with study.timed(f"{name}: probes, similarity and neutral-text decoding"):
        res.update(representation_analyses(study, name, ps, set_key, recs, dense, masks))
    res["_masks"], res["_recs"], res["_scores"], res["_null_cw"] = masks, recs, scores, null_cw
    return res


def _null_signatures(study: Study, name: str, ps, recs: dict, live: dict, draws: int) -> list[dict]:
    """``draws`` label-swapped signature pairs of the first ``calib_size`` calibration items (the records of
    this run when both poles were just recorded; recorded again when the calibration came from the cache)."""
    from ..analysis.features import record_calibration
    from ..nulls import label_swapped_signatures
    from ..statistics import PerTextStats

    cfg, poles = study.cfg, ps.pole_names
    n = min(cfg.calib_size, len(ps.calibration))
    stats = []
    for p in poles:
        rec = live.get(p) or recs[p].get("rec")
        if rec is None:
            rec = record_calibration(study.model, ps.calibration_pairs(p)[:n], tokens=cfg.tokens, batch_size=cfg.batch_size)
        cut: dict[int, object] = {}  # layers sharing one input keep sharing one tensor
        per_text = {k: cut.setdefault(id(t), t[:n]) for k, t in rec.per_text.items()}
        stats.append(PerTextStats(per_text, rec.n_tok[:n], rec.model_id, rec.fingerprint, rec.tokens))
    return label_swapped_signatures(stats[0], stats[1], draws=draws, seed=cfg.seed, poles=poles, dataset=name,
                                    calibration_hash=ps.subset(cfg.calib_size).content_hash())


def representation_analyses(study: Study, name: str, ps, set_key, recs: dict, dense, masks: dict) -> dict:
    """Probes (with the bag-of-words and embedding baselines), split-half reliability of the pole
    difference (with its permutation null), and neutral-text decoding of the poles' contrastive-Wanda
    masks and persona prompts, next to two random masks of the same sparsity (a pair that differs in
    damage only: pole masks that are no more decodable than it give no evidence of persona structure). Training texts: the recorded calibration texts of both poles; held-out
    texts: both answers of every held-out item."""
    from ..analysis.capability import neutral_texts
    from ..analysis.features import answer_embeddings
    from ..analysis.probes import decode_intervention, probes_with_baselines
    from ..analysis.similarity import split_half_reliability
    from ..baselines import persona_prompt
    from ..interventions import apply_mask

    cfg, model = study.cfg, study.model
    poles = ps.pole_names
    ra, rb = recs[poles[0]]["resid"], recs[poles[1]]["resid"]
    pairs = [ps.calibration_pairs(p)[: len(r)] for p, r in ((poles[0], ra), (poles[1], rb))]
    out: dict = {}

    def probes():
        feats = dense.features  # [n, 2, layer, d]: answer A, answer B of held-out items
        test_pairs = [(it.question, it.answer_a) for it in ps.test] + [(it.question, it.answer_b) for it in ps.test]
        train_pairs = pairs[0] + pairs[1]
        return probes_with_baselines(
            torch.cat([ra, rb]).numpy(), np.r_[np.zeros(len(ra), int), np.ones(len(rb), int)],
            torch.cat([feats[:, 0], feats[:, 1]]).numpy(), np.r_[np.zeros(len(feats), int), np.ones(len(feats), int)],
            train_texts=[a for _, a in train_pairs], test_texts=[a for _, a in test_pairs],
            train_embed=answer_embeddings(model, train_pairs).numpy(), test_embed=answer_embeddings(model, test_pairs).numpy(),
            test_groups=np.r_[np.arange(len(feats)), np.arange(len(feats))], seed=cfg.seed)
    out["probes"] = study.cached_json("probes-v2", (set_key, len(ra), len(rb), cfg.seed), probes)

    n_split, n_perm = cfg.setting("similarity_splits"), cfg.setting("similarity_permutations")
    out["similarity"] = study.cached_json("similarity-v2", (set_key, len(ra), len(rb), n_split, n_perm, cfg.seed),
                                          lambda: split_half_reliability(ra, rb, n_splits=n_split, n_permutations=n_perm,
                                                                         seed=cfg.seed))

    texts = neutral_texts(cfg.setting("neutral_probe_texts"))
    cw = masks["contrastive-wanda"]
    conditions = {
        "contrastive-wanda masks": (lambda: apply_mask(model, cw[poles[0]]), lambda: apply_mask(model, cw[poles[1]])),
        "persona prompts": (persona_prompt(ps, poles[0]), persona_prompt(ps, poles[1])),
    }
    # reference: two random masks of the same sparsity and row structure differ as much in damage; they
    # do not depend on the set, so this pair is decoded once per study
    rnd = study.random_masks()
    conditions[RANDOM_PAIR] = (lambda: apply_mask(model, rnd[0]), lambda: apply_mask(model, rnd[1]))
    n_tok = cfg.setting("neutral_probe_tokens")
    out["neutral_decoding"] = {}
    for label, (ia, ib) in conditions.items():
        key = ((None if label == RANDOM_PAIR else set_key), label, len(texts), n_tok, cfg.calib_size, cfg.sparsity,
               cfg.statistic, cfg.modules, cfg.seed)
        d = study.cached_json("neutral-decode", key, lambda ia=ia, ib=ib: decode_intervention(
            model, ia, ib, texts, seed=cfg.seed, batch_size=cfg.batch_size, max_tokens=n_tok))
        out["neutral_decoding"][label] = {"poles": ["random mask 1", "random mask 2"] if label == RANDOM_PAIR else poles, **d}
    return out
