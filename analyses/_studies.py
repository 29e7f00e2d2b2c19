"""What the scripts of ``analyses/`` that compare two studies share: reading the two ``results.json`` files, and their
matched-damage rows with label-swapped draws. Loads no model. (A script runs as ``python analyses/NAME.py``, so this
folder is on ``sys.path``.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def read_studies(paths: list[str], prog: str) -> list[dict] | None:
    """The studies' results (``results.json``), or ``None`` after one line on stderr, ``prog: error``, when one
    cannot be read as JSON."""
    try:
        return [json.loads(Path(f).read_text()) for f in paths]
    except (OSError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return None


def matched_rows(results: dict) -> dict[tuple[str, str, float], dict]:
    """The matched-damage rows that have label-swapped draws (a row that did not reach its target has none), by
    ``(set, method, target_kl)``."""
    out = {}
    for name, s in results.get("sets", {}).items():
        for r in ((s.get("headline") or {}).get("matched") or []):
            if r.get("null_shifts"):
                out[(name, r["method"], float(r["target_kl"]))] = r
    return out
