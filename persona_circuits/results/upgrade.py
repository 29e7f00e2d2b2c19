"""Upgrade an older ``results.json`` to the current schema, one version at a time.

Version 1 (the files written before the results contract; no ``"schema"`` key) differs from version 2 in
names only; every value is kept:

* ``sets.<set>.effect_damage`` is ``sets.<set>.headline``;
* every pole contrast (``sets.<set>.contrasts[]`` and the analysis set's ``full_contrast``, ``contrast``,
  ``contrastive_contrast``, ``random_pair_contrast`` and ``shift_vs_dense`` entries) called the share of items
  moved towards the pole ``accuracy`` / ``accuracy_ci95``: it is ``moved`` / ``moved_ci95``, the name the
  curves, the matched-damage rows and ``persona-circuits evaluate`` already used;
* ``probes``, ``similarity``, ``restore`` or ``removal`` in a layout older than version 1 (before the lexical
  baselines, the permutation null, the two-mask restore, the matched-count removal) are kept as
  ``<name>_legacy``: no report section or figure reads them.

Fields that version 2 added (held-out damage intervals, Holm-adjusted p-values, the paper table, ...) stay
absent: the report says "not measured in this run" for them.
"""

from __future__ import annotations

import copy


def upgrade(d: dict) -> dict:
    """``d`` at the current schema (a copy when anything changes; ``d`` itself when it is current)."""
    steps = {1: upgrade_v1}
    version = d.get("schema", 1)
    while version in steps:
        d = steps[version](d)
        version = d["schema"]
    return d


def _moved(c: dict | None) -> None:
    if isinstance(c, dict):
        for old, new in (("accuracy", "moved"), ("accuracy_ci95", "moved_ci95")):
            if old in c and new not in c:
                c[new] = c.pop(old)


def _legacy(a: dict, key: str, current) -> None:
    """Move an analysis in a layout older than version 1 (``current`` false) to ``<key>_legacy``."""
    if isinstance(a.get(key), dict) and not current(a[key]):
        a[f"{key}_legacy"] = a.pop(key)


def upgrade_v1(d: dict) -> dict:
    """Version 1 -> 2 (renames only; see the module's docstring)."""
    out = copy.deepcopy(d)
    out["schema"] = 2
    for s in (out.get("sets") or {}).values():
        if "effect_damage" in s and "headline" not in s:
            s["headline"] = s.pop("effect_damage")
        for c in s.get("contrasts") or []:
            _moved(c)
        for key in ("probes", "similarity"):
            if key in s and not isinstance(s[key], dict):
                s[f"{key}_legacy"] = s.pop(key)
    a = out.get("analysis") or {}
    _legacy(a, "restore", lambda r: "full_contrast" in r)
    _legacy(a, "removal", lambda r: all("contrastive_contrast" in x for x in r.get("rows") or []))
    restore = a.get("restore") or {}
    _moved(restore.get("full_contrast"))
    for row in restore.get("rows") or []:
        _moved(row.get("contrast"))
    for row in (a.get("removal") or {}).get("rows") or []:
        _moved(row.get("contrastive_contrast"))
        _moved(row.get("random_pair_contrast"))
        for c in (row.get("shift_vs_dense") or {}).values():
            _moved(c)
    for key in ("sparsity_sweep", "calibration_sweep"):
        for row in (a.get(key) or {}).get("rows") or []:
            _moved(row.get("contrast"))
    return out
