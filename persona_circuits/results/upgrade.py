"""The schema's versions, in one place: :data:`SCHEMA_VERSION` (what this package writes) and :func:`upgrade`, which
brings every older ``results.json`` to the current shape, one version at a time. Nothing else in the package
compares versions: the records, the report and the figures read the current shape only.

Version 1 (the files written before the results contract; no ``"schema"`` key) differs from version 2 in
names only; every value is kept:

* ``sets.<set>.effect_damage`` is ``sets.<set>.headline``;
* ``probes``, ``similarity``, ``restore`` or ``removal`` in a layout older than version 1 (before the lexical
  baselines, the permutation null, the two-mask restore, the matched-count removal) are kept as
  ``<name>_legacy``: no report section or figure reads them.

In every version, a pole contrast (``sets.<set>.contrasts[]`` and the analysis set's ``full_contrast``,
``contrast``, ``contrastive_contrast``, ``random_pair_contrast`` and ``shift_vs_dense`` entries) that calls the
share of items moved towards the pole ``accuracy`` / ``accuracy_ci95`` has it renamed ``moved`` /
``moved_ci95``, the name the curves, the matched-damage rows and ``persona-circuits evaluate`` use: version-1
files wrote ``accuracy`` in every contrast, and schema-2 files of the rebuilt study in the analysis set's
contrasts until its contrast record took the name ``moved``.

Fields that version 2 added (held-out damage intervals, Holm-adjusted p-values, the paper table, ...) stay
absent: the report says "not measured in this run" for them. What the older rows measured differently is a
field of the rows themselves, read the same way in every version (the design of a matched row's null test,
:attr:`persona_circuits.results.MatchedRow.null_design`).
"""

from __future__ import annotations

import copy
import warnings

from ._record import ResultsError

#: The version of the results contract this package writes (``"schema"`` in ``results.json``; a file without it
#: is version 1).
SCHEMA_VERSION = 2


def is_current(d) -> bool:
    """Whether ``d`` (a parsed ``results.json``) is written in the current schema (:data:`SCHEMA_VERSION`) as it
    stands, i.e. needs no :func:`upgrade`: e.g. ``persona-circuits verdicts`` needs a current file's draws."""
    return isinstance(d, dict) and d.get("schema") == SCHEMA_VERSION


def upgrade(d: dict) -> dict:
    """``d`` at the current schema (a copy when anything changes; ``d`` itself when it is current).

    :class:`ResultsError` when ``d`` is not an object or its ``"schema"`` is not an integer; a file of a newer
    version than :data:`SCHEMA_VERSION` is returned as it is, with a warning (its unknown keys are kept by the
    records, but not shown)."""
    if not isinstance(d, dict):
        raise ResultsError(f"results: expected an object, got {type(d).__name__}")
    version = d.get("schema", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"results: \"schema\" must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        warnings.warn(f"results schema {version} is newer than this package's {SCHEMA_VERSION}: unknown keys are kept "
                      "but not shown", stacklevel=3)
    out = d
    while version in STEPS:
        out = STEPS[version](out)
        version = out["schema"]
    if any(_old_name(c) for c in pole_contrasts(out)):
        out = copy.deepcopy(out) if out is d else out
        for c in pole_contrasts(out):
            _moved(c)
    return out


def _obj(x) -> dict:
    return x if isinstance(x, dict) else {}


def _items(x) -> list:
    return x if isinstance(x, list) else []


def pole_contrasts(d: dict):
    """Every pole contrast of a results dict at the current layout (the places the contract types a
    :class:`~persona_circuits.results.Contrast`); an entry that is not an object is yielded as it is."""
    for s in _obj(d.get("sets")).values():
        yield from _items(_obj(s).get("contrasts"))
    a = _obj(d.get("analysis"))
    restore = _obj(a.get("restore"))
    yield restore.get("full_contrast")
    for row in _items(restore.get("rows")):
        yield _obj(row).get("contrast")
    for row in _items(_obj(a.get("removal")).get("rows")):
        row = _obj(row)
        yield row.get("contrastive_contrast")
        yield row.get("random_pair_contrast")
        yield from _obj(row.get("shift_vs_dense")).values()
    for key in ("sparsity_sweep", "calibration_sweep"):
        for row in _items(_obj(a.get(key)).get("rows")):
            yield _obj(row).get("contrast")


#: A pole contrast's older names of the share moved, and the current ones.
_MOVED = (("accuracy", "moved"), ("accuracy_ci95", "moved_ci95"))


def _old_name(c) -> bool:
    return isinstance(c, dict) and any(old in c and new not in c for old, new in _MOVED)


def _moved(c) -> None:
    if isinstance(c, dict):
        for old, new in _MOVED:
            if old in c and new not in c:
                c[new] = c.pop(old)


def _legacy(a: dict, key: str, current) -> None:
    """Move an analysis in a layout older than version 1 (``current`` false) to ``<key>_legacy``."""
    if isinstance(a.get(key), dict) and not current(a[key]):
        a[f"{key}_legacy"] = a.pop(key)


def upgrade_v1(d: dict) -> dict:
    """Version 1 -> 2 (renames only; see the module's docstring; the contrasts' names are :func:`upgrade`'s, as in
    every version)."""
    out = copy.deepcopy(d)
    out["schema"] = 2
    for s in (out.get("sets") or {}).values():
        if "effect_damage" in s and "headline" not in s:
            s["headline"] = s.pop("effect_damage")
        for key in ("probes", "similarity"):
            if key in s and not isinstance(s[key], dict):
                s[f"{key}_legacy"] = s.pop(key)
    a = out.get("analysis") or {}
    _legacy(a, "restore", lambda r: "full_contrast" in r)
    _legacy(a, "removal", lambda r: all("contrastive_contrast" in x for x in r.get("rows") or []))
    return out


#: The step from each older version to the next.
STEPS = {1: upgrade_v1}
