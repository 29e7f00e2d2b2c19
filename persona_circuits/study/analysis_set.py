"""The study's analysis-set stage: ablations (restore layer groups, matched-count removals), bootstrap
stability, sparsity and calibration-size sweeps, general capability, on the analysis set's first
``analysis_items`` held-out items, reusing the set's masks and calibration records."""

from __future__ import annotations

from ..measure.evaluation import ChoiceScores
from ..results import AnalysisSet, Capability, CapabilityRow, NullGate, Restore, StabilityRow, Sweep, SweepRow
from .config import SETTINGS
from .setup import SetRun
from .stage import stage
from .state import Study


@stage("analysis-scores", settings=(SETTINGS.analysis.analysis_items,), store="torch", version=3, result=ChoiceScores)
def analysis_scores(study: Study, *, run: SetRun, mask, dense_layers: list[str]) -> ChoiceScores:
    """Scores of the analysis items with ``mask`` applied (``None``: dense) and ``dense_layers`` left dense."""
    from ..measure.evaluation import score_choices
    from ..model.interventions import apply_mask

    with apply_mask(study.model, mask, dense_layers=set(dense_layers)):
        return score_choices(study.model, run.ps.test[: study.cfg.analysis.analysis_items], batch_size=study.cfg.batch_size)


def _scorer(study: Study, run: SetRun):
    def score(label, mask, dense_layers=frozenset()):
        return analysis_scores(study, run=run, mask=mask, dense_layers=sorted(dense_layers))

    return score


def _restore(study: Study, run: SetRun, score) -> Restore:
    """Restore layer groups to dense inside both poles' contrastive-Wanda masks, gated by the full masks'
    contrast against their label-swapped nulls on the same items (nulls.null_test)."""
    from ..analysis.ablation import group_layers, layer_groups, restore_ablation
    from ..measure.evaluation import pole_contrast
    from ..measure.nulls import null_test

    cfg, poles = study.cfg, run.poles
    ma, mb = run.masks["contrastive-wanda"][poles[0]], run.masks["contrastive-wanda"][poles[1]]
    groups = [(f"blocks {g[0]}-{g[-1]}", group_layers(ma, blocks=g))
              for g in layer_groups(study.model.cfg.n_layers, cfg.analysis.ablation_groups)]
    groups += [("all attention", group_layers(ma, kind="attn")), ("all MLP", group_layers(ma, kind="mlp"))]
    full = pole_contrast(score("full:a", ma), score("full:b", mb), condition="full", seed=cfg.seed)
    nulls = [pole_contrast(score(f"null-full:{i}:a", p[poles[0]]), score(f"null-full:{i}:b", p[poles[1]]),
                           condition="null", seed=cfg.seed).shift for i, p in enumerate(run.null_cw_masks(study.model, cfg))]
    t = null_test(full.shift, nulls, shift_ci95=full.shift_ci95)
    gate = NullGate(test=f"null_test: the full contrast exceeds the one-sided 95 % prediction bound of {len(nulls)} "
                         "label-swapped mask pairs on the same items, with its interval above 0",
                    passed=bool(t.persona_specific), null_draws=t.null_draws, null_threshold=t.null_threshold,
                    null_shift_mean=t.null_shift_mean, null_shift_sd=t.null_shift_sd, null_p_value=t.null_p_value,
                    null_z=t.null_z, persona_specific=t.persona_specific, center=t.center, p_value=t.p_value,
                    detectable_shift=t.detectable_shift, null_mean_t=t.null_mean_t)
    return restore_ablation(study.model, run.ps.test[: cfg.analysis.analysis_items], ma, mb, groups, scorer=score,
                            seed=cfg.seed, gate=gate, method="contrastive-wanda", poles=poles)


@stage("stability", settings=(SETTINGS.analysis.n_boot, SETTINGS.masks, SETTINGS.sets.calib_size), version=2,
       result=list[StabilityRow])
def stability(study: Study, *, run: SetRun) -> list[StabilityRow]:
    """Masks from bootstrap resamples of the calibration texts: their pairwise overlap against random masks'."""
    from ..analysis.stability import bootstrap_stability

    cfg = study.cfg
    ra, rb = (run.stats[p] for p in run.poles)
    return [bootstrap_stability(study.model, ra, rb, run.poles, method=meth, sparsity=cfg.masks.sparsity,
                                n_boot=cfg.analysis.n_boot, seed=cfg.seed, modules=cfg.masks.modules,
                                n_texts=cfg.sets.calib_size) for meth in ("wanda", "contrastive-wanda")]


def _sweep_row(study: Study, run: SetRun, score, label: str, sigs: dict, sparsity: float) -> SweepRow:
    from ..measure.evaluation import pole_contrast, summarize
    from ..masks.registry import build_masks

    poles, cfg = run.poles, study.cfg
    mm = build_masks(study.model, "contrastive-wanda", sigs, sparsity=sparsity, modules=cfg.masks.modules)
    sc = {p: score(f"{label}:{p}", mm[p]) for p in poles}
    return SweepRow(contrast=pole_contrast(sc[poles[0]], sc[poles[1]], condition=label, seed=cfg.seed),
                    per_pole={p: summarize(sc[p], i, condition="", pole=p, seed=cfg.seed) for i, p in enumerate(poles)})


def _sweeps(study: Study, run: SetRun, score) -> tuple[Sweep, Sweep]:
    """The sparsity sweep and the calibration-size sweep of the contrastive-Wanda masks."""
    cfg, poles = study.cfg, run.poles
    ra, rb = (run.stats[p] for p in poles)
    rows = [_sweep_row(study, run, score, f"rho={rho}", run.sigs, rho).update(sparsity=rho)
            for rho in cfg.analysis.sweep_sparsities]
    crows = []
    for n in cfg.analysis.sweep_calib_sizes:
        n_eff = min(n, len(ra), len(rb))
        sg = {poles[0]: ra.signature(range(n_eff), pole=poles[0]), poles[1]: rb.signature(range(n_eff), pole=poles[1])}
        crows.append(_sweep_row(study, run, score, f"n={n_eff}", sg, cfg.masks.sparsity).update(calib_size=n_eff))
    return (Sweep(method="contrastive-wanda", calib_size=cfg.sets.calib_size, rows=rows),
            Sweep(method="contrastive-wanda", sparsity=cfg.masks.sparsity, rows=crows))


@stage("capability", settings=(SETTINGS.analysis.capability_texts, SETTINGS.analysis.capability_items), version=2,
       result=Capability)
def capability(study: Study, *, mask) -> Capability:
    """Perplexity on neutral text and general-choice accuracy with ``mask`` applied (``None``: dense)."""
    from ..analysis.capability import choice_accuracy, general_choice_items, neutral_texts, perplexity
    from ..model.interventions import apply_mask

    a, model, bs = study.cfg.analysis, study.model, study.cfg.batch_size
    with apply_mask(model, mask):
        return Capability(perplexity=perplexity(model, neutral_texts(a.capability_texts), batch_size=bs),
                          general_choice=choice_accuracy(model, general_choice_items(a.capability_items), batch_size=bs,
                                                         seed=study.cfg.seed))


def run_analysis_set(study: Study, run: SetRun) -> AnalysisSet:
    """Ablations, stability, sweeps and capability checks on the analysis set (see the module docstring)."""
    from ..analysis.ablation import removal_comparison

    cfg, name = study.cfg, run.name
    score = _scorer(study, run)
    out = AnalysisSet(set=name, n_items=min(len(run.ps.test), cfg.analysis.analysis_items))
    with study.timed(f"{name}: ablation"):
        out.restore = _restore(study, run, score)
        out.removal = removal_comparison(
            study.model, run.ps.test[: cfg.analysis.analysis_items], *run.sigs.values(), cfg.analysis.removal_fractions,
            modules=cfg.masks.modules, statistic=cfg.masks.statistic, seed=cfg.seed, scorer=score, poles=run.poles)
    if cfg.analysis.n_boot >= 2:  # pairwise overlaps need two resamples (the quick study skips it)
        with study.timed(f"{name}: stability"):
            out.stability = stability(study, run=run)
    with study.timed(f"{name}: sparsity and calibration-size sweeps"):
        out.sparsity_sweep, out.calibration_sweep = _sweeps(study, run, score)
    with study.timed(f"{name}: general capability"):
        conds = [("dense", None), ("random mask", study.random_masks()[0])]
        conds += [(f"{m} ({run.poles[0]})", run.masks[m][run.poles[0]]) for m in cfg.analysis.capability_methods]
        out.capability = []
        for label, mask in conds:
            c = capability(study, mask=mask)
            out.capability.append(CapabilityRow(condition=label, perplexity=c.perplexity, general_choice=c.general_choice))
    return out
