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

from .conditions import run_conditions
from .config import StudyConfig
from .gate_analysis import gate_analysis, gate_enabled
from .headline import run_headline
from .representation import representation_analyses
from .sets import StudySet, check_data_root, study_sets
from .setup import SetRun, prepare_set
from .state import Study, claim_output, log

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


def free_memory(model) -> None:
    """Between sets: forget the replayed steering outputs of the last set's inputs and collect cycles."""
    import gc

    from ..plain import plain_model
    from ..replay import forget

    plain = plain_model(model)
    if plain is not None:
        forget(plain)
    gc.collect()


def study_identity(model, cfg: StudyConfig, root: Path | None) -> dict:
    from ..models import architecture_fingerprint, get_model_id

    return {"model": get_model_id(model), "fingerprint": architecture_fingerprint(model), "config": cfg.to_dict(),
            "data_root": str(root) if root else None, "format": 2,
            "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}


def study_meta(study: Study, identity: dict, command: str, t0: float) -> dict:
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

    The study is its shards in sequence (:mod:`.shards`: every set's, then the cross-set stages, with the
    cross-set inputs kept in memory), merged by :func:`~.merge.merge_payloads`: the same numbers as
    ``reproduce --shard`` of each shard followed by ``persona-circuits merge``.

    Args:
        cfg: the settings (:meth:`StudyConfig.full` or :meth:`StudyConfig.quick_preset`, or your own).
        data_root: a folder laid out like ``shared/data`` (the AI-persona tasks).
        cache_from: output folders of other studies whose cached stage results this one reuses where their
            keys match (e.g. a seven-set study resuming the stages of a four-set one).
    """
    import json

    from ..results import paper_numbers
    from .merge import merge_payloads, write_outputs
    from .shards import CrossInputs, cross_shard, set_shard, shard_identity

    t0 = time.perf_counter()
    root = check_data_root(str(data_root) if data_root is not None else None)
    out = Path(out)
    identity = study_identity(model, cfg, root)
    lock = claim_output(out, identity)
    try:
        study = Study(model, out, cfg, root, progress)
        for src in cache_from or []:
            log(f"reusing {study.cache.seed_from(Path(src))} cached stage results of {src}")
        sets = study_sets(cfg, root)
        sid = shard_identity(model, cfg, sets)
        keep = CrossInputs()
        payloads = [set_shard(study, sset, sid, keep) for sset in sets]
        study.timings = {}
        payloads.append(cross_shard(study, sets, sid, keep))
        paper = paper_numbers(root)
        # merged as the shards would be read back from their folders (plain JSON)
        payloads = [json.loads(json.dumps({**p, "paper": paper})) for p in payloads]
        results = merge_payloads(payloads)
        results["meta"] = study_meta(study, identity, command, t0)
        typed = write_outputs(results, out)
    finally:
        lock.release()
    log(f"wrote {out / 'results.json'}, {out / 'REPORT.md'} and {out / 'figures'} in {time.perf_counter() - t0:.0f} s")
    return typed
