"""Declared stages: a stage is a function of the study's settings and its inputs, cached under a key made
of exactly those.

``@stage("curve", settings=(SETTINGS.headline.curve_items, SETTINGS.nulls.curve_draws), version=1)`` on a function
``f(study, *, name, ps, method, ...)`` makes ``f(study, name=..., ...)`` look its result up in the study's
cache first. The key is a hash of the model's identity, the stage's name and version, the values of the
declared settings (:data:`~.config.SETTINGS` paths, read from :class:`~.config.StudyConfig`) and the identity of every keyword
input (:func:`identity`): a setting the stage does not declare cannot change its key, so a stage must
declare every setting it reads (``Study.cfg`` inside a stage is a view that refuses undeclared reads), and
a change to a declared setting or input reruns it. Bumping ``version`` invalidates old entries after a
change in the stage's code.

Results are stored as JSON (dataclasses with ``to_dict``/``from_dict`` are rebuilt as their type) or with
``torch.save`` (``store="torch"``: tensors, masks, per-text statistics).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass

import numpy as np
import torch

from ..results import from_plain, to_plain


def identity(x):
    """A JSON-able identity of a stage input: its content, or a content hash for large objects.

    Persona sets are identified by their name and the hash of all their items, tensors and arrays by a
    hash of their bytes, objects with an ``identity()`` method by it. Anything else is a ``TypeError``:
    an input whose identity is not defined cannot be part of a cache key.
    """
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else repr(x)
    if isinstance(x, (list, tuple)):
        return [identity(v) for v in x]
    if isinstance(x, Mapping):
        return {str(k): identity(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if hasattr(x, "identity") and callable(x.identity):
        return x.identity()
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        return {"tensor": hashlib.sha256(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"").hexdigest()[:16],
                "shape": list(t.shape), "dtype": str(t.dtype)}
    if isinstance(x, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16], "shape": list(x.shape),
                "dtype": str(x.dtype)}
    if is_dataclass(x) and not isinstance(x, type):  # settings sections, records
        return identity(x.to_dict() if hasattr(x, "to_dict") else asdict(x))
    raise TypeError(f"no cache identity for a {type(x).__name__} input: give it an identity() method or pass its parts")


_ALWAYS = ("seed", "batch_size")


class DeclaredConfig:
    """Read-only view of a :class:`StudyConfig` that answers only the settings a stage declared: reading
    ``cfg.headline.curve_items`` inside a stage that did not declare ``headline.curve_items`` (or all of
    ``headline``) is a ``KeyError`` naming the stage, so no setting can stay out of a cache key unnoticed."""

    def __init__(self, obj, allowed: Sequence[str], stage_name: str, prefix: str = "") -> None:
        self._obj, self._allowed, self._stage, self._prefix = obj, tuple(allowed), stage_name, prefix

    def __getattr__(self, name: str):
        path = f"{self._prefix}.{name}" if self._prefix else name
        if path in _ALWAYS or any(path == a or path.startswith(a + ".") for a in self._allowed):
            return getattr(self._obj, name)
        if any(a.startswith(path + ".") for a in self._allowed):
            return DeclaredConfig(getattr(self._obj, name), self._allowed, self._stage, path)
        raise KeyError(f"stage {self._stage!r} reads the setting {path!r} without declaring it")

    def get(self, path):
        obj = self
        for part in str(path).split("."):
            obj = getattr(obj, part)
        return obj


class StageView:
    """The study as a stage sees it: every attribute of the study, with ``cfg`` a :class:`DeclaredConfig`."""

    def __init__(self, study, cfg: DeclaredConfig) -> None:
        self._study, self.cfg = study, cfg

    def __getattr__(self, name: str):
        return getattr(self._study, name)


def stage_key(model_key, name: str, version: int, settings: dict, inputs: dict) -> str:
    blob = json.dumps([model_key, name, version, settings, inputs], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


#: Every declared stage: name -> (version, declared settings). A study shard records a hash of it (its code
#: identity), so shards computed by stages of different versions are not merged into one study.
STAGES: dict[str, tuple[int, tuple[str, ...]]] = {}


def stage(name: str, *, settings: Sequence[object] = (), version: int = 1, store: str = "json",
          result: type | None = None) -> Callable:
    """Declare a cached stage (see the module docstring).

    Args:
        settings: every :class:`StudyConfig` setting the stage reads, as :data:`~.config.SETTINGS` paths
            (``SETTINGS.nulls.swap``; a section, ``SETTINGS.masks``, declares all of it) or dotted strings
            (``seed`` and ``batch_size`` are always part of the key).
        store: ``"json"`` (plain data, records, or a dataclass with ``to_dict``) or ``"torch"``.
        result: the type the stage returns (a record, ``list[CurvePoint]``, ``dict[str, Record]``...): the
            cache holds its plain data (:func:`~persona_circuits.results.to_plain`), and a cached or computed
            result is returned as this type (:func:`~persona_circuits.results.from_plain`), so a stage returns
            the same records whether it ran or was read back. With ``store="torch"`` the type keeps its own
            tensors: the cache holds ``result.to_store()`` and a result is read back by ``result.from_store``.
    """
    if store not in ("json", "torch"):
        raise ValueError(f"store must be json or torch, got {store!r}")
    settings = tuple(str(s) for s in settings)  # the dotted paths: the key and the identity hold these strings

    def wrap(fn: Callable) -> Callable:
        def key_of(study, **inputs) -> str:
            """The cache key of this stage for ``inputs`` (``{name}-{key}`` names its cache entry)."""
            vals = {s: identity(study.cfg.get(s)) for s in (*settings, *_ALWAYS)}
            return stage_key(study.model_key, name, version, vals, identity(inputs))

        @functools.wraps(fn)
        def run(study, **inputs):
            study = study._study if isinstance(study, StageView) else study
            key = key_of(study, **inputs)

            def compute():
                out = fn(StageView(study, DeclaredConfig(study.cfg, settings, name)), **inputs)
                if store != "json":
                    return out if result is None else out.to_store()
                if result is not None:
                    return to_plain(out)
                return out.to_dict() if hasattr(out, "to_dict") else out

            val = study.cache.get_or_compute(name, key, compute, store=store)
            if result is None:
                return val
            return result.from_store(val) if store != "json" else from_plain(result, val, name)

        run.stage_name, run.settings, run.version, run.key_of = name, tuple(settings), version, key_of
        STAGES[name] = (version, tuple(settings))
        return run

    return wrap
