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


class StageCache:
    """Stage results under ``folder``, one file per stage key (``<stage>-<key>.json`` or ``.pt``), written
    atomically: an interrupted run leaves whole files only, and rerunning resumes from them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
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
        return val

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
            if not f.is_file() or f.suffix not in (".json", ".pt") or dst.exists():
                continue
            try:
                os.link(f, dst)
            except OSError:
                atomic_write_bytes(dst, f.read_bytes())
            added += 1
        return added


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
