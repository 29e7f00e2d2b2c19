"""``reproduce --executor ray``: the study's shards as Ray tasks, then the merge.

One task per set shard (``num_gpus=1`` when the study runs on CUDA, so that Ray places one shard per GPU;
one CPU each otherwise), then the cross shard (it needs the set shards' results, so it starts after they
finish), then :func:`~.merge.merge_shards` in the driver. Each task loads the model itself and returns its
shard's payload to the driver, which writes it under ``OUT/shards/<shard>/shard.json``: on a cluster the
workers need the model and ``--data-root`` at the same paths, and write their stage caches under
``OUT/shards/<shard>/cache`` (on a shared file system an interrupted task resumes from them). A shard folder
that already holds its shard of this study is not recomputed. Without an address a local Ray is started
with ``num_cpus`` CPUs (default: half the machine's cores) and shut down at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..results import Shard
from .config import StudyConfig
from .shard_format import CROSS, SHARD_FILE


def _shard_task(load: Callable, cfg: dict, data_root: str | None, shard: str, work: str,
                set_payloads: list[Shard] | None, cache_from: list[str], progress: bool, command: str,
                threads: int | None = None) -> Shard:
    """One shard in a Ray worker: load the model, compute the shard (returned to the driver)."""
    from ..model.memory import keep_large_allocations
    from .shards import compute_shard

    keep_large_allocations()  # as the command line does (persona_circuits.model.memory)
    if threads is not None:  # Ray sets a task's OMP_NUM_THREADS to its CPUs; torch's reductions follow the count
        import torch

        torch.set_num_threads(threads)
    model = load()
    return compute_shard(model, cfg=StudyConfig.from_dict(cfg), data_root=Path(data_root) if data_root else None,
                         shard=shard, work=work, set_payloads=set_payloads, progress=progress, command=command,
                         cache_from=[c for c in cache_from if (Path(c) / "cache").is_dir()])


def _start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` or start a local Ray; whether this call started it."""
    try:
        import ray
    except ImportError:
        from .config import StudyError

        raise StudyError("--executor ray needs Ray: pip install 'persona-circuits[ray]'") from None
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
        return False
    # the workers import the driver's copy of the package (a checkout on sys.path ahead of an installed one)
    here = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=num_cpus or max(1, (os.cpu_count() or 2) // 2), include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    return True


def run_ray(load: Callable, out: str | Path, *, cfg: StudyConfig, data_root: Path | None, set_names: list[str],
            address: str | None = None, num_cpus: int | None = None, cuda: bool = False, progress: bool = False,
            command: str = "", threads: int | None = None):
    """Run a study's shards as Ray tasks and merge them into ``out`` (see the module docstring).

    Args:
        load: a picklable function returning the loaded model (called in each worker).
        set_names: the study's sets (:func:`~.sets.study_sets`), one set shard each.
        address: a running Ray cluster (``ray start --head`` prints it); ``None``: a local Ray.
        num_cpus: the local Ray's CPUs (tasks run one per CPU).
        cuda: one GPU per task.
        threads: torch threads of each task (``None``: Ray's default, one per CPU of the task, i.e. 1). A CPU
            matmul's reduction order depends on the thread count, so a shard's numbers equal those of a
            sequential run with the same count; other counts differ in the last digits (about 1e-8 relative).

    Returns the typed merged :class:`~persona_circuits.results.StudyResults`.
    """
    import ray

    from .merge import merge_shards
    from .shard_format import read_shard, write_shard

    out = Path(out)
    folders = {n: out / "shards" / n for n in [*set_names, CROSS]}
    started = _start_ray(address, num_cpus)
    try:
        task = ray.remote(num_gpus=1 if cuda else 0, num_cpus=0 if cuda else 1, max_retries=0)(_shard_task)
        args = (cfg.to_dict(), str(data_root) if data_root else None)

        def submit(name: str, set_shards=None, cache_from=()):
            return task.remote(load, *args, name, str(folders[name] / "cache"), set_shards, list(cache_from), progress,
                               f"{command} [shard {name}]", threads)

        todo = [n for n in set_names if not (folders[n] / SHARD_FILE).is_file()]
        for name, shard in zip(todo, ray.get([submit(n) for n in todo])):
            write_shard(folders[name], shard)
        if not (folders[CROSS] / SHARD_FILE).is_file():
            set_shards = [read_shard(folders[n]) for n in set_names]
            write_shard(folders[CROSS], ray.get(submit(CROSS, set_shards, [str(folders[n] / "cache") for n in set_names])))
    finally:
        if started:
            ray.shutdown()
    return merge_shards([folders[n] for n in [*set_names, CROSS]], out, command=command)
