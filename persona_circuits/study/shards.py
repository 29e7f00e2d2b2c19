"""Study shards: one per persona set, and one for the cross-set stages (the 16 types, the atlas).

A set shard runs every stage of one set (:func:`~.set_stages.run_set`; the analysis-set stage when it is the analysis
set) and keeps what merging and the cross-set shard need: the set's results, the analysis-set results, and,
for an MBTI axis of the 16 types, the per-item contrasts of its matched-damage rows (``cross.alone``: the
``shifts`` of the matched-real stage, which are not in the results). The cross-set shard recomputes the
calibration of every set it needs (the MBTI axes, and every set for the atlas: forward passes, or cache
hits when it shares the set shards' stage cache), reuses each set's steering choice from its shard, reads (or
selects again) the projection gate's sets of every set that measured it, and runs the types, the atlas and the
gate's cross-persona overlap. Stages are pure functions of the study's settings and inputs, so a shard computed
alone equals the same set's part of a one-process study; :func:`~persona_circuits.study.merge.merge_payloads`
assembles them (the one-process study is its set shards in sequence, then the cross shard, then that merge).

A shard folder holds ``shard.json`` (:func:`~.shard_format.write_shard`): the study's identity (model, architecture
fingerprint, dtype, the whole study's settings and set list, the code identity: package version and the
hash of every stage's version and declared settings), the shard's name, family and set identity (its
content hash), its results, timings and meta (machine, command, git commit). The stage cache lives in a
separate work folder (``--cache``; default ``SHARD_DIR/cache``, never committed).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import torch

from ..analysis.gate import GateSelections
from ..results import AxisShifts, CrossResults, Shard, ShardCross, ShardInfo
from .config import StudyConfig
from .merge import check_shards
from .set_stages import free_memory, open_study, run_set, study_meta
from .sets import StudySet
from .shard_format import CROSS, SHARD_FORMAT
from .state import Study

#: The modules whose stages make up a study (imported so that every stage is registered before hashing).
_STAGE_MODULES = ("analysis_set", "atlas", "conditions", "gate_analysis", "headline", "matched", "paper_table",
                  "representation", "setup", "types")


def code_identity() -> dict:
    """What of the code decides a shard's numbers: the package version and a hash of every stage's name,
    version and declared settings (:data:`~.stage.STAGES`). The git commit is recorded in the meta only: a
    shard committed at one commit merges with shards computed at later ones as long as no stage changed."""
    import importlib

    from .stage import STAGES

    for m in _STAGE_MODULES:
        importlib.import_module(f"{__package__}.{m}")
    blob = json.dumps({k: [v[0], list(v[1])] for k, v in sorted(STAGES.items())}, sort_keys=True)
    return {"package_version": __import__("persona_circuits").__version__,
            "stages": hashlib.sha256(blob.encode()).hexdigest()[:16]}


def git_commit() -> str | None:
    """The commit of the package's checkout (``+dirty`` with uncommitted changes), or ``None`` outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def shard_identity(model, cfg: StudyConfig, sets: list[StudySet]) -> dict:
    """The identity every shard of one study shares (compared as stored: JSON types)."""
    from ..model.loading import architecture_fingerprint, get_model_id

    ident = {"model": get_model_id(model), "fingerprint": architecture_fingerprint(model),
             "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "config": cfg.to_dict(),
             "sets": [s.name for s in sets], "code": code_identity()}
    return json.loads(json.dumps(ident))


def _is_axis(cfg: StudyConfig, sset: StudySet) -> bool:
    from ..masks.compose import MBTI_AXES

    return cfg.types.enabled and sset.family == "mbti" and sset.name in {a for a, _, _ in MBTI_AXES}


class CrossInputs:
    """What the cross-set stages need of each set: the MBTI axes' states for the 16 types (with their
    steering layers), every set's calibration for the atlas, the projection gate's selected sets for the
    cross-persona overlap."""

    def __init__(self) -> None:
        self.axes, self.layers, self.atlas, self.gate = {}, [], [], {}

    def add(self, study: Study, run, alone: dict, gate_bits: GateSelections | None = None) -> None:
        """Keep ``run``'s part; ``alone``: an MBTI axis's matched-row shifts, ``{(method, target): shifts}``;
        ``gate_bits``: the set's packed gate selections (:func:`~.gate_analysis.gate_analysis`), if measured."""
        from .atlas import atlas_input
        from .types import axis_state

        if _is_axis(study.cfg, run.sset):
            self.axes[run.name] = axis_state(study, run, alone)
            self.layers.append(run.steering.layer)
        if study.cfg.atlas.enabled:
            self.atlas.append(atlas_input(run))
        if gate_bits is not None:
            self.gate[run.name] = gate_bits

    def finish(self, study: Study) -> CrossResults:
        """The types (when every MBTI axis is in), the atlas (with the atlas-only sets) and the gate's overlap."""
        from ..masks.compose import MBTI_AXES
        from .atlas import atlas_stage, extra_inputs
        from .gate_analysis import cross_set_overlap
        from .types import run_types

        out = CrossResults()
        if len(self.gate) >= 2:
            out.gate_overlap = cross_set_overlap(self.gate)
        if study.cfg.types.enabled and len(self.axes) == len(MBTI_AXES):
            layer = max(set(self.layers), key=self.layers.count)
            out.types = run_types(study, [self.axes[a] for a, _, _ in MBTI_AXES], layer)
        sets = self.atlas + (extra_inputs(study) if study.cfg.atlas.enabled else [])
        if len(sets) >= 2:
            with study.timed("atlas"):
                out.atlas = atlas_stage(study, sets=sets)
        return out


def set_shard(study: Study, sset: StudySet, identity: dict, keep: CrossInputs | None = None) -> Shard:
    """Every stage of one set (see the module docstring); ``keep`` collects its cross-set inputs in memory
    (the one-process study) so that the cross shard need not recompute them."""
    from .analysis_set import run_analysis_set
    from .types import axis_alone

    torch.manual_seed(study.cfg.seed)
    study.timings = {}
    res, run = run_set(study, sset)
    analysis = run_analysis_set(study, run) if sset.name == study.cfg.sets.analysis_set else None
    alone = axis_alone(study, run, res.headline) if _is_axis(study.cfg, sset) else None
    if keep is not None:
        keep.add(study, run, alone or {}, run.gate_bits)
    run.release()
    del run
    free_memory(study.model)
    cross = ShardCross(alone=None if alone is None else [AxisShifts(method=m, target_kl=t, shifts=list(s))
                                                         for (m, t), s in alone.items()])
    return Shard(format=SHARD_FORMAT, identity=identity, shard=ShardInfo(name=sset.name, family=sset.family,
                                                                         set=sset.identity()),
                 results=res.to_dict(), analysis=analysis, cross=cross, timings=study.timings)


def cross_inputs(study: Study, sets: list[StudySet], shards: dict[str, Shard]) -> CrossInputs:
    """The cross-set inputs rebuilt from the set shards: each needed set's calibration (recomputed, or a cache
    hit), its steering choice and matched-row shifts from its shard."""
    from .gate_analysis import gate_analysis
    from .setup import prepare_set

    keep = CrossInputs()
    for sset in sets:
        p = shards[sset.name]
        res = p.set_results()
        gate = res.gate is not None
        if not (_is_axis(study.cfg, sset) or study.cfg.atlas.enabled or gate):
            continue
        run = prepare_set(study, sset, steering=res.steering)
        # the gate's selected sets: a cache hit beside the set shard's cache, else selected again (no forward pass)
        bits = gate_analysis(study, run=run).selections if gate else None
        alone = p.cross.alone if p.cross is not None and p.cross.alone else []
        keep.add(study, run, {(a.method, a.target_kl): a.shifts for a in alone}, bits)
        run.release()
        del run
        free_memory(study.model)
    return keep


def cross_shard(study: Study, sets: list[StudySet], identity: dict, keep: CrossInputs) -> Shard:
    """The cross-set stages on ``keep`` (the types, the atlas)."""
    torch.manual_seed(study.cfg.seed)
    out = keep.finish(study)
    return Shard(format=SHARD_FORMAT, identity=identity, shard=ShardInfo(name=CROSS, sets=[s.identity() for s in sets]),
                 results=out.to_dict(), timings=study.timings)


def _pick(sets: list[StudySet], shard: str) -> StudySet | None:
    from .config import StudyError

    if shard == CROSS:
        return None
    for s in sets:
        if shard == s.name:
            return s
    raise StudyError(f"--shard {shard}: not a set of this study (its sets: {', '.join(s.name for s in sets)}; or {CROSS})")


def compute_shard(model, *, cfg: StudyConfig, data_root: Path | None, shard: str, work: str | Path,
                  set_payloads: list[Shard] | None = None, progress: bool = True, command: str = "",
                  cache_from: list[str | Path] | None = None, checkpoint: str | Path | None = None) -> Shard:
    """Compute one shard (not written: :func:`~.shard_format.write_shard`).

    Args:
        cfg: the whole study's settings (every set named: each shard knows the study's set list).
        shard: a set name of the study, or ``"cross"`` (the types and the atlas).
        work: the shard's work folder (a study output folder: ``study.json``, its lock, the stage cache); several
            shards of one study may share it one at a time, and the cross shard then finds the set shards'
            calibration there.
        set_payloads: the cross shard's inputs: every set shard of the study.
        cache_from: other work or output folders whose cached stage results are reused where keys match.
        checkpoint: a folder that receives a portable copy of the shard's stage results as they are computed
            (all but the calibration statistics: a few MB) and from which a rerun resumes, on any machine of the
            same dtype (:meth:`~.state.StageCache.attach_checkpoint`).
    """
    from ..model.upcast import bf16_compute
    from ..results import paper_numbers
    from .sets import study_sets
    from .state import checkpoint_size, log

    t0 = time.perf_counter()
    sets = study_sets(cfg, data_root)
    sset = _pick(sets, shard)
    sid = shard_identity(model, cfg, sets)
    if sset is None:
        set_payloads = list(set_payloads or [])
        this = Shard(format=SHARD_FORMAT, identity=sid, shard=ShardInfo(name=CROSS, sets=[]), results={}, timings={})
        check_shards([this, *set_payloads], ["this study", *(f"set shard {p.shard.name}" for p in set_payloads)])
    with bf16_compute(model), open_study(model, Path(work), cfg, data_root, progress, cache_from) as (study, ident):
        if checkpoint is not None:
            restored, saved = study.cache.attach_checkpoint(Path(checkpoint), {"shard": shard, **sid})
            n, size = checkpoint_size(Path(checkpoint))
            log(f"checkpoint {checkpoint}: {restored} stage results restored from it, {saved} added to it "
                f"({n} stage results, {size / 1e6:.2f} MB)")
        if sset is not None:
            out = set_shard(study, sset, sid)
        else:
            keep = cross_inputs(study, sets, {p.shard.name: p for p in set_payloads})
            out = cross_shard(study, sets, sid, keep)
        meta = study_meta(study, ident, command, t0).update(git_commit=git_commit())
        runs = study.cache.run_log()
        if runs is not None:  # this run's own time is the meta's (from the start of the shard, loading included)
            meta.update(runs=len(runs["runs"]), runs_complete=bool(runs["complete"]),
                        seconds_all_runs=round(sum(r["seconds"] for r in runs["runs"][:-1]) + meta.seconds, 1))
        out.update(paper=paper_numbers(data_root), meta=meta)
    log(f"shard {shard} computed in {time.perf_counter() - t0:.0f} s")
    return Shard.from_dict(json.loads(json.dumps(out.to_dict())), f"shard {shard}")  # as a merge reads it back
