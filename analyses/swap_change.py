"""What the balanced label swaps did to the matched-damage nulls, per set (issue 23: "report what the change did").

Reads two study results: one whose label-swapped draws flipped a fair coin per calibration item (``--before``; the
committed study of 2026-12-03 is ``git show 9910e9e:figures/results.json``) and one whose draws swap exactly half of
the items (``--after``; the committed ``figures/results.json``). For every matched-damage row the two share (same
set, method and damage target) it prints the null spread (RMS of the damage-matched draws' contrasts, zero-centred,
as the row's test uses it), the real contrast and z = contrast / null RMS, before and after, and per set the median
ratio of the two spreads. Loads no model; reads only the two files.

    python analyses/swap_change.py --before <(git show 9910e9e:figures/results.json) --after figures/results.json

The real contrasts of the two runs differ only by run-to-run details (the same method, the same damage target,
the same items); the spreads differ by the swap design and by the draws themselves (10 per row), so a ratio per row
carries the sampling error of a 10-draw RMS (about +-22 % at one standard error) and the per-set median is the
number to read.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _studies import matched_rows, read_studies  # noqa: E402

from persona_circuits.measure.nulls import zero_z  # noqa: E402


def _rms(xs: list[float]) -> float:
    """The zero-centred null spread (the denominator of :func:`~persona_circuits.measure.nulls.zero_z`)."""
    return math.sqrt(sum(x * x for x in xs) / len(xs))


def compare(before: dict, after: dict) -> list[dict]:
    """One record per matched row present in both studies (label-swapped nulls only)."""
    b, a = matched_rows(before), matched_rows(after)
    recs = []
    for key in sorted(set(b) & set(a)):
        rb, ra = b[key], a[key]
        sb, sa = _rms(rb["null_shifts"]), _rms(ra["null_shifts"])
        recs.append({"set": key[0], "method": key[1], "target_kl": key[2],
                     "swap_before": rb.get("null_swap", "coins"), "swap_after": ra.get("null_swap", "coins"),
                     "draws_before": len(rb["null_shifts"]), "draws_after": len(ra["null_shifts"]),
                     "null_rms_before": sb, "null_rms_after": sa, "ratio": sa / sb,
                     "shift_before": rb["shift"], "shift_after": ra["shift"],
                     "z_before": zero_z(rb["shift"], rb["null_shifts"])[0],
                     "z_after": zero_z(ra["shift"], ra["null_shifts"])[0]})
    return recs


def markdown(recs: list[dict]) -> str:
    lines = ["| set | method | target KL | null RMS before | after | after / before | contrast before | after "
             "| z before | z after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        lines.append(f"| {r['set']} | {r['method']} | {r['target_kl']:g} | {r['null_rms_before']:.3f} | "
                     f"{r['null_rms_after']:.3f} | {r['ratio']:.2f} | {r['shift_before']:+.3f} | "
                     f"{r['shift_after']:+.3f} | {r['z_before']:+.2f} | {r['z_after']:+.2f} |")
    lines += ["", "| set | rows | median null RMS after / before | median z before | median z after |",
              "|---|---|---|---|---|"]
    for name in dict.fromkeys(r["set"] for r in recs):
        rs = [r for r in recs if r["set"] == name]
        lines.append(f"| {name} | {len(rs)} | {statistics.median(r['ratio'] for r in rs):.2f} | "
                     f"{statistics.median(r['z_before'] for r in rs):+.2f} | "
                     f"{statistics.median(r['z_after'] for r in rs):+.2f} |")
    for m in dict.fromkeys(r["method"] for r in recs):
        rs = [r for r in recs if r["method"] == m]
        lines.append(f"| all sets, {m} | {len(rs)} | {statistics.median(r['ratio'] for r in rs):.2f} | "
                     f"{statistics.median(r['z_before'] for r in rs):+.2f} | "
                     f"{statistics.median(r['z_after'] for r in rs):+.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="results.json of the coin-swap study")
    p.add_argument("--after", required=True, help="results.json of the balanced-swap study")
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of markdown tables")
    args = p.parse_args(argv)
    studies = read_studies([args.before, args.after], "swap_change")
    if studies is None:
        return 2
    before, after = studies
    recs = compare(before, after)
    if not recs:
        print("swap_change: the two studies share no matched-damage row with label-swapped draws", file=sys.stderr)
        return 2
    print(json.dumps(recs, indent=1) if args.json else markdown(recs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
