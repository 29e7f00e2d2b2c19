"""The projection gate against steering at equal damage (issue 24), from the matched-damage rows and the gate's
analyses; every sentence is computed from the numbers.

**Efficiency** of a reached row: ``contrast / sqrt(KL)`` (nats/token per sqrt(nats/token) of held-out damage):
constant where the contrast grows linearly and the KL quadratically with the strength, so rows at slightly
different damages compare. Its interval is the contrast's bootstrap interval over items divided by
``sqrt(KL)`` (the damage taken as measured). **Pooled** over sets: the mean of the sets' efficiencies, its
interval from the sets' intervals read as normal (half-width / 1.96), independent across sets. **Gate against
steering**: the difference of efficiencies with the normal interval ``sqrt(se_1² + se_2²)``, which ignores the
positive correlation of two conditions scored on the same items (so it is wider than a paired interval).
"""

from __future__ import annotations

import math

from ...results import GateAnalysis, MatchedRow, StudyResults
from .text import iv, table

#: The methods compared, in the order of the table, and their names in the text.
COMPARED = {"projection-gate": "projection gate", "steering": "one-layer steering", "steering-all": "every-layer steering",
            "soft-mask": "soft mask", "gate-bias": "the gate's mean push alone"}
Z = 1.959963984540054


def efficiency(r: MatchedRow) -> tuple[float, tuple[float, float]] | None:
    """``(contrast / sqrt(KL), interval)`` of a reached row with a positive damage, else ``None``."""
    if not r.reached or r.shift is None or r.shift_ci95 is None or not r.damage_kl or r.damage_kl <= 0:
        return None
    d = math.sqrt(r.damage_kl)
    return r.shift / d, (r.shift_ci95[0] / d, r.shift_ci95[1] / d)


def _se(e: tuple[float, tuple[float, float]]) -> float:
    return (e[1][1] - e[1][0]) / (2 * Z)


def pooled(effs: list[tuple[float, tuple[float, float]]]) -> tuple[float, tuple[float, float]] | None:
    """Mean efficiency over sets with its normal interval (see the module docstring)."""
    if not effs:
        return None
    m = sum(e[0] for e in effs) / len(effs)
    se = math.sqrt(sum(_se(e) ** 2 for e in effs)) / len(effs)
    return m, (m - Z * se, m + Z * se)


def difference(a, b) -> tuple[float, tuple[float, float]]:
    """``a − b`` of two efficiencies with the normal interval of independent estimates."""
    d, se = a[0] - b[0], math.sqrt(_se(a) ** 2 + _se(b) ** 2)
    return d, (d - Z * se, d + Z * se)


def _verdict(d) -> str:
    return "higher" if d[1][0] > 0 else "lower" if d[1][1] < 0 else "not distinguishable"


def _effs(res: StudyResults) -> dict:
    """``{(set, target): {method: (row, efficiency)}}`` of the compared methods' reached rows."""
    out: dict = {}
    for name, h in res.headlines().items():
        for r in h.matched:
            e = efficiency(r) if r.method in COMPARED else None
            if e is not None:
                out.setdefault((name, r.target_kl), {})[r.method] = (r, e)
    return out


def _rows(effs: dict) -> list[list[str]]:
    rows = []
    for (name, target), by in effs.items():
        for m in COMPARED:
            if m in by:
                r, e = by[m]
                rows.append([name, f"{target:g}", COMPARED[m], f"{r.damage_kl:.3f}", f"{r.shift:+.3f} {iv(r.shift_ci95)}",
                             f"{e[0]:.2f} {iv(e[1], '{:.2f}')}", {True: "yes", False: "no"}.get(r.specific, "-")])
    return rows


def _comparisons(effs: dict, targets: list[float]) -> list[str]:
    out = []
    for t in targets:
        at = {n: by for (n, tt), by in effs.items() if tt == t}
        for other in ("steering", "steering-all", "soft-mask"):
            pairs = {n: difference(by["projection-gate"][1], by[other][1]) for n, by in at.items()
                     if "projection-gate" in by and other in by}
            if not pairs:
                continue
            tally = {v: sorted(n for n, d in pairs.items() if _verdict(d) == v)
                     for v in ("higher", "lower", "not distinguishable")}
            pg = pooled([at[n]["projection-gate"][1] for n in pairs])
            po = pooled([at[n][other][1] for n in pairs])
            diff = difference(pg, po)
            out.append(f"- At KL {t:g}, the gate's efficiency against {COMPARED[other]}: "
                       + "; ".join(f"{v} on {len(s)} set(s)" + (f" ({', '.join(s)})" if s else "") for v, s in tally.items())
                       + f". Pooled over {len(pairs)} set(s): {pg[0]:.2f} {iv(pg[1], '{:.2f}')} against {po[0]:.2f} "
                       f"{iv(po[1], '{:.2f}')}, difference {diff[0]:+.2f} {iv(diff[1], '{:+.2f}')} ({_verdict(diff)}).")
        bias = {n: difference(by["projection-gate"][1], by["gate-bias"][1]) for n, by in at.items()
                if "projection-gate" in by and "gate-bias" in by}
        if bias:
            same = sorted(n for n, d in bias.items() if _verdict(d) != "higher")
            out.append(f"- At KL {t:g}, the gate beats its own mean push (a bias per writer) on "
                       f"{len(bias) - len(same)} of {len(bias)} set(s)"
                       + (f"; on {', '.join(same)} the mean push does as well, so there the gate is steering written into "
                          "the weights" if same else "") + ".")
    return out


def _analysis_lines(name: str, g: GateAnalysis) -> list[str]:
    parts = []
    for pole, p in g.poles.items():
        total = sum(p.by_kind.values()) or 1
        parts.append(f"{pole}: {p.selected:,} weights ({100 * p.fraction:.1f} % of the writers, "
                     f"{100 * p.by_kind.get('mlp', 0) / total:.0f} % in MLP down projections)")
    blocks: dict[int, int] = {}
    for r in g.layout:
        blocks[r.block] = blocks.get(r.block, 0) + sum(r.selected.values())
    top = max(blocks, key=blocks.get) if blocks else None
    o = g.overlap
    rn = [x for v in o.real_vs_null.values() for x in v]
    line = f"- {name}: " + "; ".join(parts) + (f"; most selected weights in block {top}" if top is not None else "")
    if rn and o.null_vs_null:
        mr, mn = sum(rn) / len(rn), sum(o.null_vs_null) / len(o.null_vs_null)
        line += (f". Jaccard of the real sets with the {g.null_draws} null draws' sets {mr:.3f}, between null draws "
                 f"{mn:.3f}: the real selection " + ("is no more distinct from the null's than the null draws are from "
                                                     "one another" if mr >= mn else "differs from the null's more than "
                                                     "the null draws differ from one another"))
    return [line + "."]


def gate_section(res: StudyResults) -> list[str]:
    """The section (empty when the study measured no projection gate)."""
    effs = _effs(res)
    has_gate = any("projection-gate" in by for by in effs.values())
    gates = {n: s.gate for n, s in res.sets.items() if s.gate is not None}
    if not has_gate and not gates:
        return []
    out = ["\n### Projection gate against steering at equal damage\n",
           "Efficiency = pole contrast / sqrt(held-out KL), with the contrast's bootstrap interval over items divided "
           "by sqrt(KL); pooled intervals and differences are normal approximations over sets (wider than paired ones).\n"]
    if effs:
        out += table(["set", "target KL", "method", "KL", "contrast [95 % CI]", "efficiency [95 % CI]", "specific"],
                     _rows(effs))
        targets = sorted({t for _, t in effs})
        out += [""] + _comparisons(effs, targets)
    if gates:
        out += ["", "Where the gate's weights sit, and their overlap with the sets selected from label-swapped draws:"]
        for n, g in gates.items():
            out += _analysis_lines(n, g)
    if res.gate_overlap:
        above = [p for p in res.gate_overlap if p.null and max(p.same, p.crossed) > max(p.null)]
        pairs = "; ".join(f"{p.sets[0]} / {p.sets[1]}: same poles {p.same:.3f}, crossed {p.crossed:.3f}, null max "
                          f"{max(p.null):.3f}" for p in above)
        out.append(f"- Across personas: {len(above)} of {len(res.gate_overlap)} pair(s) of sets share more of their "
                   "selected weights than any of their null draws' pairs do" + (f" ({pairs})" if above else "") + ".")
    return out
