"""The main job: ``persona-circuits reproduce`` runs the whole study and writes results, report, figures.

For every bundled persona pair (and, with ``--data-root``, the paper's three AI-persona tasks):
calibration (one pass: per-text statistics and residual features), masks of every method, every
baseline (dense, persona prompt, RAG, random mask, steering, LoRA fine-tuning, mask + prompt) for both
poles with their pole contrast, and the per-set analyses (sparsity, overlap, probes, similarity).
On one analysis set it also runs the ablations, the bootstrap stability, the sparsity and
calibration-size sweeps and the general-capability checks. Every stage is cached under
``DIR/cache`` by a content hash (model, data, stage settings), so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write_json, atomic_write_text
from .errors import OutputError, PersonaCircuitsError

AI_TASKS = ("power", "wealth", "hallucination")
STUDY_FILE = "study.json"
MAIN_METHODS = ("wanda", "contrastive-wanda", "contrastive-sparse")


class StudyError(PersonaCircuitsError):
    """The study cannot run with these arguments (bad data root, foreign output folder...)."""


@dataclass
class StudyConfig:
    """Sizes and settings of a study run (``quick`` or full)."""

    quick: bool = False
    sets: tuple[str, ...] | None = None  # None: every bundled set and, with a data root, every AI task
    calib_size: int = 128
    calib_record: int = 160  # texts recorded per pole on the analysis set (calibration-size sweep)
    test_size_mbti: int | None = 60  # None: every held-out item
    test_size_ai: int | None = 48
    sparsity: float = 0.5
    statistic: str = "l2"
    tokens: str = "answer"
    modules: str = "all"
    rag_k: int = 2
    steer_layers_frac: tuple[float, ...] = (0.33, 0.67)
    steer_coefs: tuple[float, ...] = (2.0, 8.0)
    steer_items: int = 6
    sft_sets: tuple[str, ...] = ("power", "wealth", "hallucination")
    sft_texts: int = 32
    sft_epochs: int = 2
    analysis_set: str = "mbti-ei"
    analysis_items: int = 32
    sweep_sparsities: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
    sweep_calib_sizes: tuple[int, ...] = (8, 32, 160)
    n_boot: int = 5
    ablation_groups: int = 3
    removal_fractions: tuple[float, ...] = (0.01, 0.1)
    capability_texts: int = 30
    capability_items: int = 80
    capability_methods: tuple[str, ...] = MAIN_METHODS
    batch_size: int = 16
    seed: int = 0

    @classmethod
    def quick_config(cls) -> "StudyConfig":
        return cls(quick=True, sets=("mbti-ei", "power"), calib_size=8, calib_record=8, test_size_mbti=4, test_size_ai=4, steer_layers_frac=(0.5,),
                   steer_coefs=(4.0,), steer_items=2, sft_sets=("mbti-ei",), sft_texts=4, sft_epochs=1,
                   analysis_items=2, sweep_sparsities=(0.1, 0.7), sweep_calib_sizes=(4, 8), n_boot=2,
                   ablation_groups=2, removal_fractions=(0.05,), capability_texts=2, capability_items=4,
                   capability_methods=("contrastive-wanda",))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "StudyConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Study:
    """State of one run: model, output folder, cache, results."""

    def __init__(self, model, out: Path, cfg: StudyConfig, data_root: Path | None, progress: bool = True) -> None:
        self.model, self.out, self.cfg, self.data_root, self.progress = model, out, cfg, data_root, progress
        self.cache = out / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        from .models import architecture_fingerprint, get_model_id

        self.model_key = (get_model_id(model), architecture_fingerprint(model))
        self.results: dict = {"sets": {}, "timings": {}}

    # ---- caching
    def _path(self, kind: str, key: str, ext: str) -> Path:
        return self.cache / f"{kind}-{key}.{ext}"

    def cached_json(self, kind: str, parts, fn):
        p = self._path(kind, _hash(self.model_key, parts), "json")
        if p.is_file():
            return json.loads(p.read_text())
        val = fn()
        atomic_write_json(p, val)
        return val

    def cached_torch(self, kind: str, parts, fn):
        p = self._path(kind, _hash(self.model_key, parts), "pt")
        if p.is_file():
            return torch.load(p, weights_only=False)
        val = fn()
        tmp = p.with_suffix(".tmp")
        torch.save(val, tmp)
        os.replace(tmp, p)
        return val

    def scores(self, set_key: str, cond: str, fn):
        from .evaluation import ChoiceScores

        d = self.cached_torch("scores", (set_key, cond), lambda: _scores_to_dict(fn()))
        return ChoiceScores(d["logp"], d["n_tokens"], d.get("features"))

    def random_masks(self):
        """Two random masks of the study's sparsity (pole- and set-independent: built once)."""
        if not hasattr(self, "_random"):
            from .masks import random_mask

            c = self.cfg
            self._random = tuple(random_mask(self.model, sparsity=c.sparsity, modules=c.modules, seed=c.seed + i) for i in (0, 1))
        return self._random

    def timed(self, name: str):
        study = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()
                _log(f"start {name}")

            def __exit__(self, *exc):
                dt = time.perf_counter() - self.t
                study.results["timings"][name] = round(dt, 2)
                _log(f"done  {name} ({dt:.1f} s)")

        return _T()


def _scores_to_dict(s) -> dict:
    d = {"logp": s.logp, "n_tokens": s.n_tokens}
    if s.features is not None:
        d["features"] = s.features
    return d


# --------------------------------------------------------------------------------------------
# One persona set


def _persona_sets(cfg: StudyConfig, data_root: Path | None) -> list[tuple[str, object, str]]:
    from .data import bundled_personas, load_persona_set

    out = []
    for name in bundled_personas():
        if cfg.sets is not None and name not in cfg.sets:
            continue
        ps = load_persona_set(name)
        out.append((name, ps.subset(max(cfg.calib_size, cfg.calib_record if name == cfg.analysis_set else 0),
                                     cfg.test_size_mbti), "mbti"))
    if data_root is not None:
        for t in AI_TASKS:
            if cfg.sets is not None and t not in cfg.sets:
                continue
            ps = load_persona_set(data_root / "ai_persona" / t)
            out.append((t, ps.subset(max(cfg.calib_size, cfg.calib_record if t == cfg.analysis_set else 0),
                                     cfg.test_size_ai), "ai"))
    return out


def run_set(study: Study, name: str, ps, family: str) -> dict:
    from .analysis.features import record_calibration
    from .analysis.overlap import mask_overlap
    from .analysis.probes import layer_probes
    from .analysis.similarity import layer_cosine
    from .analysis.sparsity import sparsity_profile
    from .baselines import RagRetriever, persona_prompt, select_steering, steering_vectors, train_lora
    from .evaluation import ChoiceScores, pole_contrast, score_choices, summarize
    from .interventions import ResidualSteering, apply_mask, steering
    from .masks import build_masks

    cfg, model = study.cfg, study.model
    poles = ps.pole_names
    n_layers = model.cfg.n_layers
    set_key = (name, ps.content_hash(), [it.id for it in ps.test], cfg.tokens)
    res: dict = {"family": family, "poles": poles, "n_calibration": min(cfg.calib_size, len(ps.calibration)),
                 "n_test": len(ps.test), "source": ps.source}
    bs = cfg.batch_size

    # -- calibration: per pole, one pass (signature of the first calib_size texts, residual features)
    recs = {}
    with study.timed(f"{name}: calibration"):
        for p in poles:
            pairs = ps.calibration_pairs(p)
            def calib(p=p, pairs=pairs):
                rec = record_calibration(model, pairs, tokens=cfg.tokens, batch_size=bs,
                                         progress=f"{name}/{p} calibration" if study.progress else False)
                return {"rec": rec if name == cfg.analysis_set else None, "resid": rec.resid,
                        "sig": rec.signature(range(min(cfg.calib_size, len(pairs))), pole=p, dataset=name,
                                             calibration_hash=ps.subset(cfg.calib_size).content_hash())}
            recs[p] = study.cached_torch("calib", (set_key, p, cfg.calib_size, len(pairs), name == cfg.analysis_set), calib)
    sigs = {p: recs[p]["sig"] for p in poles}

    # -- masks
    masks = {}
    with study.timed(f"{name}: masks"):
        for method in MAIN_METHODS:
            masks[method] = build_masks(model, method, sigs, sparsity=cfg.sparsity, statistic=cfg.statistic, modules=cfg.modules)
        rnd, rnd2 = study.random_masks()

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
        for p in poles:
            run(f"prompt:{p}", lambda p=p: score_choices(model, ps.test, system=persona_prompt(ps, p), batch_size=bs), [p])
            rag = RagRetriever(ps.subset(cfg.calib_size), p, k=cfg.rag_k)
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
        for p in poles:
            def mp(p=p):
                with apply_mask(model, masks["contrastive-wanda"][p]):
                    return score_choices(model, ps.test, system=persona_prompt(ps, p), batch_size=bs)
            run(f"contrastive-wanda+prompt:{p}", mp, [p])

    # -- steering (layer and coefficient chosen on calibration items only)
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
        for p, sign in zip(poles, (1.0, -1.0)):
            def steered(sign=sign):
                with steering(model, ResidualSteering(v, sel["layer"], sign * sel["coef"])):
                    return score_choices(model, ps.test, batch_size=bs)
            run(f"steering:{p}", steered, [p])

    # -- supervised fine-tuning upper bound
    if name in cfg.sft_sets:
        with study.timed(f"{name}: LoRA fine-tuning"):
            res["sft"] = {}
            for p in poles:
                def sft(p=p):
                    lora, cost = train_lora(model, ps.calibration_pairs(p)[: cfg.sft_texts], epochs=cfg.sft_epochs,
                                            seed=cfg.seed, batch_size=8, progress=f"{name}/{p} LoRA" if study.progress else False)
                    with lora.active():
                        s = score_choices(model, ps.test, batch_size=bs)
                    d = _scores_to_dict(s)
                    d["cost"] = cost
                    return d
                d = study.cached_torch("sft", (set_key, p, cfg.sft_texts, cfg.sft_epochs, cfg.seed), sft)
                res["sft"][p] = d["cost"]
                run(f"sft:{p}", lambda d=d: ChoiceScores(d["logp"], d["n_tokens"]), [p])

    res["conditions"] = results
    # -- pole contrasts: the same items under the pole-A vs the pole-B condition
    contrasts = []
    for cond in ["prompt", "rag", "steering", *MAIN_METHODS, "contrastive-wanda+prompt", "sft"]:
        ka, kb = f"{cond}:{poles[0]}", f"{cond}:{poles[1]}"
        if ka in scores and kb in scores:
            contrasts.append(pole_contrast(scores[ka], scores[kb], condition=cond, seed=cfg.seed).to_dict())
    res["contrasts"] = contrasts

    # -- per-set analyses (no forward pass)
    with study.timed(f"{name}: mask analyses"):
        res["sparsity"] = {m: {p: sparsity_profile(masks[m][p]) for p in poles} for m in MAIN_METHODS}
        res["overlap"] = {m: mask_overlap(masks[m][poles[0]], masks[m][poles[1]]) for m in MAIN_METHODS}
        res["overlap"]["random"] = mask_overlap(rnd, rnd2)
    with study.timed(f"{name}: probes and similarity"):
        ra, rb = recs[poles[0]]["resid"], recs[poles[1]]["resid"]
        tx = torch.cat([ra, rb]).numpy()
        ty = np.r_[np.zeros(len(ra), int), np.ones(len(rb), int)]
        feats = dense.features  # [n, 2, layer, d]: answer A, answer B of held-out items
        ex = torch.cat([feats[:, 0], feats[:, 1]]).numpy()
        ey = np.r_[np.zeros(len(feats), int), np.ones(len(feats), int)]
        res["probes"] = study.cached_json("probes", (set_key, len(ra), cfg.seed),
                                          lambda: layer_probes(tx, ty, ex, ey, seed=cfg.seed))
        res["similarity"] = layer_cosine(ra, rb, seed=cfg.seed)
    res["_masks"], res["_recs"], res["_scores"] = masks, recs, scores
    return res


# --------------------------------------------------------------------------------------------
# Analysis-set experiments


def run_analysis_set(study: Study, name: str, ps, set_res: dict) -> dict:
    from .analysis.ablation import group_layers, layer_groups, random_removal, top_contrastive_removal
    from .analysis.capability import choice_accuracy, general_choice_items, neutral_texts, perplexity
    from .analysis.stability import bootstrap_stability
    from .evaluation import pole_contrast, score_choices, summarize
    from .interventions import apply_mask
    from .masks import build_masks

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

    dense = scored("dense", None)

    def effect(s, pole_index):
        sign = 1.0 if pole_index == 0 else -1.0
        return float(sign * (s.diff(True) - dense.diff(True)).mean())

    # -- ablation 1: restore groups of layers to dense inside the pole-A contrastive-Wanda mask
    with study.timed(f"{name}: ablation"):
        m = masks["contrastive-wanda"][poles[0]]
        full = scored("cw-full", m)
        base_effect = effect(full, 0)
        rows = []
        groups = [("blocks %d-%d" % (g[0], g[-1]), group_layers(m, blocks=g)) for g in layer_groups(model.cfg.n_layers, cfg.ablation_groups)]
        groups += [("all attention", group_layers(m, kind="attn")), ("all MLP", group_layers(m, kind="mlp"))]
        for label, names in groups:
            s = scored(f"restore:{label}", m, dense_layers=names)
            e = effect(s, 0)
            rows.append({"restored": label, "effect": e, "fraction_of_effect_remaining": e / base_effect if base_effect else None})
        out["restore"] = {"method": "contrastive-wanda", "pole": poles[0], "full_mask_effect": base_effect, "rows": rows,
                          "effect_definition": "mean change vs dense of the per-token log-likelihood preference for the pole's answer"}
        # -- ablation 2: remove top contrastive weights from the dense model vs random weights
        sa, sb = recs[poles[0]]["sig"], recs[poles[1]]["sig"]
        rem = []
        for q in cfg.removal_fractions:
            for pi, (s1, s2) in enumerate(((sa, sb), (sb, sa))):
                top = scored(f"remove-top:{q}:{poles[pi]}", top_contrastive_removal(model, s1, s2, q, modules=cfg.modules))
                rem.append({"fraction": q, "pole_scored": poles[pi], "kind": "top contrastive", "effect": effect(top, pi)})
            rnd = scored(f"remove-random:{q}", random_removal(model, q, modules=cfg.modules, seed=cfg.seed))
            for pi in (0, 1):
                rem.append({"fraction": q, "pole_scored": poles[pi], "kind": "random", "effect": effect(rnd, pi)})
        out["removal"] = {"rows": rem, "effect_definition": "change vs dense of the per-token preference for the "
                          "pole whose top-scored weights were removed (random: for each pole)"}

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


# --------------------------------------------------------------------------------------------
# Entry points


def _check_data_root(root: str | None) -> Path | None:
    if root is None:
        return None
    p = Path(root)
    missing = [f"ai_persona/{t}/{f}" for t in AI_TASKS for f in ("train.csv", "test_ab.csv") if not (p / "ai_persona" / t / f).is_file()]
    if missing:
        raise StudyError(f"--data-root {p} does not have the expected layout (missing {', '.join(missing[:3])}"
                         f"{'...' if len(missing) > 3 else ''}); point it at a folder laid out like shared/data")
    return p.resolve()


def _norm_identity(identity: dict) -> dict:
    """Identity with unset (None) config options dropped, as written by every version."""
    cfg = {k: v for k, v in (identity.get("config") or {}).items() if v is not None}
    return {**identity, "config": cfg}


def _claim_output(out: Path, identity: dict) -> None:
    """Create or resume ``out``; refuse a folder that holds something else."""
    identity = json.loads(json.dumps(identity))  # compare as stored (tuples become lists)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a folder: {out}")
    if not out.parent.is_dir():
        raise OutputError(f"output folder's parent does not exist: {out.parent}")
    sf = out / STUDY_FILE
    if out.is_dir() and any(out.iterdir()):
        if not sf.is_file():
            raise StudyError(f"{out} is not empty and holds no {STUDY_FILE}: refusing to write a study there")
        try:
            old = json.loads(sf.read_text())
        except json.JSONDecodeError as exc:
            raise StudyError(f"{sf}: unreadable ({exc.msg})") from exc
        old, new = _norm_identity(old), _norm_identity(identity)
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise StudyError(f"{out} holds a different study (differs in {', '.join(diff)}); choose another --out")
        _log(f"resuming the study in {out}")
    out.mkdir(exist_ok=True)
    atomic_write_json(sf, identity)


def run_study(model, out: str | Path, *, cfg: StudyConfig, data_root: str | Path | None = None,
              progress: bool = True, command: str = "") -> dict:
    """Run the whole study with a loaded model; write results.json, REPORT.md and figures/ under ``out``."""
    from .models import architecture_fingerprint, get_model_id
    from .plots import write_figures
    from .report import write_report

    t0 = time.perf_counter()
    root = _check_data_root(str(data_root) if data_root is not None else None)
    out = Path(out)
    identity = {"model": get_model_id(model), "fingerprint": architecture_fingerprint(model),
                # options left unset (None) are omitted, so adding an option keeps old studies resumable
                "config": {k: v for k, v in cfg.to_dict().items() if v is not None},
                "data_root": str(root) if root else None, "format": 1}
    _claim_output(out, identity)
    study = Study(model, out, cfg, root, progress)
    torch.manual_seed(cfg.seed)
    sets = _persona_sets(cfg, root)
    analysis = None
    for name, ps, fam in sets:
        r = run_set(study, name, ps, fam)
        if name == cfg.analysis_set:
            analysis = run_analysis_set(study, name, ps, r)
        study.results["sets"][name] = {k: v for k, v in r.items() if not k.startswith("_")}
        del r
    study.results["analysis"] = analysis
    study.results["meta"] = {
        **identity, "command": command, "quick": cfg.quick, "package_version": __import__("persona_circuits").__version__,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    from .report import paper_numbers

    study.results["paper"] = paper_numbers(root)
    atomic_write_json(out / "results.json", study.results)
    write_figures(study.results, out / "figures")
    write_report(study.results, out / "REPORT.md")
    _log(f"wrote {out / 'results.json'}, {out / 'REPORT.md'} and {out / 'figures'} in {time.perf_counter() - t0:.0f} s")
    return study.results


def add_reproduce_parser(sub, common) -> None:
    s = sub.add_parser("reproduce", help="run the whole study: baselines, masks, analyses; write results.json, REPORT.md, figures",
                       description="Run the whole study on the model (default: embedded SmolLM2-135M-Instruct) for every "
                                   "bundled MBTI persona pair and, with --data-root, the paper's AI-persona tasks. "
                                   "Stages are cached under OUT/cache; rerunning the same command resumes.")
    s.add_argument("--out", required=True, help="output folder (created; resumed if it holds the same study)")
    s.add_argument("--quick", action="store_true", help="reduced run (about 2.5 min on 2 cores): one MBTI set (mbti-ei) and, "
                   "with --data-root, one AI task (power), a few items each, fewer sweep points")
    s.add_argument("--data-root", default=None, help="folder laid out like shared/data (ai_persona/{power,wealth,hallucination})")
    common(s)


def cmd_reproduce(args) -> int:
    from .cli import _load

    cfg = StudyConfig.quick_config() if args.quick else StudyConfig()
    cfg.seed = args.seed
    cfg.batch_size = args.batch_size
    if args.data_root is not None:
        _check_data_root(args.data_root)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise OutputError(f"output folder's parent does not exist: {out.parent}")
    model = _load(args)
    run_study(model, out, cfg=cfg, data_root=args.data_root, progress=not args.no_progress,
              command="persona-circuits " + " ".join(sys.argv[1:]))
    return 0
