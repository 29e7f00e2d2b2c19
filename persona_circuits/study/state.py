"""State of one study run: the output folder (claimed, locked, resumed), the stage cache, the neutral-text
references, timings."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .._io import atomic_write_bytes, atomic_write_json
from ..errors import OutputError
from .config import StudyConfig, StudyError

STUDY_FILE = "study.json"
LOCK_FILE = ".lock"
#: Identity format of ``study.json``; 2: sectioned settings (a folder of an older study is not resumed).
FORMAT = 2


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


#: Stages whose results a checkpoint leaves out: the per-text statistics of a pole's calibration texts (tens to
#: hundreds of MB; recomputed on resume in seconds to minutes, and not part of any later stage's key).
NOT_CHECKPOINTED = ("calibration",)
#: Largest stage result a checkpoint keeps (bytes); a larger one is recomputed on resume.
CHECKPOINT_MAX_BYTES = 4_000_000
CHECKPOINT_FILE = "checkpoint.json"
#: A checkpoint's log of the runs that computed its stage results (:meth:`StageCache.run_log`).
RUNS_FILE = "runs.json"


def _is_stage_result(f: Path) -> bool:
    """Whether ``f`` is a stage result file (``<stage>-<key>.json`` or ``.pt``; not a checkpoint's marker)."""
    return f.is_file() and f.suffix in (".json", ".pt") and f.name not in (CHECKPOINT_FILE, RUNS_FILE)


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy, written atomically, across file systems); stage result files are
    never edited in place, so the two names can share one file."""
    try:
        os.link(src, dst)
    except OSError:
        atomic_write_bytes(dst, src.read_bytes())


class StageCache:
    """Stage results under ``folder``, one file per stage key (``<stage>-<key>.json`` or ``.pt``), written
    atomically: an interrupted run leaves whole files only, and rerunning resumes from them.

    With a checkpoint folder (:meth:`attach_checkpoint`) every stage result small enough to commit is copied
    there as well, as it is written: a run interrupted on one machine resumes on another from that folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.checkpoint: Path | None = None
        self.checkpoint_max_bytes = CHECKPOINT_MAX_BYTES
        self._runs: dict | None = None  # the checkpoint's run log, this run last (:meth:`run_log`)
        self._run_t0 = 0.0
        folder.mkdir(parents=True, exist_ok=True)

    def get_or_compute(self, name: str, key: str, fn: Callable[[], object], *, store: str = "json"):
        path = self.folder / f"{name}-{key}.{'json' if store == 'json' else 'pt'}"
        if path.is_file():
            if store == "json":
                return json.loads(path.read_text())
            return torch.load(path, weights_only=False)
        val = fn()
        if store == "json":
            atomic_write_json(path, val)
        else:
            buf = io.BytesIO()
            torch.save(val, buf)
            atomic_write_bytes(path, buf.getvalue())
        if self.checkpoint is not None:
            self._to_checkpoint(path)
            self._log_run()
        return val

    def _portable(self, f: Path) -> bool:
        return (_is_stage_result(f) and not any(f.name.startswith(f"{n}-") for n in NOT_CHECKPOINTED)
                and f.stat().st_size <= self.checkpoint_max_bytes)

    def _to_checkpoint(self, f: Path) -> int:
        dst = self.checkpoint / f.name
        if dst.exists() or not self._portable(f):
            return 0
        _link_or_copy(f, dst)
        return 1

    def attach_checkpoint(self, folder: Path, identity: dict, *, max_bytes: int = CHECKPOINT_MAX_BYTES) -> tuple[int, int]:
        """Resume from, and keep writing to, a checkpoint folder: a portable copy of this cache's stage results.

        A stage result's key holds the model, its dtype, the stage's code version, its declared settings and its
        inputs' identities, never the machine, so a result computed on one machine is the same stage's result on
        another of the same dtype (numbers may differ from a recomputation in the last digits where CPU kernels
        differ). The checkpoint keeps every result but the calibration statistics (:data:`NOT_CHECKPOINTED`) and
        results over ``max_bytes``: the stage results of a long shard, a few MB, can be committed as it runs and
        the shard finished elsewhere. ``identity`` (the shard's) is written to ``checkpoint.json``; a folder that
        holds another identity is refused, naming the first difference. Entries of the checkpoint are added to
        the cache, and this cache's portable entries to the checkpoint; returns ``(restored, saved)``."""
        from .shard_format import first_difference

        identity = json.loads(json.dumps(identity))
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"--checkpoint: {folder} exists and is not a folder")
        marker = folder / CHECKPOINT_FILE
        if marker.is_file():
            diff = first_difference(read_checkpoint_identity(folder), identity)
            if diff:
                raise StudyError(f"--checkpoint: {folder} holds another shard's stage results ({diff})")
        elif folder.is_dir() and any(folder.iterdir()):
            raise StudyError(f"--checkpoint: {folder} is not empty and holds no {CHECKPOINT_FILE}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the checkpoint folder {folder}: {exc.strerror or exc}") from exc
        atomic_write_json(marker, identity)
        had = checkpoint_size(folder)[0]
        restored = self.seed_from(folder)
        self.checkpoint, self.checkpoint_max_bytes = folder, max_bytes
        saved = sum(self._to_checkpoint(f) for f in sorted(self.folder.iterdir()))
        self._start_run(folder, fresh=had == 0)
        return restored, saved

    def _start_run(self, folder: Path, *, fresh: bool) -> None:
        """Add this run to the checkpoint's run log (``runs.json``). ``complete`` says whether the log holds every
        run that added to the checkpoint: true when the log began with the checkpoint's first results."""
        from ..model.dtypes import cpu_model

        f = folder / RUNS_FILE
        log_ = None
        if f.is_file():
            try:
                log_ = json.loads(f.read_text())
            except json.JSONDecodeError:
                log_ = None
        if not isinstance(log_, dict) or not isinstance(log_.get("runs"), list):
            log_ = {"complete": fresh, "runs": []}
        log_["runs"].append({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu_model(),
                             "threads": torch.get_num_threads(), "seconds": 0.0})
        self._runs, self._run_t0 = log_, time.perf_counter()
        atomic_write_json(f, log_)

    def _tick(self) -> None:
        """This run's seconds so far, into the run log in memory."""
        self._runs["runs"][-1]["seconds"] = round(time.perf_counter() - self._run_t0, 1)

    def _log_run(self) -> None:
        """This run's seconds so far, written to the run log at each stage result it adds (a run cut off between
        two results loses the time since the last one)."""
        if self._runs is not None:  # set with the checkpoint (:meth:`attach_checkpoint`)
            self._tick()
            atomic_write_json(self.checkpoint / RUNS_FILE, self._runs)

    def run_log(self) -> dict | None:
        """The checkpoint's run log, this run's seconds up to now: ``{"complete": bool, "runs": [{"started", "cpu",
        "threads", "seconds"}, ...]}`` (``None`` without a checkpoint). The runs of a shard carried over sessions or
        machines; ``complete`` is false when its checkpoint predates the log, so earlier runs are missing."""
        if self._runs is None:
            return None
        self._tick()
        return json.loads(json.dumps(self._runs))

    def seed_from(self, source: Path) -> int:
        """Add the stage results of another study's cache (``source``: its output folder or its ``cache``
        folder) that this cache lacks, as hard links (copies across file systems). Entries are keyed by the
        model, the stage's code version, its declared settings and inputs (:mod:`.stage`), so an entry that
        matches a key here is that stage's result for this study. Returns the number of entries added."""
        src = source / "cache" if (source / "cache").is_dir() else source
        if not src.is_dir() or src.resolve() == self.folder.resolve():
            raise StudyError(f"--cache-from: {source} holds no stage cache of another study")
        added = 0
        for f in sorted(src.iterdir()):
            dst = self.folder / f.name
            if not _is_stage_result(f) or dst.exists():
                continue
            _link_or_copy(f, dst)
            added += 1
        return added


def read_checkpoint_identity(folder: Path) -> dict:
    """The identity a checkpoint folder was written for (its ``checkpoint.json``: the shard's name and its
    study's identity); :class:`StudyError` if the file cannot be read as JSON."""
    marker = folder / CHECKPOINT_FILE
    try:
        return json.loads(marker.read_text())
    except json.JSONDecodeError as exc:
        raise StudyError(f"{marker}: unreadable ({exc.msg})") from exc


def checkpoint_size(folder: Path) -> tuple[int, int]:
    """``(stage results, bytes)`` held by a checkpoint folder (``checkpoint.json`` not counted)."""
    files = [f for f in folder.iterdir() if _is_stage_result(f)] if folder.is_dir() else []
    return len(files), sum(f.stat().st_size for f in files)


def remove_checkpoint(folder: Path) -> int:
    """Remove a checkpoint folder (:meth:`StageCache.attach_checkpoint`) once its shard is written: its stage
    result files, its ``checkpoint.json`` and the folder if nothing else is left in it. Returns how many stage
    results it held; a folder without ``checkpoint.json`` is left alone (0)."""
    if not (folder / CHECKPOINT_FILE).is_file():
        return 0
    n = 0
    (folder / RUNS_FILE).unlink(missing_ok=True)
    for f in sorted(folder.iterdir()):
        if _is_stage_result(f):
            f.unlink()
            n += 1
        elif f.is_file() and f.name.startswith(".") and f.suffix == ".tmp":  # a write cut short by a killed process
            f.unlink()
    (folder / CHECKPOINT_FILE).unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()
    return n


class OutputLock:
    """An exclusive OS lock on ``out/.lock`` for the life of the process (released by the OS when the
    process dies): a second ``reproduce`` into a folder another process is writing is refused."""

    def __init__(self, out: Path) -> None:
        import fcntl

        self.path = out / LOCK_FILE
        self.fh = open(self.path, "a+")  # noqa: SIM115 - held open for the process's lifetime
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "another process"
            self.fh.close()
            raise StudyError(f"{out} is being written by {holder}: wait for it to finish or choose another --out") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"process {os.getpid()}")
        self.fh.flush()

    def release(self) -> None:
        import fcntl

        with contextlib.suppress(ValueError, OSError):
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()


def claim_output(out: Path, identity: dict) -> OutputLock:
    """Create or resume ``out`` and lock it; refuse a folder that holds something else."""
    identity = json.loads(json.dumps(identity))  # compare as stored (tuples become lists)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a folder: {out}")
    sf = out / STUDY_FILE
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        if not sf.is_file():
            raise StudyError(f"{out} is not empty and holds no {STUDY_FILE}: refusing to write a study there")
        try:
            old = json.loads(sf.read_text())
        except json.JSONDecodeError as exc:
            raise StudyError(f"{sf}: unreadable ({exc.msg})") from exc
        if old != identity:
            diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            raise StudyError(f"{out} holds a different study (differs in {', '.join(diff)}); choose another --out")
        log(f"resuming the study in {out}")
    try:  # the study's output is a folder of its own: its parents are created too
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}") from exc
    lock = OutputLock(out)
    atomic_write_json(sf, identity)
    return lock


class Study:
    """State of one run: model, output folder, settings, stage cache, neutral-text references, timings."""

    def __init__(self, model, out: Path, cfg: StudyConfig, data_root: Path | None, progress: bool = True) -> None:
        from ..model.loading import architecture_fingerprint, get_model_id

        self.model, self.out, self.cfg, self.data_root, self.progress = model, out, cfg, data_root, progress
        self.cache = StageCache(out / "cache")
        self.model_key = (get_model_id(model), architecture_fingerprint(model), str(next(model.parameters()).dtype))
        self.timings: dict[str, float] = {}
        self._refs: dict = {}

    # ---- neutral texts
    def _reference(self, kind: str, offset: int, n: int, chat: bool = False):
        if kind not in self._refs:
            from ..measure.damage import neutral_reference

            self._refs[kind] = neutral_reference(self.model, n_texts=n, offset=offset, chat=chat,
                                                 batch_size=min(8, self.cfg.batch_size))
        return self._refs[kind]

    def held_out_reference(self):
        """Dense distributions on the held-out neutral texts (bundled texts ``0 .. damage_texts − 1``): every
        reported damage is measured on them."""
        return self._reference("held-out", 0, self.cfg.damage.damage_texts)

    def fit_reference(self):
        """The next ``fit_texts`` bundled texts, disjoint from the held-out ones: strengths are searched and
        curves measured on them only."""
        return self._reference("fit", self.cfg.damage.damage_texts, self.cfg.damage.fit_texts)

    def chat_reference(self):
        """The held-out texts as the user turn of the chat template: the damage of persona prompts and RAG
        contexts, measured in the format they are used in."""
        return self._reference("chat", 0, self.cfg.damage.damage_texts, chat=True)

    def random_masks(self):
        """Two random masks of the study's sparsity (pole- and set-independent: built once)."""
        if "random" not in self._refs:
            from ..masks.build import random_mask

            m = self.cfg.masks
            self._refs["random"] = tuple(random_mask(self.model, sparsity=m.sparsity, modules=m.modules,
                                                     seed=self.cfg.seed + i) for i in (0, 1))
        return self._refs["random"]

    # ---- timings
    @contextlib.contextmanager
    def timed(self, name: str):
        """Log the start and end of a stage and add its wall time to ``timings[name]``."""
        t = time.perf_counter()
        log(f"start {name}")
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            self.timings[name] = round(self.timings.get(name, 0.0) + dt, 2)
            log(f"done  {name} ({dt:.1f} s)")
