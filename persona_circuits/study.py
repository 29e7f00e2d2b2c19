"""The main job, ``persona-circuits reproduce``: placeholder until the study is implemented (issue 3)."""

from __future__ import annotations

from .errors import PersonaCircuitsError


def add_reproduce_parser(sub, common) -> None:
    s = sub.add_parser("reproduce", help="run the whole study (not implemented yet)")
    s.add_argument("--out", required=True)
    s.add_argument("--quick", action="store_true")
    s.add_argument("--data-root", default=None)
    common(s)


def cmd_reproduce(args) -> int:
    raise PersonaCircuitsError("reproduce is not implemented yet")
