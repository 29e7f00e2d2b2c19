"""Every stage of one persona set in order (:func:`run_set`: setup, conditions, the paper table, the headline and
the gate's analyses, mask analyses, representations), and what a study records about itself (its identity and
meta). Below both the one-process study (:mod:`.run`) and the shards (:mod:`.shards`)."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from ..results import MaskOverlap, Meta, RunSettings, SetResults, SparsityProfile
from .conditions import run_conditions
from .config import StudyConfig
from .gate_analysis import gate_analysis, gate_enabled
from .headline import run_headline
from .representation import neutral_decoding, probes, similarity
from .sets import StudySet
from .setup import SetRun, prepare_set
from .state import Study, claim_output, log


def mask_sparsity(run: SetRun) -> dict[str, dict[str, SparsityProfile]]:
    """Each method's mask sparsity per pole (``{method: {pole: profile}}``)."""
    from ..analysis.sparsity import sparsity_profile

    return {m: {p: sparsity_profile(run.masks[m][p]) for p in run.poles} for m in run.masks}


def mask_overlaps(study: Study, run: SetRun) -> dict[str, MaskOverlap]:
    """Each method's overlap of the two poles' masks, and of two random masks (``random``)."""
    from ..analysis.overlap import mask_overlap

    a, b = run.poles
    out = {m: mask_overlap(run.masks[m][a], run.masks[m][b]) for m in run.masks}
    out["random"] = mask_overlap(*study.random_masks())
    return out


def _curves_on(cfg: StudyConfig, name: str) -> bool:
    return "*" in cfg.headline.curve_sets or name in cfg.headline.curve_sets


def run_set(study: Study, sset: StudySet) -> tuple[SetResults, SetRun]:
    """Every stage of one persona set; returns its :class:`~persona_circuits.results.SetResults` and the
    in-memory :class:`SetRun` (for the analysis-set stage)."""
    run = prepare_set(study, sset)
    res = SetResults(family=sset.family, poles=list(run.poles), n_calibration=run.n_calib, n_test=len(run.ps.test),
                     source=run.ps.source, tokens=sset.tokens, steering=run.steering, conditions=[], contrasts=[])
    c = run_conditions(study, run)
    res.update(conditions=c.conditions, contrasts=c.contrasts, sft=c.sft, answer_tokens=c.answer_tokens)
    if sset.family == "ai" and study.cfg.paper.enabled:
        from .paper_table import paper_table

        with study.timed(f"{sset.name}: paper table (released scoring)"):
            res.paper_table = paper_table(study, run)
    if _curves_on(study.cfg, sset.name):
        with study.timed(f"{sset.name}: effect-damage curves and matched-damage table"):
            res.headline = run_headline(study, run, c.sft)
        if gate_enabled(study):
            with study.timed(f"{sset.name}: projection-gate analyses"):
                g = gate_analysis(study, run=run)
            res.gate, run.gate_bits = g.analysis, g.selections
    with study.timed(f"{sset.name}: mask analyses"):
        res.update(sparsity=mask_sparsity(run), overlap=mask_overlaps(study, run))
    with study.timed(f"{sset.name}: probes, similarity and neutral-text decoding"):
        res.update(probes=probes(study, run=run), similarity=similarity(study, run=run),
                   neutral_decoding=neutral_decoding(study, run))
    return res, run


def free_memory(model) -> None:
    """Between sets: forget the replayed steering outputs of the last set's inputs and collect cycles."""
    import gc

    from ..model.plain import plain_model
    from ..model.replay import forget

    plain = plain_model(model)
    if plain is not None:
        forget(plain)
    gc.collect()


def study_identity(model, cfg: StudyConfig, root: Path | None) -> dict:
    from ..model.loading import architecture_fingerprint, get_model_id

    return {"model": get_model_id(model), "fingerprint": architecture_fingerprint(model), "config": cfg.to_dict(),
            "data_root": str(root) if root else None, "format": 2,
            "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}


def study_meta(study: Study, identity: dict, command: str, t0: float) -> Meta:
    """How the study (or shard) was made: its identity (:func:`study_identity`) less the settings, the settings the
    report quotes (``config``) and all of them (``study_config``), the command, the machine and the time."""
    from ..model.dtypes import cpu_model

    cfg = study.cfg
    quoted = RunSettings(tokens=cfg.masks.tokens, statistic=cfg.masks.statistic, modules=cfg.masks.modules,
                         sparsity=cfg.masks.sparsity, calib_size=cfg.sets.calib_size, rag_k=cfg.baselines.rag_k,
                         seed=cfg.seed, text_stat="rms", analysis_set=cfg.sets.analysis_set)
    return Meta(model=identity["model"], fingerprint=identity["fingerprint"], data_root=identity["data_root"],
                format=identity["format"], dtype=identity["dtype"], config=quoted, study_config=identity["config"],
                command=command, quick=cfg.quick, package_version=__import__("persona_circuits").__version__,
                torch=torch.__version__, python=platform.python_version(), machine=platform.machine(), cpu=cpu_model(),
                bf16_products=_products(study.model), cpu_count=os.cpu_count(), threads=torch.get_num_threads(), seconds=round(time.perf_counter() - t0, 1),
                finished=time.strftime("%Y-%m-%d %H:%M:%S"))


def _products(model) -> str | None:
    """``bf16_products`` of the meta (:func:`~persona_circuits.model.upcast.bf16_products`): left out (``None``)
    for a model that is not bfloat16 on a CPU."""
    from ..model.upcast import bf16_products

    v = bf16_products(model)
    return None if v == "n/a" else v


@contextlib.contextmanager
def open_study(model, out: Path, cfg: StudyConfig, root: Path | None, progress: bool,
               cache_from=()) -> Iterator[tuple[Study, dict]]:
    """The study that writes into ``out`` (claimed and locked until the block ends; resumed when ``out`` holds
    this study), its stage cache seeded from every folder of ``cache_from``. Yields ``(study, identity)``."""
    identity = study_identity(model, cfg, root)
    lock = claim_output(Path(out), identity)
    try:
        study = Study(model, Path(out), cfg, root, progress)
        for src in cache_from or []:
            log(f"reusing {study.cache.seed_from(Path(src))} cached stage results of {src}")
        yield study, identity
    finally:
        lock.release()
