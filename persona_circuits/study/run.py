"""Run the whole study: every persona set's stages, the analysis-set stage, the verdicts, then
``results.json`` (the typed results contract, :mod:`persona_circuits.results`), ``REPORT.md`` and the
figures (:mod:`persona_circuits.reporting`)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .analysis_set import run_analysis_set
from .conditions import run_conditions
from .config import StudyConfig
from .gate_analysis import cross_set_overlap, gate_analysis, gate_enabled
from .headline import run_headline
from .representation import representation_analyses
from .sets import StudySet, check_data_root, study_sets
from .setup import SetRun, prepare_set
from .state import Study, claim_output, log
from .verdicts import apply_verdicts

if TYPE_CHECKING:
    from ..models import Model


def _mask_analyses(study: Study, run: SetRun) -> dict:
    from ..analysis.overlap import mask_overlap
    from ..analysis.sparsity import sparsity_profile

    poles = run.poles
    out = {"sparsity": {m: {p: sparsity_profile(run.masks[m][p]) for p in poles} for m in run.masks},
           "overlap": {m: mask_overlap(run.masks[m][poles[0]], run.masks[m][poles[1]]) for m in run.masks}}
    out["overlap"]["random"] = mask_overlap(*study.random_masks())
    return out


def _curves_on(cfg: StudyConfig, name: str) -> bool:
    return "*" in cfg.headline.curve_sets or name in cfg.headline.curve_sets


def run_set(study: Study, sset: StudySet) -> tuple[dict, SetRun]:
    """Every stage of one persona set; returns its results (plain data of :class:`~persona_circuits.results.SetResults`)
    and the in-memory :class:`SetRun` (for the analysis-set stage)."""
    run = prepare_set(study, sset)
    res: dict = {"family": sset.family, "poles": run.poles, "n_calibration": run.n_calib, "n_test": len(run.ps.test),
                 "source": run.ps.source, "tokens": sset.tokens, "steering": run.steering}
    res.update(run_conditions(study, run))
    if sset.family == "ai" and study.cfg.paper.enabled:
        from .paper_table import paper_table

        with study.timed(f"{sset.name}: paper table (released scoring)"):
            res["paper_table"] = paper_table(study, run)
    if _curves_on(study.cfg, sset.name):
        with study.timed(f"{sset.name}: effect-damage curves and matched-damage table"):
            res["headline"] = run_headline(study, run, res.get("sft"))
        if gate_enabled(study):
            with study.timed(f"{sset.name}: projection-gate analyses"):
                g = gate_analysis(study, run=run)
            res["gate"], run.gate_bits = g["summary"], g["bits"]
    with study.timed(f"{sset.name}: mask analyses"):
        res.update(_mask_analyses(study, run))
    with study.timed(f"{sset.name}: probes, similarity and neutral-text decoding"):
        res.update(representation_analyses(study, run))
    return res, run


def _free_memory(model) -> None:
    """Between sets: forget the replayed steering outputs of the last set's inputs and collect cycles."""
    import gc

    from ..plain import plain_model
    from ..replay import forget

    plain = plain_model(model)
    if plain is not None:
        forget(plain)
    gc.collect()


class _Kept:
    """What the stages after every set need of each set: the MBTI axes for the 16 types, every set for the atlas."""

    def __init__(self) -> None:
        self.axes, self.layers, self.atlas, self.gate = {}, [], [], {}

    def add(self, study: Study, run: SetRun, res: dict) -> None:
        from ..compose import MBTI_AXES
        from .atlas import atlas_input
        from .types import axis_state

        if study.cfg.types.enabled and run.name in {a for a, _, _ in MBTI_AXES} and run.sset.family == "mbti":
            self.axes[run.name] = axis_state(study, run, res.get("headline"))
            self.layers.append(run.steering["layer"])
        if study.cfg.atlas.enabled:
            self.atlas.append(atlas_input(run))
        if run.gate_bits is not None:
            self.gate[run.name] = run.gate_bits

    def finish(self, study: Study) -> dict:
        from ..compose import MBTI_AXES
        from .atlas import atlas_stage, extra_inputs
        from .types import run_types

        out: dict = {}
        if len(self.gate) >= 2:
            out["gate_overlap"] = cross_set_overlap(self.gate)
        if study.cfg.types.enabled and len(self.axes) == len(MBTI_AXES):
            layer = max(set(self.layers), key=self.layers.count)
            out["types"] = run_types(study, [self.axes[a] for a, _, _ in MBTI_AXES], layer)
        sets = self.atlas + (extra_inputs(study) if study.cfg.atlas.enabled else [])
        if len(sets) >= 2:
            with study.timed("atlas"):
                out["atlas"] = atlas_stage(study, sets=sets)
        return out


def _identity(model, cfg: StudyConfig, root: Path | None) -> dict:
    from ..models import architecture_fingerprint, get_model_id

    return {"model": get_model_id(model), "fingerprint": architecture_fingerprint(model), "config": cfg.to_dict(),
            "data_root": str(root) if root else None, "format": 2,
            "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}


def _meta(study: Study, identity: dict, command: str, t0: float) -> dict:
    from ..dtypes import cpu_model

    cfg = study.cfg
    flat = {"tokens": cfg.masks.tokens, "statistic": cfg.masks.statistic, "modules": cfg.masks.modules,
            "sparsity": cfg.masks.sparsity, "calib_size": cfg.sets.calib_size, "rag_k": cfg.baselines.rag_k,
            "seed": cfg.seed, "text_stat": "rms", "analysis_set": cfg.sets.analysis_set}
    return {**{k: v for k, v in identity.items() if k != "config"}, "config": flat, "study_config": identity["config"],
            "command": command, "quick": cfg.quick, "package_version": __import__("persona_circuits").__version__,
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def run_study(model: Model, out: str | Path, *, cfg: StudyConfig, data_root: str | Path | None = None,
              progress: bool = True, command: str = "", cache_from: list[str | Path] | None = None):
    """Run the whole study with a loaded model; write ``results.json``, ``REPORT.md`` and ``figures/`` under
    ``out``. Returns the typed :class:`~persona_circuits.results.StudyResults`.

    Args:
        cfg: the settings (:meth:`StudyConfig.full` or :meth:`StudyConfig.quick_preset`, or your own).
        data_root: a folder laid out like ``shared/data`` (the AI-persona tasks).
        cache_from: output folders of other studies whose cached stage results this one reuses where their
            keys match (e.g. a seven-set study resuming the stages of a four-set one).
    """
    from ..reporting.figures import write_figures
    from ..reporting.report import write_report
    from ..results import load_results, paper_numbers, write_results

    t0 = time.perf_counter()
    root = check_data_root(str(data_root) if data_root is not None else None)
    out = Path(out)
    identity = _identity(model, cfg, root)
    lock = claim_output(out, identity)
    try:
        study = Study(model, out, cfg, root, progress)
        for src in cache_from or []:
            log(f"reusing {study.cache.seed_from(Path(src))} cached stage results of {src}")
        torch.manual_seed(cfg.seed)
        results: dict = {"schema": 2, "sets": {}, "analysis": None}
        keep = _Kept()
        for sset in study_sets(cfg, root):
            res, run = run_set(study, sset)
            if sset.name == cfg.sets.analysis_set:
                results["analysis"] = run_analysis_set(study, run)
            results["sets"][sset.name] = res
            keep.add(study, run, res)
            run.release()
            del run
            _free_memory(model)
        results.update(keep.finish(study))
        apply_verdicts(results)
        results.update(meta=_meta(study, identity, command, t0), paper=paper_numbers(root), timings=study.timings)
        typed = load_results(results)
        write_results(typed, out / "results.json")
        write_figures(typed, out / "figures")
        write_report(typed, out / "REPORT.md")
    finally:
        lock.release()
    log(f"wrote {out / 'results.json'}, {out / 'REPORT.md'} and {out / 'figures'} in {time.perf_counter() - t0:.0f} s")
    return typed
