"""The base of every results record: a dataclass that reads itself from, and writes itself back to, the plain
JSON dicts of ``results.json``.

Each record declares its fields with types (``float``, ``list[float]``, ``X | None``, another record,
``dict[str, Record]``...). :meth:`Record.from_dict` checks every value against its field's type and
raises :class:`ResultsError` naming the path of the first value that does not fit, so a report or
figure never meets a missing number half-way through. Optional fields (``X | None``) may be absent:
absent means "not measured in this run", and nothing is filled in for them. Keys a record does not
know (written by a newer study) are kept in ``extra`` and written back unchanged by
:meth:`Record.to_dict`, so loading never drops data. ``to_dict`` leaves out fields that are ``None``:
``from_dict(r.to_dict()) == r`` for every record.
"""

from __future__ import annotations

import dataclasses
import types
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

from ..errors import PersonaCircuitsError

#: The decorator of every record class: keyword-only fields, so adding a field never reorders a call.
record = dataclasses.dataclass(kw_only=True)


class ResultsError(PersonaCircuitsError):
    """``results.json`` does not follow the results contract (a required value is missing or of the wrong kind)."""


@record
class Record:
    """A typed part of the study's results (subclasses declare the fields)."""

    #: Keys this record does not know (written by a newer study), kept and written back unchanged.
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=True)

    @classmethod
    def from_dict(cls, d: dict, where: str | None = None):
        """The record of a plain dict (as ``json.load`` returns it); :class:`ResultsError` if it does not fit."""
        where = where or cls.__name__
        if not isinstance(d, dict):
            raise ResultsError(f"{where}: expected an object, got {type(d).__name__}")
        hints = _hints(cls)
        kw, extra = {}, {}
        for k, v in d.items():
            if k in hints and k != "extra":
                kw[k] = _decode(hints[k], v, f"{where}.{k}")
            else:
                extra[k] = v
        missing = [f.name for f in _required(cls) if f.name not in kw or kw[f.name] is None]
        if missing:
            raise ResultsError(f"{where}: missing {', '.join(missing)}")
        return cls(**kw, extra=extra)

    def update(self, **values) -> "Record":
        """Set fields by name (as a dict's ``update``), checked: a name that is not a field of this record raises
        :class:`ResultsError` (a verdict never lands in ``extra`` by a typo). Returns the record."""
        names = _field_names(type(self))
        unknown = sorted(k for k in values if k not in names)
        if unknown:
            raise ResultsError(f"{type(self).__name__} has no field {', '.join(unknown)}")
        for k, v in values.items():
            setattr(self, k, v)
        return self

    def update_from(self, other: "Record") -> "Record":
        """Set this record's fields from ``other``'s: every field ``other`` holds (not ``None``), each of which must
        be a field of this record (checked as :meth:`update`); e.g. a matched row takes a contrast's ``n``,
        ``shift``, ``moved`` and their intervals. Returns the record."""
        return self.update(**{f.name: getattr(other, f.name) for f in dataclasses.fields(other)
                              if f.name != "extra" and getattr(other, f.name) is not None})

    def to_dict(self) -> dict:
        """The plain dict of this record (fields that are ``None`` left out, unknown keys kept)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name != "extra" and v is not None:
                out[f.name] = _encode(v)
        out.update(self.extra)
        return out


@cache
def _hints(cls) -> dict[str, Any]:
    return {k: v for k, v in get_type_hints(cls).items() if k in {f.name for f in dataclasses.fields(cls)}}


@cache
def _field_names(cls) -> frozenset:
    return frozenset(f.name for f in dataclasses.fields(cls)) - {"extra"}


@cache
def _required(cls) -> tuple:
    return tuple(f for f in dataclasses.fields(cls)
                 if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def _is_record(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, Record)


def _decode(tp, v, where: str):
    """``v`` (plain JSON) as type ``tp``: records built, containers walked, scalars checked (never coerced)."""
    if v is None or tp is Any:
        return v
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        errors = []
        for a in args:
            try:
                return _decode(a, v, where)
            except ResultsError as exc:
                errors.append(str(exc))
        raise ResultsError(errors[0] if len(errors) == 1 else f"{where}: fits none of {tp} ({'; '.join(errors)})")
    if origin in (list, tuple):
        if not isinstance(v, (list, tuple)):
            raise ResultsError(f"{where}: expected a list, got {type(v).__name__}")
        args = get_args(tp)
        item = args[0] if args else Any
        out = [_decode(item, x, f"{where}[{i}]") for i, x in enumerate(v)]
        if origin is tuple:
            if args and args[-1] is not Ellipsis and len(out) != len(args):
                raise ResultsError(f"{where}: expected {len(args)} values, got {len(out)}")
            return tuple(out)
        return out
    if origin is dict:
        if not isinstance(v, dict):
            raise ResultsError(f"{where}: expected an object, got {type(v).__name__}")
        _, item = get_args(tp) or (str, Any)
        return {k: _decode(item, x, f"{where}.{k}") for k, x in v.items()}
    if _is_record(tp):
        return tp.from_dict(v, where)
    return _check_scalar(tp, v, where)


def _check_scalar(tp, v, where: str):
    ok = {float: lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
          int: lambda x: isinstance(x, int) and not isinstance(x, bool),
          bool: lambda x: isinstance(x, bool), str: lambda x: isinstance(x, str),
          dict: lambda x: isinstance(x, dict), list: lambda x: isinstance(x, list)}.get(tp)
    if ok is not None and not ok(v):
        name = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(tp, tp.__name__)
        raise ResultsError(f"{where}: expected {name}, got {v!r:.60}")
    return v


def _encode(v):
    if isinstance(v, Record):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if isinstance(v, dict):
        return {k: _encode(x) for k, x in v.items()}
    return v


def to_plain(value):
    """``value`` as plain JSON data: records (and lists, tuples, dicts of them) as their dicts."""
    return _encode(value)


def from_plain(tp, value, where: str | None = None):
    """Plain JSON data ``value`` read as type ``tp`` (a record, ``list[Record]``, ``dict[str, Record]``, a
    scalar...), checked like :meth:`Record.from_dict`; :class:`ResultsError` naming ``where`` if it does not fit."""
    return _decode(tp, value, where or getattr(tp, "__name__", str(tp)))


__all__ = ["Record", "ResultsError", "from_plain", "record", "to_plain"]
