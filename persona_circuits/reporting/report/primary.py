"""The primary family and its calibration on placebos (sections and a conclusion; absent before issue 23).

Every sentence is computed from ``results["primary"]``, ``results["calibration"]`` and the matched rows.
"""

from __future__ import annotations

from ...results import StudyResults
from .text import ci, opt, pct, table

ALPHA = 0.05
#: Below this many placebos a method's rate cannot tell 5 % from 20 % (the issue's bar for adding draws).
MIN_PLACEBOS = 20


def _row_of(res: StudyResults, name: str, method: str, target: float | None):
    h = res.sets[name].headline
    return next((r for r in (h.matched if h else []) if r.method == method and r.target_kl == target), None)


def _per_set(res: StudyResults, t) -> str:
    parts = []
    for name in t.sets:
        r = _row_of(res, name, t.method, t.target_kl)
        if r is not None and r.z is not None:
            parts.append(f"{name} {r.z:+.2f} (null RMS {opt(r.null_rms, '{:.3f}')}, {r.null_swap or 'coins'})")
    return "; ".join(parts)


def primary_section(res: StudyResults) -> list[str]:
    """The primary family: one test per (method, target), pooled over the sets, Holm over the family."""
    if not res.primary:
        return []
    rows = [[t.method, f"{t.target_kl:g}" if t.target_kl is not None else "-", str(len(t.sets)), f"{t.statistic:+.2f}",
             f"{t.p_value:.2g}", f"{t.p_adjusted:.2g}", "yes" if t.persona_specific else "no"] for t in res.primary]
    yes = [t for t in res.primary if t.persona_specific]
    out = ["## Primary family\n",
           f"Declared before the numbers: one test per (method, target damage), {len(res.primary)} tests, each the mean "
           "over the sets of the matched row's z = contrast / null RMS (its damage-matched label-swapped draws, "
           "zero-centred), against the mean of independent Student t's; Holm over the family at 5 %. "
           f"Persona-specific after Holm: {len(yes)} of {len(res.primary)}"
           + (f" ({', '.join(f'{t.method} at KL {t.target_kl:g}' for t in yes)})." if yes else "."), ""]
    out += table(["method", "target KL", "sets", "mean z", "p", "p (Holm)", "persona-specific"], rows)
    out += ["", "z per set (the secondary per-row tests; each row's own p is in the matched-damage table):", ""]
    out += [f"- {t.method} at KL {t.target_kl:g}: {_per_set(res, t)}" for t in res.primary if t.target_kl is not None]
    return out + [""]


def _verdict(c) -> str:
    if c.placebos < MIN_PLACEBOS:
        return f"fewer than {MIN_PLACEBOS} placebos: too few to tell 5 % from 20 %; add draws to its rows"
    if c.rate_ci95 and c.rate_ci95[0] > ALPHA:
        return "clearly above the nominal 5 %: the reference does not hold for this method, and its verdicts are not reported"
    return "consistent with the nominal 5 %"


def _method_order(res: StudyResults) -> list[str]:
    """The calibration's methods in the primary family's order, then any others by name: a fixed order, so the
    report written by the study and the one rewritten from its results.json (whose keys a JSON round trip may
    reorder) are byte-identical."""
    first = [m for m in dict.fromkeys(t.method for t in res.primary or []) if m in res.calibration]
    return first + sorted(m for m in res.calibration if m not in first)


def calibration_section(res: StudyResults) -> list[str]:
    """The false-positive rate of the tests, measured on the placebos (every label-swapped draw)."""
    if not res.calibration:
        return []
    rows, lines = [], []
    for m in _method_order(res):
        c = res.calibration[m]
        p = c.primary
        rows.append([m, str(c.placebos), str(c.false_positives), pct(c.rate), ci(c.rate_ci95) if c.rate_ci95 else "-",
                     ci(c.rate_ci95_rows) if c.rate_ci95_rows else "-",
                     f"{p.false_positives} of {p.placebos}" if p and p.placebos else "-"])
        lines.append(f"- {m}: {c.false_positives} of {c.placebos} placebos called persona-specific ({pct(c.rate)} %), "
                     f"{_verdict(c)}.")
    return (["## Calibration\n",
             "Every label-swapped draw is a placebo (its two pseudo-poles differ by nothing): it is tested exactly as the "
             "real pair, at the uncorrected 5 % level, against the row's other draws (leave one out). The share called "
             "persona-specific is the tests' measured false-positive rate (Clopper-Pearson 95 % interval).", ""]
            + table(["method", "placebos", "false positives", "rate %", "95 % (independent)", "95 % (one per row)",
                     "primary placebos"], rows)
            + ["", *lines, "",
               "The placebos of one row share their reference draws, so they are positively correlated: the interval that "
               "treats them as independent is too narrow, the one that counts each row once is too wide, and the truth "
               "lies between. A rate clearly above 5 % would mean that the t reference is anti-conservative (e.g. the "
               "balanced-permutation caveat of Southworth, Kim & Owen 2009) and is fixed before any verdict is read.", ""])


def primary_conclusions(res: StudyResults) -> list[str]:
    """The first conclusion: what the primary family found, per method."""
    if not res.primary:
        return []
    out = []
    for m in dict.fromkeys(t.method for t in res.primary):
        ts = [t for t in res.primary if t.method == m]
        yes = [f"KL {t.target_kl:g}" for t in ts if t.persona_specific]
        cal = (res.calibration or {}).get(m)
        rate = f"; placebo false-positive rate {pct(cal.rate)} % of {cal.placebos}" if cal and cal.placebos else ""
        out.append(f"- **Primary family, {m}**: persona-specific after Holm at {len(yes)} of {len(ts)} targets"
                   + (f" ({', '.join(yes)})" if yes else "") + rate + ".")
    return out
