"""The persona sets of a study, cut to its sizes, each with the identity its stages are cached under."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..data import PersonaSet
from .config import AI_TASKS, StudyConfig, StudyError


def items_hash(ps: PersonaSet) -> str:
    """SHA-256 (16 hex digits) of a set's name, poles, calibration and held-out items."""
    h = hashlib.sha256()
    h.update(json.dumps([ps.name, ps.pole_names]).encode())
    for it in (*ps.calibration, *ps.test):
        h.update(json.dumps([it.id, it.question, it.answer_a, it.answer_b]).encode())
    return h.hexdigest()[:16]


@dataclass
class StudySet:
    """One persona set as the study runs it.

    ``family``: ``mbti`` (the bundled axes), ``ai`` (the paper's AI-persona tasks and other sets in its CSV
    layout) or ``other``. ``tokens``: the positions whose statistics the masks are built from (the study's
    setting, or ``predict`` for sets whose answers are one token: see :func:`tokens_for`).
    """

    name: str
    ps: PersonaSet
    family: str
    tokens: str

    @property
    def poles(self) -> list[str]:
        return self.ps.pole_names

    def identity(self) -> dict:
        return {"name": self.name, "items": items_hash(self.ps), "family": self.family, "tokens": self.tokens}


def check_data_root(root: str | Path | None) -> Path | None:
    """The resolved ``--data-root``, or :class:`StudyError` if it is not laid out like shared/data."""
    if root is None:
        return None
    p = Path(root)
    missing = [f"ai_persona/{t}/{f}" for t in AI_TASKS for f in ("train.csv", "test_ab.csv") if not (p / "ai_persona" / t / f).is_file()]
    if missing:
        raise StudyError(f"--data-root {p} does not have the expected layout (missing {', '.join(missing[:3])}"
                         f"{'...' if len(missing) > 3 else ''}); point it at a folder laid out like shared/data")
    return p.resolve()


def tokens_for(ps: PersonaSet, tokens: str) -> str:
    """``predict`` for a set whose every answer is one token (Anthropic's ``Yes``/``No``), else ``tokens``.

    With one answer token, the ``answer`` positions hold the answer token itself, whose activations encode
    what was already decided; the position that *predicts* it (the last prompt token) is where the model
    makes the choice that the two-way evaluation scores."""
    return "predict" if ps.meta.get("one_token_answers") else tokens


def _load(spec: str, data_root: Path | None) -> tuple[str, PersonaSet, str]:
    from ..data import bundled_personas, load_persona_set

    name, _, path = spec.partition("=")
    if not path:
        name, path = "", spec
    if path in bundled_personas():
        ps, family = load_persona_set(path), "mbti"
    elif path in AI_TASKS:
        if data_root is None:
            raise StudyError(f"--sets names the AI-persona task {path!r}: give --data-root too")
        ps, family = load_persona_set(data_root / "ai_persona" / path), "ai"
    else:
        from ..data import resolve_set

        ps = resolve_set(path, data_root=data_root)
        family = "ai" if (Path(path) / "train.csv").is_file() else "other"
    return name or ps.name, ps, family


def default_specs(data_root: Path | None) -> list[str]:
    from ..data import bundled_personas

    return list(bundled_personas()) + (list(AI_TASKS) if data_root is not None else [])


def study_sets(cfg: StudyConfig, data_root: Path | None) -> list[StudySet]:
    """Every set the study runs (``cfg.sets.sets``: names, paths or ``NAME=PATH``), cut to its sizes."""
    specs = list(cfg.sets.sets) if cfg.sets.sets is not None else default_specs(data_root)
    out: list[StudySet] = []
    for spec in specs:
        name, ps, family = _load(spec, data_root)
        if name in {s.name for s in out}:
            raise StudyError(f"--sets: two sets are called {name!r}; name one NAME=PATH")
        n_cal = max(cfg.sets.calib_size, cfg.sets.calib_record if name == cfg.sets.analysis_set else 0)
        n_test = cfg.sets.test_size_mbti if family == "mbti" else cfg.sets.test_size_ai
        ps = ps.subset(n_cal, n_test)
        ps.name = name
        if len(ps.pole_names) != 2:
            raise StudyError(f"{name}: the study needs a persona pair (two poles), got {len(ps.pole_names)}")
        if not ps.test:
            raise StudyError(f"{name}: no held-out items")
        out.append(StudySet(name, ps, family, tokens_for(ps, cfg.masks.tokens)))
    return out
