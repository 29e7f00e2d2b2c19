"""The shard folder's format (``SHARD_DIR/shard.json``), below the shards (:mod:`.shards`) that write it and the
merge (:mod:`.merge`) that reads it: its name and format version, the cross-set shard's name, reading and
writing, and the one-line description of where two shards' JSON differ."""

from __future__ import annotations

import json
from pathlib import Path

from ..results import ResultsError, Shard
from .config import StudyError

#: The shard of the cross-set stages (the 16 types, the atlas).
CROSS = "cross"
SHARD_FILE = "shard.json"
#: Layout of ``shard.json``.
SHARD_FORMAT = 1


class ShardError(StudyError):
    """Shards that cannot be merged into one study (or a shard folder that cannot be read)."""


def _short(v) -> str:
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 60 else s[:57] + "..."


def first_difference(a, b, path: str = "") -> str | None:
    """The first place where two JSON values differ, as ``path: A vs B`` (``None`` if equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path + '.' if path else ''}{k}: {'absent' if k not in a else _short(a[k])} vs " \
                       f"{'absent' if k not in b else _short(b[k])}"
            d = first_difference(a[k], b[k], f"{path + '.' if path else ''}{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path or 'value'}: {_short(a)} vs {_short(b)}"


def read_shard(folder: str | Path) -> Shard:
    """The shard of a shard folder (``shard.json``); :class:`ShardError` if it is not one."""
    path = Path(folder) / SHARD_FILE
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ShardError(f"{folder}: not a study shard (no {SHARD_FILE})") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(d, dict) or d.get("format") != SHARD_FORMAT:
        raise ShardError(f"{path}: not a shard of format {SHARD_FORMAT} (found {d.get('format') if isinstance(d, dict) else d!r})")
    try:
        return Shard.from_dict(d, str(path))
    except ResultsError as exc:
        raise ShardError(str(exc)) from exc


def write_shard(folder: str | Path, shard: Shard) -> Path:
    """``folder/shard.json`` (written atomically; one JSON value per line of indentation, keys sorted)."""
    from .._io import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(folder / SHARD_FILE, json.dumps(shard.to_dict(), indent=1, sort_keys=True) + "\n")
