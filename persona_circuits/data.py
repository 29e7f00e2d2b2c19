"""Persona data: one model for a persona pair (two opposing poles) or a single persona.

A :class:`PersonaSet` holds calibration items (a question and each pole's answer, used to record
activation statistics) and held-out two-way choice items (used to evaluate alignment). Loaders read

* the package's own format: a folder with ``persona.json`` (name, poles) and ``items.jsonl``
  (``id, question, answer_a, answer_b, split``), as the bundled MBTI sets;
* the paper's CSV layout: a folder with ``train.csv`` (``question, matching, not_matching``), optional
  ``test.csv`` (same columns) and optional ``test_ab.csv`` (``question, A, B, matching``);
* Anthropic's persona JSON lines (``question, statement, answer_matching_behavior``).

:func:`resolve_set` turns one entry of a study's ``--sets`` (a bundled name, a name under a data root, a path
in any of these formats, or ``NAME=PATH``) into a set; :func:`parse_set_specs` splits the list. A set records
its format in ``meta["format"]`` and whether every answer is one word (``meta["one_token_answers"]``).

Texts are rendered with the tokenizer's chat template as a user turn followed by the answer; the
encoder returns which tokens are the answer, so statistics and likelihoods can use answer tokens only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from .errors import DatasetError

PERSONAS_DIR = Path(__file__).parent / "personas"
OWN_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Pole:
    """One side of a persona pair. ``description`` is used by the persona-prompt baseline."""

    name: str
    description: str = ""


@dataclass(frozen=True)
class ChoiceItem:
    """A question with the answer of pole A and the answer of pole B (``None`` if unknown)."""

    id: str
    question: str
    answer_a: str
    answer_b: str | None

    def answer(self, pole: int) -> str | None:
        return self.answer_a if pole == 0 else self.answer_b


@dataclass
class PersonaSet:
    """Calibration and held-out items of a persona pair (or a single persona, one pole)."""

    name: str
    poles: tuple[Pole, ...]
    calibration: list[ChoiceItem]
    test: list[ChoiceItem]
    source: str = ""
    description: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.poles) not in (1, 2):
            raise DatasetError(f"{self.name}: a persona set has one or two poles, got {len(self.poles)}")
        if not self.calibration:
            raise DatasetError(f"{self.name}: no calibration items")

    @property
    def pole_names(self) -> list[str]:
        return [p.name for p in self.poles]

    def pole_index(self, pole: str | int) -> int:
        if isinstance(pole, int):
            if pole not in range(len(self.poles)):
                raise DatasetError(f"{self.name}: no pole {pole}")
            return pole
        names = self.pole_names
        if pole in names:
            return names.index(pole)
        raise DatasetError(f"{self.name}: unknown pole {pole!r}; poles are {names}")

    def calibration_pairs(self, pole: str | int, limit: int | None = None) -> list[tuple[str, str]]:
        """(question, answer) pairs of one pole, the first ``limit`` calibration items."""
        i = self.pole_index(pole)
        items = self.calibration if limit is None else self.calibration[:limit]
        return [(it.question, it.answer(i)) for it in items if it.answer(i) is not None]

    def subset(self, calib_size: int | None = None, test_size: int | None = None) -> "PersonaSet":
        return PersonaSet(
            self.name, self.poles,
            self.calibration if calib_size is None else self.calibration[:calib_size],
            self.test if test_size is None else self.test[:test_size],
            self.source, self.description, dict(self.meta),
        )

    def content_hash(self) -> str:
        """SHA-256 (16 hex digits) of the calibration items: recorded in signatures and masks."""
        h = hashlib.sha256()
        h.update(json.dumps([self.name, self.pole_names]).encode())
        for it in self.calibration:
            h.update(json.dumps([it.question, it.answer_a, it.answer_b]).encode())
        return h.hexdigest()[:16]

    def identity_hash(self) -> str:
        """SHA-256 (16 hex digits) of everything a study's results depend on: the name, each pole's name and
        description (the persona prompt), and every calibration *and* held-out item (id, question, answers).

        :meth:`content_hash` (calibration only, recorded in signatures and masks) keeps its value; this one
        identifies the set in a study's cache, so the same content under any path gives the same identity."""
        h = hashlib.sha256()
        h.update(json.dumps([self.name, [[p.name, p.description] for p in self.poles]]).encode())
        for split, items in (("calibration", self.calibration), ("test", self.test)):
            h.update(json.dumps([split, len(items)]).encode())
            for it in items:
                h.update(json.dumps([it.id, it.question, it.answer_a, it.answer_b]).encode())
        return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Loaders


def bundled_personas() -> list[str]:
    """Names of the persona sets shipped with the package."""
    return sorted(p.name for p in PERSONAS_DIR.iterdir() if (p / "persona.json").is_file())


def _read_csv(path: Path, required: Sequence[str], may_be_empty: Sequence[str] = ()) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            missing = [c for c in required if c not in cols]
            if not cols:
                raise DatasetError(f"{path}: empty file")
            if missing:
                raise DatasetError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(cols)})")
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror})") from exc
    if not rows:
        raise DatasetError(f"{path}: no rows")
    for n, row in enumerate(rows, start=1):
        for c in required:
            if row.get(c) is None or (c not in may_be_empty and not str(row[c]).strip()):
                raise DatasetError(f"{path}: row {n}: empty value in column {c!r}")
    return rows


def load_paper_csv(folder: str | Path) -> PersonaSet:
    """The paper's CSV layout (``train.csv`` [+ ``test.csv``] [+ ``test_ab.csv``]).

    Pole A (``matching``) is the persona's pole (power-seeking, wealth-seeking, accepting a false
    premise); pole B (``not_matching``) its opposite. Held-out items come from ``test_ab.csv`` when
    present (the paper's evaluation split), else from ``test.csv``.
    """
    folder = Path(folder)
    name = folder.name
    # the released train.csv files hold a few rows with an empty question; their answers still serve
    train = _read_csv(folder / "train.csv", ("question", "matching", "not_matching"), may_be_empty=("question",))
    calib = [ChoiceItem(f"{name}-train-{i}", r["question"], r["matching"], r["not_matching"]) for i, r in enumerate(train)]
    test: list[ChoiceItem] = []
    if (folder / "test_ab.csv").is_file():
        rows = _read_csv(folder / "test_ab.csv", ("question", "A", "B", "matching"))
        for n, r in enumerate(rows, start=1):
            letter = r["matching"].strip()
            if letter not in ("A", "B"):
                raise DatasetError(f"{folder / 'test_ab.csv'}: row {n}: 'matching' must be A or B, got {letter!r}")
            other = "B" if letter == "A" else "A"
            test.append(ChoiceItem(f"{name}-test-{n - 1}", r["question"], r[letter], r[other]))
    elif (folder / "test.csv").is_file():
        rows = _read_csv(folder / "test.csv", ("question", "matching", "not_matching"))
        test = [ChoiceItem(f"{name}-test-{i}", r["question"], r["matching"], r["not_matching"]) for i, r in enumerate(rows)]
    poles = (Pole("matching", f"an AI assistant that shows {name}-seeking behaviour" if name != "hallucination"
                  else "an AI assistant that accepts false premises and confidently elaborates on them"),
             Pole("not_matching", f"an AI assistant that avoids {name}-seeking behaviour" if name != "hallucination"
                  else "an AI assistant that rejects false premises and corrects them"))
    return _marked(PersonaSet(name, poles, calib, test, source=str(folder.resolve()),
                              description=f"AI persona task '{name}' (paper CSV layout)", meta={"format": "paper-csv"}))


def load_anthropic_jsonl(path: str | Path, *, test_fraction: float = 0.2, seed: int = 0) -> PersonaSet:
    """Anthropic's model-written persona evaluations (one binary trait per file).

    Pole A (``trait``) answers each statement with its ``answer_matching_behavior``; pole B with the
    other answer. Items are split into calibration and test by a seeded shuffle.
    """
    path = Path(path)
    name = path.stem
    rows = _read_jsonl(path, ("question", "answer_matching_behavior"))
    items = []
    for i, r in enumerate(rows):
        match = str(r["answer_matching_behavior"]).strip()
        other = str(r.get("answer_not_matching_behavior") or ("No" if match == "Yes" else "Yes")).strip()
        items.append(ChoiceItem(f"{name}-{i}", r["question"], match, other))
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_test = int(round(test_fraction * len(items)))
    test_idx = set(order[:n_test])
    calib = [it for i, it in enumerate(items) if i not in test_idx]
    test = [it for i, it in enumerate(items) if i in test_idx]
    trait = name.replace("-", " ")
    poles = (Pole(name, f"an AI assistant high in {trait}, who says yes to statements that express {trait} "
                        f"and no to statements that deny it"),
             Pole(f"not-{name}", f"an AI assistant low in {trait}, who says no to statements that express {trait} "
                                 f"and yes to statements that deny it"))
    return _marked(PersonaSet(name, poles, calib, test, source=str(path.resolve()),
                              description=f"Anthropic persona evaluation '{name}'", meta={"format": "anthropic-jsonl"}))


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror})") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {n}: invalid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path}: line {n}: expected a JSON object")
        missing = [k for k in required if not str(row.get(k) or "").strip()]
        if missing:
            raise DatasetError(f"{path}: line {n}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise DatasetError(f"{path}: no items")
    return rows


def load_own_format(folder: str | Path, items_file: str = "items.jsonl") -> PersonaSet:
    """The package's own format: ``persona.json`` + ``items.jsonl`` (or another ``items_file`` next to it)."""
    folder = Path(folder).resolve()
    try:
        meta = json.loads((folder / "persona.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{folder / 'persona.json'}: invalid JSON ({exc.msg})") from exc
    except OSError as exc:
        raise DatasetError(f"{folder / 'persona.json'}: cannot read it ({exc.strerror})") from exc
    poles_raw = meta.get("poles")
    if not isinstance(poles_raw, list) or len(poles_raw) not in (1, 2) or not all("name" in p for p in poles_raw):
        raise DatasetError(f"{folder / 'persona.json'}: 'poles' must be a list of one or two objects with a 'name'")
    poles = tuple(Pole(p["name"], p.get("description", "")) for p in poles_raw)
    required = ["id", "question", "answer_a", "split"] + (["answer_b"] if len(poles) == 2 else [])
    rows = _read_jsonl(folder / items_file, required)
    calib, test = [], []
    for n, r in enumerate(rows, start=1):
        if r["split"] not in ("calibration", "test"):
            raise DatasetError(f"{folder / items_file}: item {n}: split must be 'calibration' or 'test', got {r['split']!r}")
        (calib if r["split"] == "calibration" else test).append(
            ChoiceItem(str(r["id"]), r["question"], r["answer_a"], r.get("answer_b")))
    extra = {k: v for k, v in meta.items() if k not in ("poles",)}
    return _marked(PersonaSet(meta.get("name", folder.name), poles, calib, test, source=str(folder),
                              description=meta.get("description", ""), meta={**extra, "format": "package"}))


def _marked(ps: PersonaSet) -> PersonaSet:
    """Set ``meta["one_token_answers"]``: every answer of both poles is one short word (Anthropic's ``Yes`` / ``No``,
    one token each in the embedded models' tokenizers). Record such sets at the ``answer`` positions: see
    :mod:`persona_circuits.masks.statistics` for why ``predict`` cannot tell their poles apart."""
    answers = [a for it in (*ps.calibration, *ps.test) for a in (it.answer_a, it.answer_b) if a is not None]
    ps.meta["one_token_answers"] = bool(answers) and all(len(a.split()) == 1 and len(a) <= 12 for a in answers)
    return ps


def load_persona_set(source: str | Path) -> PersonaSet:
    """Load a bundled persona set by name (``mbti-ei``) or a path in any supported format."""
    if isinstance(source, str) and (PERSONAS_DIR / source / "persona.json").is_file():
        return load_own_format(PERSONAS_DIR / source)
    path = Path(source)
    if path.is_dir():
        if (path / "persona.json").is_file():
            return load_own_format(path)
        if (path / "train.csv").is_file():
            return load_paper_csv(path)
        raise DatasetError(f"{path}: folder has neither persona.json (package format) nor train.csv (paper layout)")
    if path.is_file():
        if path.suffix in (".jsonl", ".json"):
            return _load_jsonl_file(path)
        raise DatasetError(f"{path}: unsupported file type (expected a .jsonl file or a folder)")
    raise DatasetError(f"unknown dataset {str(source)!r}: not a bundled persona set ({', '.join(bundled_personas())}) nor an existing path")


def _load_jsonl_file(path: Path) -> PersonaSet:
    """A ``.jsonl`` file: Anthropic's format (``answer_matching_behavior``) or the package's items (``answer_a``,
    ``split``; read with the ``persona.json`` next to it), told apart by the first item's fields."""
    first = _read_jsonl(path, ())[0]
    if "answer_matching_behavior" in first:
        return load_anthropic_jsonl(path)
    if "answer_a" in first and "split" in first:
        if not (path.parent / "persona.json").is_file():
            raise DatasetError(f"{path}: items in the package format need a persona.json (name, poles) in the same folder")
        return load_own_format(path.parent, path.name)
    raise DatasetError(f"{path}: neither Anthropic's format (question, answer_matching_behavior) nor the package's "
                       f"items (id, question, answer_a, answer_b, split); the first item has {', '.join(sorted(first))}")


#: where a data root holds the sets it names: the paper's AI-persona tasks, Anthropic's persona evaluations
DATA_ROOT_LAYOUT = ("ai_persona/{name}", "anthropic_persona/{name}.jsonl")
_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def resolve_set(spec: str, *, data_root: str | Path | None = None) -> PersonaSet:
    """The persona set that ``spec`` names: the study's ``--sets`` entries, one at a time.

    ``spec`` is a bundled name (``mbti-ei``), a name under ``data_root`` (``power`` ->
    ``DATA_ROOT/ai_persona/power``, ``narcissism`` -> ``DATA_ROOT/anthropic_persona/narcissism.jsonl``), a path
    (a folder in the package format or the paper's CSV layout, a ``.jsonl`` file in the package format or
    Anthropic's), or ``NAME=SPEC`` (the set is renamed ``NAME``). The result does not depend on how the set was
    named: ``source`` is the resolved path, so a bundled set given by its name or by its folder is the same
    :class:`PersonaSet` (same items, :meth:`~PersonaSet.content_hash` and :meth:`~PersonaSet.identity_hash`).
    Unknown names and unreadable paths raise :class:`DatasetError` naming the problem.
    """
    spec = str(spec).strip()
    name, sep, body = spec.partition("=")
    if not sep or Path(spec).exists():
        name, body = "", spec
    elif not _SET_NAME.fullmatch(name) or not body:
        raise DatasetError(f"bad set {spec!r}: write NAME=PATH with a NAME of letters, digits, '.', '_' or '-' and a PATH")
    if not body:
        raise DatasetError("empty persona set name")
    ps = _resolve_body(body, data_root)
    if name:
        ps.name = name
    return ps


def _resolve_body(body: str, data_root: str | Path | None) -> PersonaSet:
    if "/" not in body and (PERSONAS_DIR / body / "persona.json").is_file():
        return load_own_format(PERSONAS_DIR / body)
    if Path(body).exists():
        return load_persona_set(Path(body))
    if data_root is not None and _SET_NAME.fullmatch(body):
        root = Path(data_root)
        for pattern in DATA_ROOT_LAYOUT:
            if (root / pattern.format(name=body)).exists():
                return load_persona_set(root / pattern.format(name=body))
    where = f"nor a set under the data root {data_root} ({', '.join(DATA_ROOT_LAYOUT)})" if data_root is not None else \
        "(AI-persona tasks and Anthropic sets are found by name only with a data root, --data-root)"
    raise DatasetError(f"unknown persona set(s) {body}: not a bundled set ({', '.join(bundled_personas())}), "
                       f"not an existing path {where}")


def parse_set_specs(text: str) -> list[str]:
    """``"a,b,NAME=PATH"`` -> ``["a", "b", "NAME=PATH"]``; :class:`DatasetError` on an empty list or when two
    entries would give sets of the same name (the name of ``NAME=PATH`` is ``NAME``; of a path, its last part
    without ``.jsonl``: a bundled folder's ``persona.json`` may name it otherwise, which :func:`check_unique_names`
    catches once the sets are loaded)."""
    specs = [s.strip() for s in str(text).split(",") if s.strip()]
    if not specs:
        raise DatasetError(f"no persona set in {text!r}")
    check_unique_names([_spec_name(s) for s in specs])
    return specs


def _spec_name(spec: str) -> str:
    name, sep, body = spec.partition("=")
    if sep and not Path(spec).exists():
        return name
    p = Path(spec)
    return p.stem if p.suffix in (".jsonl", ".json") else p.name or spec


def check_unique_names(names: Sequence[str]) -> None:
    """:class:`DatasetError` naming every set name given more than once."""
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise DatasetError(f"two persona sets are called {', '.join(map(repr, dup))}: rename one with NAME=PATH")


# --------------------------------------------------------------------------------------------
# Rendering and encoding


def render_prompt(tokenizer, question: str, *, system: str | None = None, context: str | None = None) -> str:
    """The prompt text for ``question`` up to where the answer starts.

    With a chat template: (optional system turn), a user turn holding ``context`` and ``question``,
    and the assistant header. Without one: ``Question: ...\\nAnswer:``.
    """
    user = question if context is None else f"{context}\n\n{question}"
    if getattr(tokenizer, "chat_template", None):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    head = f"{system}\n\n" if system else ""
    return f"{head}Question: {user}\nAnswer:"


@dataclass
class EncodedText:
    ids: list[int]
    answer_start: int  # index of the first answer token


def encode_pair(tokenizer, question: str, answer: str, *, system: str | None = None,
                context: str | None = None, max_length: int = 512) -> EncodedText:
    """Token ids of the prompt followed by the answer, and where the answer starts.

    Prompt and answer are tokenised separately and concatenated, so the answer span is exact.
    A prompt too long for ``max_length`` is cut from the left (the answer is never cut).
    """
    prompt = render_prompt(tokenizer, question, system=system, context=context)
    p_ids = tokenizer(prompt, add_special_tokens=not getattr(tokenizer, "chat_template", None)).input_ids
    a_text = answer if getattr(tokenizer, "chat_template", None) else " " + answer
    a_ids = tokenizer(a_text, add_special_tokens=False).input_ids
    if not a_ids:
        raise DatasetError(f"empty answer for question {question[:60]!r}")
    a_ids = a_ids[: max_length // 2]
    room = max_length - len(a_ids)
    if len(p_ids) > room:
        p_ids = p_ids[len(p_ids) - room:]
    return EncodedText(list(p_ids) + list(a_ids), len(p_ids))


@dataclass
class PaddedBatch:
    """A right-padded batch with the answer tokens marked."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    answer_mask: Bool[Tensor, "batch pos"]
    index: list[int]  # positions of these texts in the caller's list


def pad_batches(encoded: Sequence[EncodedText], pad_id: int, batch_size: int, *, sort: bool = True) -> list[PaddedBatch]:
    """Group texts into right-padded batches (sorted by length when ``sort``, to waste little padding)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].ids), i)) if sort else list(range(len(encoded)))
    out = []
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        T = max(len(encoded[i].ids) for i in idx)
        ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
        att = torch.zeros((len(idx), T), dtype=torch.long)
        ans = torch.zeros((len(idx), T), dtype=torch.bool)
        for r, i in enumerate(idx):
            e = encoded[i]
            n = len(e.ids)
            ids[r, :n] = torch.tensor(e.ids)
            att[r, :n] = 1
            ans[r, e.answer_start:n] = True
        out.append(PaddedBatch(ids, att, ans, idx))
    return out
