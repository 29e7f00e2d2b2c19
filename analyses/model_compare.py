"""Two studies of the same design on two models, row by row: does a finding of one model hold on the other?

Reads two study results (``--a``: e.g. the committed SmolLM2 study ``figures/results.json``; ``--b``: e.g. the Gemma
study ``reports/gemma-3-270m/results.json``) and, for every matched-damage row the two share (same set, method and
damage target), prints each model's contrast (mean per-item shift towards the pole, nats/token), held-out damage,
z (contrast / RMS of the row's damage-matched label-swapped draws, as the row's test computes it), its verdict after
the study's Holm adjustment, and its efficiency ``contrast / sqrt(KL)`` (the DISCUSSION's measure of how far an
edit moves the model per unit of damage). Then, per model, each set's efficiency ranking of the methods and the
placebo false-positive rate of each method (the calibration block: label-swapped draws tested like real pairs).
Loads no model; reads only the two files. The two studies must use the same null design (``null_swap``): the
script says so and stops otherwise (exit 2), as it does when they share no row.

    python analyses/model_compare.py --a figures/results.json --b reports/gemma-3-270m/results.json

A row's z differs between models by the model and by its ten draws (a 10-draw RMS carries about +-22 % at one
standard error), so a sign or a verdict is the thing to compare, not the second digit.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _studies import matched_rows as rows, read_studies  # noqa: E402


def efficiency(r: dict) -> float:
    """Contrast per square root of the held-out damage (nats/token per sqrt(nats/token))."""
    return r["shift"] / math.sqrt(r["damage_kl"]) if r.get("damage_kl", 0) > 0 else float("nan")


def _verdict(r: dict) -> str:
    v = r.get("persona_specific_adjusted", r.get("persona_specific"))
    return "yes" if v else ("no" if v is not None else "n/a")


def compare(a: dict, b: dict) -> list[dict]:
    """One record per matched row present in both studies."""
    ra, rb = rows(a), rows(b)
    recs = []
    for key in sorted(set(ra) & set(rb), key=lambda k: (k[0], k[1], k[2])):
        x, y = ra[key], rb[key]
        recs.append({"set": key[0], "method": key[1], "target_kl": key[2],
                     "shift_a": x["shift"], "shift_b": y["shift"], "kl_a": x["damage_kl"], "kl_b": y["damage_kl"],
                     "z_a": x.get("z"), "z_b": y.get("z"), "verdict_a": _verdict(x), "verdict_b": _verdict(y),
                     "eff_a": efficiency(x), "eff_b": efficiency(y)})
    return recs


def ranking(results: dict, target: float) -> dict[str, list[tuple[str, float]]]:
    """Per set, the methods by efficiency at ``target`` (highest first)."""
    out: dict[str, list[tuple[str, float]]] = {}
    for (name, method, t), r in rows(results).items():
        if t == target:
            out.setdefault(name, []).append((method, efficiency(r)))
    return {k: sorted(v, key=lambda m: -m[1]) for k, v in out.items()}


def placebo_rates(results: dict) -> dict[str, tuple[int, int]]:
    """Per method, false positives and placebos summed over the calibration block's targets."""
    out = {}
    for method, c in (results.get("calibration") or {}).items():
        fp = sum(t["false_positives"] for t in c.get("by_target", []))
        n = sum(t["placebos"] for t in c.get("by_target", []))
        out[method] = (fp, n)
    return out


def _name(results: dict, fallback: str) -> str:
    m = results.get("meta") or {}
    return f"{m.get('model', fallback)} ({m.get('dtype', '?')})"


def markdown(a: dict, b: dict, recs: list[dict]) -> str:
    na, nb = _name(a, "a"), _name(b, "b")
    lines = [f"A = {na}; B = {nb}", "",
             "| set | method | target KL | contrast A | B | KL A | B | z A | B | Holm A | B | contrast/sqrt(KL) A | B |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        za = f"{r['z_a']:+.2f}" if r["z_a"] is not None else "n/a"
        zb = f"{r['z_b']:+.2f}" if r["z_b"] is not None else "n/a"
        lines.append(f"| {r['set']} | {r['method']} | {r['target_kl']:g} | {r['shift_a']:+.3f} | {r['shift_b']:+.3f} | "
                     f"{r['kl_a']:.3f} | {r['kl_b']:.3f} | {za} | {zb} | {r['verdict_a']} | {r['verdict_b']} | "
                     f"{r['eff_a']:.2f} | {r['eff_b']:.2f} |")
    same = sum(r["verdict_a"] == r["verdict_b"] for r in recs)
    lines += ["", f"Holm verdicts equal in {same} of {len(recs)} shared rows."]
    for label, res in (("A", a), ("B", b)):
        for t in sorted({r["target_kl"] for r in recs}):
            rk = ranking(res, t)
            for name in sorted({r["set"] for r in recs}):
                if name in rk:
                    lines.append(f"- {label}, {name}, KL {t:g}: " + " > ".join(f"{m} {e:.2f}" for m, e in rk[name]))
    lines += ["", "| method | placebo false positives A | B |", "|---|---|---|"]
    pa, pb = placebo_rates(a), placebo_rates(b)
    for m in sorted(set(pa) | set(pb)):
        fa = f"{pa[m][0]} of {pa[m][1]}" if m in pa else "n/a"
        fb = f"{pb[m][0]} of {pb[m][1]}" if m in pb else "n/a"
        lines.append(f"| {m} | {fa} | {fb} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="results.json of the first study (e.g. figures/results.json)")
    p.add_argument("--b", required=True, help="results.json of the second study (e.g. reports/gemma-3-270m/results.json)")
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of markdown")
    args = p.parse_args(argv)
    studies = read_studies([args.a, args.b], "model_compare")
    if studies is None:
        return 2
    a, b = studies
    swaps = {r.get("null_swap") for res in (a, b) for r in rows(res).values()}
    if len(swaps) > 1:
        print(f"model_compare: the studies' null designs differ ({', '.join(sorted(map(str, swaps)))})", file=sys.stderr)
        return 2
    recs = compare(a, b)
    if not recs:
        print("model_compare: the two studies share no matched-damage row with label-swapped draws", file=sys.stderr)
        return 2
    print(json.dumps(recs, indent=1) if args.json else markdown(a, b, recs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
