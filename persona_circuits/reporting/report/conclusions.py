"""Conclusions, every sentence computed from the typed results (counts, extremes, verdicts): the headline (the
matched rows in the words of their null design, the symmetry check), each method's pole contrast, the masks against
a random mask and the paper table under the released scoring. The analyses' conclusions are in
:mod:`.conclusions_analyses`."""

from __future__ import annotations

import math

from ...results import DAMAGE_MATCHED, MAIN_METHODS, STRENGTH_MATCHED, MatchedRow, StudyResults
from ..labels import LENGTH_DECIDED
from .conclusions_analyses import analysis_conclusions
from .method import holm_bound, span
from .text import pct

#: the matched methods that are no mask: the steering dials and the projection gate's mean push (writer biases)
STEERING = ("steering", "steering-all", "gate-bias")


def conclusions(res: StudyResults) -> list[str]:
    """Every conclusion line, in the report's order."""
    return (headline_conclusions(res) + method_conclusions(res) + random_mask_conclusions(res)
            + analysis_conclusions(res))


def _tally(rows: list[MatchedRow], key: str, adjusted: bool = False) -> str | None:
    diffs = [getattr(r, key) for r in rows if getattr(r, key)]
    v = [(d.verdict_adjusted if adjusted else d.verdict) for d in diffs]
    if adjusted and any(x is None for x in v):
        return None
    return (f"higher in {v.count('higher')}, lower in {v.count('lower')}, not distinguishable in "
            f"{v.count('not distinguishable')} of {len(v)}") if v else None


def strength_matched_line(m: str, rr: list[tuple[str, MatchedRow]]) -> tuple[str, list[str]]:
    """One method's strength-matched rows over every set (the older design): reached, the verdicts against their
    null (Holm's count beside where the study made it), the paired differences. Returns the line and the specific
    rows."""
    reached = [(n, r) for n, r in rr if r.reached]
    spec = [f"{n} at KL {r.target_kl:g}" for n, r in reached if r.persona_specific]
    parts = [f"reached in {len(reached)} of {len(rr)} (set, target) rows",
             f"beats its null in {len(spec)}" + (f" ({'; '.join(spec)})" if spec else "")]
    adj = [r.persona_specific_adjusted for _, r in reached if r.persona_specific_adjusted is not None]
    if adj:
        parts[-1] += f", {sum(adj)} of {len(adj)} after Holm's correction"
    rows = [r for _, r in reached]
    for key, label in (("vs_prompt", "paired against the persona prompt: "),
                       ("vs_steering", "against steering at the same damage: ")):
        if _tally(rows, key):
            parts.append(label + _tally(rows, key)
                         + (f" (after correction: {_tally(rows, key, True)})" if _tally(rows, key, True) else ""))
    return f"- **Matched damage, {m}**: " + "; ".join(parts) + ".", spec


def _holm_tally(rows: list[MatchedRow], key: str) -> str | None:
    """Holm's verdicts of the paired differences ``key`` (uncorrected where the study made no correction)."""
    diffs = [getattr(r, key) for r in rows if getattr(r, key)]
    if not diffs:
        return None
    adj = [d.verdict_adjusted or d.verdict for d in diffs]
    raw = [d.verdict for d in diffs]
    return (f"higher in {adj.count('higher')}, lower in {adj.count('lower')}, not distinguishable in "
            f"{adj.count('not distinguishable')} of {len(adj)} after Holm's correction (uncorrected: higher in "
            f"{raw.count('higher')}, lower in {raw.count('lower')})")


def _noes(rows: list[MatchedRow]) -> list[str]:
    """What the rows that are not persona-specific mean: under their detectable shift (after Holm where the study
    corrected), or why else not."""
    below = [holm_bound(r) for r in rows if not r.persona_specific and holm_bound(r) is not None
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


def damage_matched_line(m: str, rr: list[tuple[str, MatchedRow]]) -> tuple[str, list[str]]:
    """One method's damage-matched rows over every set: reached, Holm's verdicts, what a "no" means, the damage
    tolerance, the random-direction null, the paired differences. Returns the line and the specific rows."""
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
        if _holm_tally(rows, key):
            parts.append(label + _holm_tally(rows, key))
    return f"- **Matched damage, {m}**: " + "; ".join(parts) + ".", spec


#: Each null design's line of a method's matched rows (:attr:`persona_circuits.results.StudyResults.null_design`).
MATCHED_LINE = {DAMAGE_MATCHED: damage_matched_line, STRENGTH_MATCHED: strength_matched_line}


def headline_conclusions(res: StudyResults) -> list[str]:
    """Counts over every set's matched-damage rows and curve points, in the words of the rows' null design
    (:attr:`persona_circuits.results.StudyResults.null_design`: damage-matched rows are read after Holm's correction
    and their curves are descriptive)."""
    heads = res.headlines()
    if not heads:
        return []
    damage_matched = res.null_design == DAMAGE_MATCHED
    line_of = MATCHED_LINE[res.null_design]
    out = []
    rows = [(n, r) for n, h in heads.items() for r in h.matched]
    mask_specific = []
    for m in dict.fromkeys(r.method for _, r in rows):
        line, spec = line_of(m, [(n, r) for n, r in rows if r.method == m])
        out.append(line)
        if m not in STEERING:
            mask_specific += [f"{m}: {x}" for x in spec]
    mask_rows = [r for _, r in rows if r.method not in STEERING and r.reached]
    if mask_rows:
        above_steer = [r for r in mask_rows if r.vs_steering and (r.vs_steering.verdict_adjusted or r.vs_steering.verdict)
                       == "higher"]
        out.append(f"- Over {len(mask_rows)} matched mask rows, {len(mask_specific)} "
                   + ("are persona-specific after Holm's correction" if damage_matched else "beat their label-swapped null")
                   + (f" ({'; '.join(mask_specific)})" if mask_specific else "")
                   + f" and {len(above_steer)} move the model more than steering at the same damage"
                   + (" (Holm's verdicts)." if damage_matched else "."))
    out += symmetry_conclusion(res)
    for mc in res.multiple_comparisons or []:
        out.append(f"- {mc.family}: {mc.n_raw} of {mc.n_tests} tests pass at the 95 % level uncorrected, {mc.n_adjusted} "
                   f"after {mc.method.title()}'s correction.")
    for m in dict.fromkeys(k for h in heads.values() for k in h.curves):
        pts = [(n, p) for n, h in heads.items() for p in h.curves.get(m, [])]
        spec = [(n, p) for n, p in pts if p.persona_specific]
        lo = min((p.damage_kl for _, p in spec), default=None)
        out.append(f"- **Curves, {m}**: {len(spec)} of {len(pts)} points over {len({n for n, _ in pts})} sets beat their null"
                   + (f" (lowest damage among them {lo:.3g} nats/token)" if spec else "")
                   + (" (descriptive: uncorrected, on the curve items)." if damage_matched else "."))
    return out


def symmetry_conclusion(res: StudyResults) -> list[str]:
    """The pooled check that the label-swapped nulls are centred on 0, and the centre it led to."""
    s = res.null_symmetry
    if s is None or s.stouffer_z is None or s.p_value is None:
        return []
    head = (f"- Null symmetry: pooled over {s.n_rows} rows, Stouffer z = {s.stouffer_z:+.2f} (p = {s.p_value:.3g}), "
            f"{pct(s.share_rejected)} % of rows reject at 5 %")
    if s.role == "description":  # the zero centre holds by construction; the check describes, it does not choose
        return [head + " (a description: the label-swapped nulls are centred on 0 by construction, and every row is "
                "tested with the zero-centred bound whatever the check gives)."]
    return [head + ": the label-swapped nulls are "
            + ("taken as centred on 0, and every row is tested with the zero-centred bound." if s.centered else
               "not taken as centred on 0, and every row is tested with the estimated centre.")]


def _null_tested_at(res: StudyResults, method: str, rho: float) -> str:
    """Whether ``method``'s label-swapped null was drawn at sparsity ``rho`` (on the curves), and where it was."""
    heads = res.headlines()
    pts = [p for h in heads.values() for p in h.curves.get(method, [])]
    released = [r for s in res.ai_sets().values() for r in s.paper_table or [] if r.condition == method and r.null_accuracies]
    rhos = ", ".join(f"{x:g}" for x in sorted({r.sparsity for r in released if r.sparsity is not None}))
    paper = f" (the paper table's released-scoring accuracy has label-swapped draws at sparsity {rhos})" if released else ""
    if not pts and released:
        return "; no label-swapped null of its pole contrast was drawn in this run" + paper
    if not pts:
        return "; no label-swapped null was drawn for it in this run"
    at = [p for p in pts if math.isclose(p.strength, rho)]
    if at:
        return (f"; at this sparsity {sum(bool(p.persona_specific) for p in at)} of {len(at)} curve points beat their null"
                + paper)
    where = ", ".join(f"{s:g}" for s in sorted({p.strength for p in pts if not p.matched_target}))
    matched = " and at the matched strengths" if any(p.matched_target for p in pts) else ""
    return f"; not null-tested at this sparsity (its label-swapped null was drawn at sparsity {where}{matched}){paper}"


def method_conclusions(res: StudyResults) -> list[str]:
    """Per method at the study's sparsity: in how many sets the all-item contrast is above 0, and its damage."""
    rho = res.meta.config.sparsity
    heads = res.headlines()
    out = []
    for m in ["wanda", "contrastive-wanda", "contrastive-sparse", "prompt", "rag", "sft"]:
        cs = [(n, s.contrast(m)) for n, s in res.sets.items() if s.contrast(m)]
        if not cs:
            continue
        pos = [n for n, c in cs if c.shift_ci95[0] > 0]
        neg = [n for n, c in cs if c.shift_ci95[1] < 0]
        dmg = [c.damage_kl for _, c in cs if c.damage_kl is not None]
        where = f" at sparsity {rho}" if m in MAIN_METHODS else ""
        dtxt = f" (damage {min(dmg):.3g} to {max(dmg):.3g} nats/token)" if dmg else ""
        tested = _null_tested_at(res, m, rho) if m in MAIN_METHODS and heads else ""
        out.append(f"- **{m}**{where}{dtxt}: the pole contrast on every held-out item is positive with a 95 % interval "
                   f"above zero in {len(pos)} of {len(cs)} sets{' (' + ', '.join(pos) + ')' if pos else ''}"
                   + (f"; reversed in {', '.join(neg)}" if neg else "") + tested + ".")
    return out


def random_mask_conclusions(res: StudyResults) -> list[str]:
    """Persona masks against a random mask of the same sparsity: per-token accuracy (pole A) on every set,
    summed accuracy on the AI tasks, and the released scoring where the study measured it."""
    out = []
    better = []
    for s in res.sets.values():
        r, c = s.row("random-mask", s.poles[0]), s.row("contrastive-wanda", s.poles[0])
        if r and c:
            better.append(c.accuracy_length_normalized - r.accuracy_length_normalized)
    if better:
        out.append(f"- Contrastive Wanda vs a random mask of the same sparsity (pole A, per-token accuracy): mean difference "
                   f"{100 * sum(better) / len(better):+.1f} points over {len(better)} sets.")
    pairs, parts = [], []
    for n, s in res.ai_sets().items():
        rnd = s.row("random-mask", "matching")
        if n in LENGTH_DECIDED or rnd is None:
            continue
        masks = [(m, s.row(m, "matching")) for m in MAIN_METHODS if s.row(m, "matching")]
        pairs += [(r.accuracy, rnd) for _, r in masks]
        parts.append(f"{n}: random {pct(rnd.accuracy)}, " + ", ".join(f"{m} {pct(r.accuracy)}" for m, r in masks))
    if pairs:
        above = sum(a > r.accuracy for a, r in pairs)
        inside = sum(r.accuracy_ci95[0] <= a <= r.accuracy_ci95[1] for a, r in pairs)
        out.append(f"- Summed accuracy of the `matching` pole (not the paper's scoring) at sparsity "
                   f"{res.meta.config.sparsity}: {'; '.join(parts)}. A persona mask is above the random mask in {above} of "
                   f"{len(pairs)} (set, mask) pairs, and inside the random mask's 95 % interval in {inside} of {len(pairs)}.")
    out += released_conclusions(res)
    return out


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
