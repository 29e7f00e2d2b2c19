"""Merge study shards (:mod:`.shards`) into one study: ``results.json``, ``REPORT.md`` and the figures.

Merging loads no model and measures nothing: it checks that the shards belong to one study (the same
identity: model, fingerprint, dtype, every setting, the set list, the code identity), that every set of the
study and the cross-set shard are there once each, and that the cross shard saw the same set contents as
the set shards; then it lays the sets' results out in the study's order, adds the analysis-set results and
the cross-set results, reads them into the typed :class:`~persona_circuits.results.StudyResults` and applies the
verdicts (:func:`~.verdicts.apply_verdicts`) to it. The
one-process study (:func:`~.run.run_study`) ends in the same :func:`merge_payloads`, so the two agree
number for number.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..results import CrossResults, Meta, Shard, ShardMeta, StudyResults, write_results
from .config import StudyConfig
from .shard_format import CROSS, ShardError, first_difference, read_shard


def check_shards(shards: list[Shard], where: list[str], *, need_cross: bool = True, partial: bool = False) -> list[str]:
    """Refuse (:class:`ShardError`, one line) shards of different studies, duplicate, missing or unknown
    shards, and a cross shard that saw other set contents than the set shards. ``partial``: missing shards
    are allowed (and returned) instead of refused. Returns the missing shards."""
    if not shards:
        raise ShardError("no shard to merge")
    ref = shards[0].identity
    for p, w in zip(shards[1:], where[1:]):
        d = first_difference(ref, p.identity)
        if d:
            raise ShardError(f"{w} is not a shard of the study of {where[0]}: {d}")
    names = [p.shard.name for p in shards]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ShardError("duplicate shards: " + "; ".join(
            f"{n} ({', '.join(w for w, m in zip(where, names) if m == n)})" for n in dup))
    study_sets = list(ref["sets"])
    expected = study_sets + ([CROSS] if need_cross else [])
    unknown = [n for n in names if n not in expected]
    if unknown:
        raise ShardError(f"shards of sets the study does not have: {', '.join(unknown)} (its sets: {', '.join(study_sets)})")
    missing = [n for n in expected if n not in names]
    if missing and not partial:
        raise ShardError(f"missing shards: {', '.join(missing)} (--partial merges the shards there are)")
    by = dict(zip(names, shards))
    if CROSS in by:
        for seen in by[CROSS].shard.sets or []:
            name = seen["name"]  # a set's identity (as stored) names it
            d = first_difference(by[name].shard.set, seen, name)
            if d:
                raise ShardError(f"the cross shard saw other contents of set {d}")
    return missing


def merge_payloads(shards: list[Shard], meta: Meta) -> StudyResults:
    """The typed study results of checked shards, with ``meta`` and the verdicts applied
    (:func:`~.verdicts.apply_verdicts`): the sets in the study's order, the analysis set's results, the cross
    shard's results, the paper's numbers and every shard's timings summed per stage."""
    from .verdicts import apply_verdicts

    by = {p.shard.name: p for p in shards}
    study_sets = shards[0].identity["sets"]
    analysis_set = StudyConfig.from_dict(shards[0].identity["config"]).sets.analysis_set
    timings: dict[str, float] = {}
    for p in shards:
        for k, v in p.timings.items():
            timings[k] = round(timings.get(k, 0.0) + v, 2)
    papers = [p.paper for p in shards if p.paper is not None]
    cross = by[CROSS].cross_results() if CROSS in by else CrossResults()
    results = StudyResults(meta=meta, sets={n: by[n].set_results() for n in study_sets if n in by},
                           analysis=by[analysis_set].analysis if analysis_set in by else None,
                           types=cross.types, atlas=cross.atlas, gate_overlap=cross.gate_overlap,
                           paper=max(papers, key=lambda x: len(x.ai_persona or {})) if papers else None, timings=timings,
                           extra=dict(cross.extra))
    return apply_verdicts(results)


def merged_meta(shards: list[Shard], command: str) -> Meta:
    """The meta of a merged study: the cross shard's machine and settings, the merge command, the summed
    seconds of every shard (of all its logged runs where it has a run log: ``seconds_all_runs``), the latest
    shard's finishing time (not the merge's: merging the same shards twice writes byte-identical files), and per
    shard where and how it was computed (``shards``)."""
    metas = [p.meta for p in shards]
    base = next((p.meta for p in shards if p.shard.name == CROSS), metas[0])
    cpus = list(dict.fromkeys(m.cpu for m in metas if m.cpu))
    return dataclasses.replace(
        base, command=command, seconds=round(sum(m.seconds_all_runs or m.seconds or 0.0 for m in metas), 1),
        cpu="; ".join(cpus) if cpus else base.cpu, finished=max((m.finished for m in metas if m.finished), default=base.finished),
        shards=[ShardMeta(shard=p.shard.name, command=p.meta.command, machine=p.meta.machine, cpu=p.meta.cpu,
                          threads=p.meta.threads, seconds=p.meta.seconds, finished=p.meta.finished,
                          git_commit=p.meta.git_commit, bf16_products=p.meta.bf16_products, runs=p.meta.runs,
                          seconds_all_runs=p.meta.seconds_all_runs, runs_complete=p.meta.runs_complete)
                for p in shards],
        runs=None, seconds_all_runs=None, runs_complete=None)


def write_outputs(results: StudyResults, out: Path) -> StudyResults:
    """``results.json``, ``figures/`` and ``REPORT.md`` of the typed results under ``out``; returns them."""
    from ..reporting.figures import write_figures
    from ..reporting.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    write_results(results, out / "results.json")
    write_figures(results, out / "figures")
    write_report(results, out / "REPORT.md")
    return results


def merge_shards(folders: list[str | Path], out: str | Path, *, command: str = "", partial: bool = False):
    """Merge shard folders into one study under ``out`` (``results.json``, ``REPORT.md``, ``figures/``).

    Args:
        folders: every set shard of the study and its cross shard (any order).
        out: the output folder (created).
        command: recorded as ``meta.command``.
        partial: merge the shards there are (an interim report while a study is computed piece by piece): the
            missing shards are listed in ``meta.missing_shards`` and at the top of the report, and the pooled
            tests (the primary family, the calibration) pool only the sets present.

    Returns the typed :class:`~persona_circuits.results.StudyResults`.
    """
    from ..errors import OutputError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a folder: {out}")
    shards = [read_shard(f) for f in folders]
    missing = check_shards(shards, [str(f) for f in folders], partial=partial)
    meta = merged_meta(shards, command)
    if missing:
        meta.missing_shards = missing
    return write_outputs(merge_payloads(shards, meta), out)
