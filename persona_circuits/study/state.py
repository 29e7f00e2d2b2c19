"""State of one study run: the output folder (claimed or resumed), the content-hash cache of stages,
timings and the results being collected."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch

from .._io import atomic_write_json
from ..errors import OutputError
from .plan import STUDY_FILE, StudyConfig, StudyError


def stage_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def scores_to_dict(s) -> dict:
    d = {"logp": s.logp, "n_tokens": s.n_tokens}
    if s.features is not None:
        d["features"] = s.features
    return d


class Study:
    """State of one run: model, output folder, cache, results."""

    def __init__(self, model, out: Path, cfg: StudyConfig, data_root: Path | None, progress: bool = True) -> None:
        self.model, self.out, self.cfg, self.data_root, self.progress = model, out, cfg, data_root, progress
        self.cache = out / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        from ..models import architecture_fingerprint, get_model_id

        self.model_key = (get_model_id(model), architecture_fingerprint(model))
        self.results: dict = {"sets": {}, "timings": {}}

    # ---- caching
    def _path(self, kind: str, key: str, ext: str) -> Path:
        return self.cache / f"{kind}-{key}.{ext}"

    def cached_json(self, kind: str, parts, fn):
        p = self._path(kind, stage_hash(self.model_key, parts), "json")
        if p.is_file():
            return json.loads(p.read_text())
        val = fn()
        atomic_write_json(p, val)
        return val

    def cached_torch(self, kind: str, parts, fn):
        p = self._path(kind, stage_hash(self.model_key, parts), "pt")
        if p.is_file():
            return torch.load(p, weights_only=False)
        val = fn()
        tmp = p.with_suffix(".tmp")
        torch.save(val, tmp)
        os.replace(tmp, p)
        return val

    def scores(self, set_key, cond: str, fn):
        """Choice scores of condition ``cond`` on a set's items (cached by set key and condition label)."""
        from ..evaluation import ChoiceScores

        d = self.cached_torch("scores", (set_key, cond), lambda: scores_to_dict(fn()))
        return ChoiceScores(d["logp"], d["n_tokens"], d.get("features"))

    def _reference(self, kind: str, offset: int, n: int, chat: bool = False):
        refs = self.__dict__.setdefault("_refs", {})
        if kind not in refs:
            from ..damage import neutral_reference

            refs[kind] = neutral_reference(self.model, n_texts=n, offset=offset, chat=chat, batch_size=min(8, self.cfg.batch_size))
        return refs[kind]

    def held_out_reference(self):
        """Dense distributions on the held-out neutral texts (bundled texts ``0 .. damage_texts − 1``): every
        reported damage is measured on them (built once)."""
        return self._reference("held-out", 0, self.cfg.setting("damage_texts"))

    def fit_reference(self):
        """Dense distributions on the fitting texts (the next ``fit_texts`` bundled texts, disjoint from the
        held-out ones): strengths are searched and curves measured on them only."""
        return self._reference("fit", self.cfg.setting("damage_texts"), self.cfg.setting("fit_texts"))

    def chat_reference(self):
        """The held-out texts as the user turn of the chat template: the damage of persona prompts and RAG
        contexts, measured in the format they are used in."""
        return self._reference("chat", 0, self.cfg.setting("damage_texts"), chat=True)

    def neutral_reference(self):
        """The held-out reference (kept for the stages that report one damage per condition)."""
        return self.held_out_reference()

    def random_masks(self):
        """Two random masks of the study's sparsity (pole- and set-independent: built once)."""
        if not hasattr(self, "_random"):
            from ..masks import random_mask

            c = self.cfg
            self._random = tuple(random_mask(self.model, sparsity=c.sparsity, modules=c.modules, seed=c.seed + i) for i in (0, 1))
        return self._random

    def timed(self, name: str):
        study = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()
                log(f"start {name}")

            def __exit__(self, *exc):
                dt = time.perf_counter() - self.t
                study.results["timings"][name] = round(study.results["timings"].get(name, 0.0) + dt, 2)
                log(f"done  {name} ({dt:.1f} s)")

        return _T()


def norm_identity(identity: dict) -> dict:
    """Identity with unset (None) config options dropped, as written by every version."""
    cfg = {k: v for k, v in (identity.get("config") or {}).items() if v is not None}
    return {**identity, "config": cfg}


def claim_output(out: Path, identity: dict) -> None:
    """Create or resume ``out``; refuse a folder that holds something else."""
    identity = json.loads(json.dumps(identity))  # compare as stored (tuples become lists)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a folder: {out}")
    sf = out / STUDY_FILE
    if out.is_dir() and any(out.iterdir()):
        if not sf.is_file():
            raise StudyError(f"{out} is not empty and holds no {STUDY_FILE}: refusing to write a study there")
        try:
            old = json.loads(sf.read_text())
        except json.JSONDecodeError as exc:
            raise StudyError(f"{sf}: unreadable ({exc.msg})") from exc
        old, new = norm_identity(old), norm_identity(identity)
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise StudyError(f"{out} holds a different study (differs in {', '.join(diff)}); choose another --out")
        log(f"resuming the study in {out}")
    try:  # the study's output is a folder of its own: its parents are created too
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}") from exc
    atomic_write_json(sf, identity)
