"""The persona sets of a study, cut to its sizes, each with the identity its stages are cached under."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import PersonaSet
from ..errors import PersonaCircuitsError
from .config import AI_TASKS, StudyConfig, StudyError


@dataclass
class StudySet:
    """One persona set as the study runs it.

    ``family``: ``mbti`` (the bundled axes), ``ai`` (the paper's AI-persona tasks and other sets in its CSV
    layout) or ``other``. ``tokens``: the positions whose statistics the masks are built from (see
    :func:`tokens_for` for sets whose answers are one token).
    """

    name: str
    ps: PersonaSet
    family: str
    tokens: str

    @property
    def poles(self) -> list[str]:
        return self.ps.pole_names

    def identity(self) -> dict:
        return {"name": self.name, "items": self.ps.identity_hash(), "family": self.family, "tokens": self.tokens}


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
    """The statistics positions of a set: the study's setting, also for one-token answers.

    For a set whose answers are one token (Anthropic's ``Yes``/``No``) the position that the two-way choice
    scores is the one that *predicts* the answer: the last prompt token. But both poles' calibration texts
    of an item share that prompt, so at the predicting position the two poles' activations are identical
    text by text, every contrastive z is 0 and no pole can be told from the other: ``predict`` cannot build
    a contrastive mask there. The ``answer`` position (the answer token itself, read by every later
    position) is the one whose activations differ between the poles, so the study keeps ``answer``."""
    return tokens


def family_of(ps: PersonaSet) -> str:
    """``mbti`` for a bundled MBTI axis (however it was named), ``ai`` for a set in the paper's CSV layout (the
    AI-persona tasks: their stages, such as the paper table, apply), ``other`` for anything else."""
    from ..data import PERSONAS_DIR

    fmt = ps.meta.get("format")
    if fmt == "paper-csv":
        return "ai"
    if fmt == "package" and Path(ps.source).resolve().parent == PERSONAS_DIR.resolve() and ps.name.startswith("mbti-"):
        return "mbti"
    return "other"


def default_specs(data_root: Path | None) -> list[str]:
    from ..data import bundled_personas

    return list(bundled_personas()) + (list(AI_TASKS) if data_root is not None else [])


def study_sets(cfg: StudyConfig, data_root: Path | None) -> list[StudySet]:
    """Every set the study runs (``cfg.sets.sets``: names, paths or ``NAME=PATH``), cut to its sizes."""
    from ..data import resolve_set

    specs = list(cfg.sets.sets) if cfg.sets.sets is not None else default_specs(data_root)
    out: list[StudySet] = []
    for spec in specs:
        if spec in AI_TASKS and data_root is None:
            raise StudyError(f"--sets names the AI-persona task {spec!r}: give --data-root too")
        try:
            ps = resolve_set(spec, data_root=data_root)
        except PersonaCircuitsError as exc:
            raise StudyError(f"--sets: {exc}") from exc
        name, family = ps.name, family_of(ps)
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
