"""Number formats and markdown helpers of the report (every number is written by one of these)."""

from __future__ import annotations

from collections.abc import Sequence


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal (``-`` when absent)."""
    return "-" if v is None else f"{100 * v:.1f}"


def ci(c: Sequence[float]) -> str:
    """A share's interval as whole percentages, ``[43, 56]``."""
    return f"[{100 * c[0]:.0f}, {100 * c[1]:.0f}]"


def iv(c: Sequence[float], fmt: str = "{:+.3f}") -> str:
    """An interval of a signed quantity, ``[+0.226, +0.293]``."""
    return "[" + fmt.format(c[0]) + ", " + fmt.format(c[1]) + "]"


def opt(v: float | None, fmt: str = "{:+.3f}") -> str:
    """An optional number (``-`` when absent)."""
    return "-" if v is None else fmt.format(v)


def layer_list(layers: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2, 5, 7-8`` (``none`` when empty)."""
    if not layers:
        return "none"
    out, start = [], layers[0]
    for prev, cur in zip(layers, layers[1:] + [None]):
        if cur != prev + 1:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = cur
    return ", ".join(out)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table: header, rule, one line per row."""
    return (["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
            + ["| " + " | ".join(r) + " |" for r in rows])


def count_of(values: Sequence[str], n: int | None = None) -> str:
    """``3 of 7 (a, b, c)`` for the names in ``values`` out of ``n``."""
    return f"{len(values)} of {n}" + (f" ({', '.join(values)})" if values else "")
