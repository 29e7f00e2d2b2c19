"""``reproduce --shard SET --out DIR``: one shard of a study into a shard folder (:mod:`.shards`).

A folder that already holds this shard of this study is left as it is (a committed shard is never
recomputed); one that holds anything else is refused. The cross shard reads the set shards (``--set-shards``,
default: the folders next to ``--out`` that hold a ``shard.json``) and reuses their stage caches where they
are on this machine (``SHARD/cache``). With ``--checkpoint DIR`` the shard's stage results are also copied to
``DIR`` as they are computed (commit it while the shard runs), a rerun resumes from it on any machine of the same
dtype, and it is removed once ``shard.json`` is written.

Before anything is computed, a shard is checked against its siblings: the shards in the folders next to
``--out`` (and the checkpoints next to ``--checkpoint``) are one study's, so a shard of another study there (another
dtype, seed, setting, set list or code) is refused, naming the first difference: otherwise it would be found
only by ``merge``, after hours of computing. Another study's shards go to another folder.

So ``--dtype auto`` (the default) means, for a shard, the dtype of the study it joins: that of its own checkpoint,
else of its sibling shards or checkpoints (:func:`study_dtype`); only the first shard of a study is given the
machine's own ``auto`` dtype. A bfloat16 study is thus continued in bfloat16 on a CPU without native bfloat16, its
matrix products computed in float32 (:mod:`persona_circuits.model.upcast`: about float32's speed there).
"""

from __future__ import annotations

from pathlib import Path

from ..study.shard_format import CROSS, SHARD_FILE


def _set_shard_folders(args, out: Path) -> list[Path]:
    if args.set_shards is not None:
        return [Path(d) for d in args.set_shards]
    parent = out.resolve().parent
    return sorted(d for d in parent.iterdir() if d.is_dir() and d.resolve() != out.resolve() and (d / SHARD_FILE).is_file())


def _existing(out: Path, shard: str, identity: dict) -> bool:
    """Whether ``out`` already holds this shard of this study (refused if it holds another)."""
    from ..study.shard_format import ShardError, first_difference, read_shard

    if not (out / SHARD_FILE).is_file():
        return False
    old = read_shard(out)
    d = first_difference(old.identity, identity)
    if d or old.shard.name != shard:
        what = d or f"shard: {old.shard.name} vs {shard}"
        raise ShardError(f"{out} holds another shard ({what}); choose another --out or remove it")
    return True


def _sibling_identities(out: Path, checkpoint: Path | None) -> list[tuple[Path, dict]]:
    """The study identities of the other shards next to ``out`` and the other checkpoints next to ``checkpoint``."""
    from ..study.shard_format import read_shard
    from ..study.state import CHECKPOINT_FILE, read_checkpoint_identity

    def checkpoint_study(d: Path) -> dict:
        return {k: v for k, v in read_checkpoint_identity(d).items() if k != "shard"}

    found: list[tuple[Path, dict]] = []
    for own, marker, read in ((out, SHARD_FILE, lambda d: read_shard(d).identity),
                              (checkpoint, CHECKPOINT_FILE, checkpoint_study)):
        if own is None or not own.resolve().parent.is_dir():
            continue
        found += [(d, read(d)) for d in sorted(own.resolve().parent.iterdir())
                  if d != own.resolve() and (d / marker).is_file()]
    return found


def study_dtype(out: Path, checkpoint: Path | None) -> tuple[str, Path] | None:
    """The dtype of the study a shard joins, and the folder that says so: the shard's own checkpoint (a resumed
    shard), else the first sibling shard or checkpoint (:func:`check_siblings`'s); ``None`` for a study's first
    shard."""
    from ..study.state import CHECKPOINT_FILE, read_checkpoint_identity

    own = [(checkpoint, read_checkpoint_identity(checkpoint))] \
        if checkpoint is not None and (checkpoint / CHECKPOINT_FILE).is_file() else []
    for d, identity in [*own, *_sibling_identities(out, checkpoint)]:
        if identity.get("dtype"):
            return str(identity["dtype"]), d
    return None


def check_siblings(out: Path, checkpoint: Path | None, identity: dict) -> None:
    """Refuse (:class:`~persona_circuits.study.shard_format.ShardError`, one line) a shard whose sibling shards
    or checkpoints belong to another study (see the module docstring)."""
    from ..study.shard_format import ShardError, first_difference

    for d, other in _sibling_identities(out, checkpoint):
        diff = first_difference(other, identity)
        if diff:
            raise ShardError(f"{d} next to it holds a shard of another study ({diff}): the shards of one folder are one "
                             "study's; give another study's shards another folder")


def run_shard_command(args, cfg, root, sets, command: str) -> int:
    """The handler of ``reproduce --shard`` (after the settings and sets are settled)."""
    from .common import load_model_from_args
    from ..study.config import StudyError
    from ..study.shard_format import read_shard, write_shard
    from ..study.shards import compute_shard, shard_identity
    from ..study.state import log

    names = [s.name for s in sets]
    if args.shard not in (*names, CROSS):
        raise StudyError(f"--shard {args.shard}: not a set of this study (its sets: {', '.join(names)}; or {CROSS})")
    out = Path(args.out)
    payloads, sources = None, []
    if args.shard == CROSS:
        folders = _set_shard_folders(args, out)
        payloads = [read_shard(d) for d in folders]
        sources = [d / "cache" for d in folders if (d / "cache" / "cache").is_dir()]
    if args.dtype == "auto":
        found = study_dtype(out, Path(args.checkpoint) if args.checkpoint is not None else None)
        if found is not None:
            args.dtype = found[0]
            log(f"--dtype auto: {found[0]}, the dtype of this study's shards ({found[1]})")
    model = load_model_from_args(args)
    identity = shard_identity(model, cfg, sets)
    if _existing(out, args.shard, identity):
        log(f"{out} already holds shard {args.shard} of this study: nothing to do")
        return 0
    check_siblings(out, Path(args.checkpoint) if args.checkpoint is not None else None, identity)
    work = Path(args.cache) if args.cache else out / "cache"
    sources = [s for s in sources if s.resolve() != work.resolve()]
    payload = compute_shard(model, cfg=cfg, data_root=root, shard=args.shard, work=work, set_payloads=payloads,
                            progress=not args.no_progress, command=command, cache_from=[*(args.cache_from or []), *sources],
                            checkpoint=args.checkpoint)
    path = write_shard(out, payload)
    log(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if args.checkpoint is not None:
        from ..study.state import checkpoint_size, remove_checkpoint

        _, size = checkpoint_size(Path(args.checkpoint))
        n = remove_checkpoint(Path(args.checkpoint))
        log(f"removed the checkpoint {args.checkpoint} ({n} stage results, {size / 1e6:.2f} MB): the shard is complete")
    return 0
