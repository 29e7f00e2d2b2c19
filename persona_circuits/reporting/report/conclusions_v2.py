"""Conclusions of the rebuilt study's results (version 2), every sentence computed: the matched rows' Holm verdicts
and what a "no" means, the symmetry check, the paper table under the released scoring, the 16 types, the atlas."""

from __future__ import annotations

from ...results import MatchedRow, StudyResults, TypesResult
from .method import span
from .text import iv, pct


def _tally(rows: list[MatchedRow], key: str) -> str | None:
    """Holm's verdicts of the paired differences ``key`` (uncorrected where the study made no correction)."""
    diffs = [getattr(r, key) for r in rows if getattr(r, key)]
    if not diffs:
        return None
    adj = [d.verdict_adjusted or d.verdict for d in diffs]
    raw = [d.verdict for d in diffs]
    return (f"higher in {adj.count('higher')}, lower in {adj.count('lower')}, not distinguishable in "
            f"{adj.count('not distinguishable')} of {len(adj)} after Holm's correction (uncorrected: higher in "
            f"{raw.count('higher')}, lower in {raw.count('lower')})")


def _holm_bound(r) -> float | None:
    """The shift a "no" is read against: the bound at Holm's strictest step where the study computed it."""
    return r.detectable_shift_adjusted if r.detectable_shift_adjusted is not None else r.detectable_shift


def _noes(rows: list[MatchedRow]) -> list[str]:
    """What the rows that are not persona-specific mean: under their detectable shift (after Holm where the study
    corrected), or why else not."""
    below = [_holm_bound(r) for r in rows if not r.persona_specific and _holm_bound(r) is not None
             and r.detectable_shift is not None and r.tested_shift is not None and r.tested_shift <= r.detectable_shift]
    holm_only = [r for r in rows if r.persona_specific and r.persona_specific_adjusted is False]
    ci = [r for r in rows if not r.persona_specific and r.detectable_shift is not None and r.tested_shift is not None
          and r.tested_shift > r.detectable_shift]
    adjusted = any(r.detectable_shift_adjusted is not None for r in rows)
    out = []
    if below:
        out.append(f"in {len(below)} the contrast is not detectable above its row's detectable shift"
                   + (" at Holm's strictest step" if adjusted else "")
                   + f" ({span(below, '{:+.3f}')} nats/token: a smaller persona effect would go unseen)")
    if holm_only:
        line = f"{len(holm_only)} pass uncorrected but not after Holm's correction"
        ratio = [r.tested_shift / r.detectable_shift_adjusted for r in holm_only
                 if r.detectable_shift_adjusted and r.tested_shift is not None]
        if ratio:
            line += (f" (their contrasts are {span(ratio, '{:.2f}')} of the bound that passes Holm whatever the other "
                     f"rows give, {span([r.detectable_shift_adjusted for r in holm_only], '{:+.3f}')} nats/token: "
                     "more null draws per row would narrow it)")
        out.append(line)
    if ci:
        out.append(f"{len(ci)} lie above the bound with an interval that includes 0")
    return out


def matched_line_v2(m: str, rr: list[tuple[str, MatchedRow]]) -> tuple[str, list[str]]:
    """One method's matched rows over every set: reached, Holm's verdicts, what a "no" means, the damage tolerance,
    the random-direction null, the paired differences. Returns the line and the specific rows."""
    reached = [(n, r) for n, r in rr if r.reached]
    rows = [r for _, r in reached]
    spec = [f"{n} at KL {r.target_kl:g}" for n, r in reached if r.specific]
    parts = [f"reached in {len(reached)} of {len(rr)} (set, target) rows",
             f"persona-specific after Holm's correction in {len(spec)}" + (f" ({'; '.join(spec)})" if spec else "")
             + f" ({sum(bool(r.persona_specific) for r in rows)} uncorrected)"]
    parts += _noes(rows)
    out = [r for r in rows if r.within_tolerance is False]
    if out:
        parts.append(f"held-out damage outside ±25 % of the target in {len(out)} of {len(rows)}")
    rnd = [r.random_direction_null for r in rows if r.random_direction_null and r.random_direction_null.p_value is not None]
    if rnd:
        parts.append(f"above its random-direction null (uncorrected) in {sum(bool(x.persona_specific) for x in rnd)} of "
                     f"{len(rnd)}")
    for key, label in (("vs_prompt", "paired against the persona prompt: "),
                       ("vs_steering", "against steering at the same damage: ")):
        if _tally(rows, key):
            parts.append(label + _tally(rows, key))
    return f"- **Matched damage, {m}**: " + "; ".join(parts) + ".", spec


def symmetry_conclusion(res: StudyResults) -> list[str]:
    """The pooled check that the label-swapped nulls are centred on 0, and the centre it led to."""
    s = res.null_symmetry
    if s is None or s.stouffer_z is None or s.p_value is None:
        return []
    return [f"- Null symmetry: pooled over {s.n_rows} rows, Stouffer z = {s.stouffer_z:+.2f} (p = {s.p_value:.3g}), "
            f"{pct(s.share_rejected)} % of rows reject at 5 %: the label-swapped nulls are "
            + ("taken as centred on 0, and every row is tested with the zero-centred bound." if s.centered else
               "not taken as centred on 0, and every row is tested with the estimated centre.")]


def released_conclusions(res: StudyResults) -> list[str]:
    """The paper's metric: each mask against its label-swapped draws and against the random mask of its sparsity."""
    rows = [(n, s, r) for n, s in res.ai_sets().items() for r in (s.paper_table or [])
            if r.pole == "matching" and r.null_accuracies]
    if not rows:
        return []
    above = [f"{n} {r.condition}" for n, _, r in rows if r.accuracy > max(r.null_accuracies)]
    ks = sorted({len(r.null_accuracies) for _, _, r in rows})
    out = [f"- Released scoring (the paper's metric): {len(above)} of {len(rows)} (set, condition) accuracies lie above "
           "every one of their label-swapped null draws" + (f" ({', '.join(above)})" if above else "")
           + f"; with K = {span(ks)} draw(s) each, a mask with no persona effect does so by chance with probability "
           f"1/(K + 1) = {span([100 / (k + 1) for k in ks], '{:.0f}')} %."]
    pairs = []
    for _, s, r in rows:
        rnd = next((x for x in s.paper_table if x.condition == "random-mask" and x.sparsity == r.sparsity), None)
        if rnd is not None:
            pairs.append((r, rnd))
    if pairs:
        hi = sum(r.accuracy > x.accuracy for r, x in pairs)
        out.append(f"- Released scoring against a random mask of the same sparsity: above it in {hi} of {len(pairs)} "
                   f"(set, mask) pairs, above its 95 % interval in {sum(r.accuracy > x.accuracy_ci95[1] for r, x in pairs)}.")
    return out


def types_conclusions(types: list[TypesResult] | None) -> list[str]:
    """Per method: the (type pair, axis) tests that are persona-specific after Holm, what a "no" means, and the
    largest interference."""
    out = []
    for t in types or []:
        tests = [(r, c) for r in t.rows if r.type.startswith("E") for c in r.contrasts if c.p_value is not None]
        if not tests:
            out.append(f"- **16 types, {t.method}**: no (type pair, axis) contrast was tested against a null in this run.")
            continue
        spec = [f"{r.type} on {c.axis}" for r, c in tests if t.verdict(r, c)]
        det = [_holm_bound(c) for r, c in tests if not t.verdict(r, c) and not c.persona_specific
               and _holm_bound(c) is not None and c.shift <= c.detectable_shift]
        line = (f"- **16 types, {t.method}**: {len(spec)} of {len(tests)} (type pair, axis) tests persona-specific after "
                f"Holm's correction" + (f" ({', '.join(spec)})" if spec else "")
                + f" ({sum(bool(c.persona_specific) for _, c in tests)} uncorrected)")
        if det:
            line += (f"; {len(det)} are not detectable above their bound"
                     + (" at Holm's strictest step" if any(c.detectable_shift_adjusted is not None for _, c in tests) else "")
                     + f" ({span(det, '{:+.3f}')} nats/token)")
        if t.interference:
            w = max(t.interference, key=lambda i: abs(i.change))
            line += (f"; the largest interference is {w.axis}'s, {w.change:+.3f} nats/token"
                     + (f" {iv(w.change_ci95)}" if w.change_ci95 else ""))
        out.append(line + ".")
    return out


def atlas_conclusions(res: StudyResults) -> list[str]:
    """The set pairs that share top contrastive weights beyond the label-swapped null (Holm), and steering directions
    beyond their null at some layer (Holm)."""
    a = res.atlas
    if a is None:
        return []
    if not a.pairs:
        return ["- Atlas: these results hold no test of the pairs (no label-swapped null), so no pair is called shared."]
    tested = [p for p in a.pairs if p.shared is not None]
    if not tested:
        return ["- Atlas: no set pair was tested against a label-swapped null in this run, so no pair is called shared."]
    shared = [f"{p.a} & {p.b}" for p in tested if p.shared]
    line = (f"- Atlas: {len(shared)} of {len(tested)} tested set pairs share top contrastive weights beyond their "
            "label-swapped null after Holm's correction" + (f" ({', '.join(shared)})" if shared else ""))
    steer = [p for p in a.pairs if p.steering_shared_layers is not None]
    if steer:
        hit = [f"{p.a} & {p.b}" for p in steer if p.steering_shared_layers]
        fam = a.family("atlas steering cosines")
        line += (f"; {len(hit)} of {len(steer)} pairs have steering directions beyond "
                 f"{fam.null if fam and fam.null else 'their null'} at some layer (Holm)" + (f" ({', '.join(hit)})" if hit else ""))
    return [line + "."]
