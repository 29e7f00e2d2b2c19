"""Run the whole study: every persona set's stages, the analysis-set stage, the verdicts, then
``results.json`` (the typed results contract, :mod:`persona_circuits.results`), ``REPORT.md`` and the
figures (:mod:`persona_circuits.reporting`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from .config import StudyConfig
from .merge import merge_payloads, write_outputs
from .sets import check_data_root, study_sets
from .set_stages import open_study, study_meta
from .shards import CrossInputs, cross_shard, set_shard, shard_identity
from .state import log

if TYPE_CHECKING:
    from ..model.loading import Model


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

    from ..model.upcast import bf16_compute
    from ..results import Shard, paper_numbers

    t0 = time.perf_counter()
    root = check_data_root(str(data_root) if data_root is not None else None)
    out = Path(out)
    with bf16_compute(model), open_study(model, out, cfg, root, progress, cache_from) as (study, identity):
        sets = study_sets(cfg, root)
        sid = shard_identity(model, cfg, sets)
        keep = CrossInputs()
        shards = [set_shard(study, sset, sid, keep) for sset in sets]
        study.timings = {}
        shards.append(cross_shard(study, sets, sid, keep))
        paper = paper_numbers(root)
        # merged as the shards would be read back from their folders (plain JSON)
        shards = [Shard.from_dict(json.loads(json.dumps(p.update(paper=paper).to_dict())), p.shard.name) for p in shards]
        typed = write_outputs(merge_payloads(shards, study_meta(study, identity, command, t0)), out)
    log(f"wrote {out / 'results.json'}, {out / 'REPORT.md'} and {out / 'figures'} in {time.perf_counter() - t0:.0f} s")
    return typed
