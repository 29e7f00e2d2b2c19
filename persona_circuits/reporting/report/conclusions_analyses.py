"""Conclusions of the analyses (overlap, probes, decoding, reliability, ablations, capability, stability, the
16 types, the atlas), every sentence computed from the typed results."""

from __future__ import annotations

import numpy as np

from ...results import StudyResults, TypesResult
from .method import holm_bound, span
from .text import iv


def analysis_conclusions(res: StudyResults) -> list[str]:
    """Every analysis conclusion, in the report's order."""
    return (overlap_conclusion(res) + probe_conclusion(res) + decoding_conclusion(res) + similarity_conclusion(res)
            + ablation_conclusions(res) + capability_conclusions(res) + types_atlas_conclusions(res))


def overlap_conclusion(res: StudyResults) -> list[str]:
    """Opposite-pole Wanda masks' difference rate, next to random masks and the paper."""
    sets = {n: s for n, s in res.sets.items() if s.overlap and "wanda" in s.overlap and "random" in s.overlap}
    if not sets:
        return []
    pap = res.paper.mbti_difference_rate if res.paper else {}
    wd = [(n, s.overlap["wanda"].overall.difference_rate, s.overlap["random"].overall.difference_rate)
          for n, s in sets.items()]
    cmp = [f"{n} {100 * d:.2f} %" + (f" (paper {pap[n]} %)" if n in pap else "") for n, d, _ in wd]
    both = [(100 * d, pap[n]) for n, d, _ in wd if n in pap]
    side = ("all below" if all(x < y for x, y in both) else "all above" if all(x > y for x, y in both)
            else "on both sides of")
    rel = f"; on the {len(both)} set(s) the paper reports, ours are {side} its values" if both else ""
    return ["- Opposite-pole Wanda masks differ in " + ", ".join(cmp) +
            f" of entries, against {100 * wd[0][2]:.0f} % for two random masks of the same sparsity{rel}."]


def probe_conclusion(res: StudyResults) -> list[str]:
    """Where a probe beats both lexical baselines; what that does and does not show."""
    if not all(s.probes for s in res.sets.values()):
        return []
    parts = []
    for n, s in res.sets.items():
        pr = s.probes
        bb = pr.better_baseline.replace("_", " ")
        parts.append(f"{n} {pr.n_informative} of {pr.n_comparisons} layers (better baseline: {bb}, "
                     f"{100 * pr.baseline(pr.better_baseline).test_accuracy:.0f} %)")
    n_inf = sum(s.probes.n_informative for s in res.sets.values())
    n_all = sum(s.probes.n_comparisons for s in res.sets.values())
    tail = ("No layer decodes the pole better than the words of the answers do, so the probes give no evidence of "
            "a persona representation beyond the lexical content." if n_inf == 0 else
            f"At those {n_inf} of {n_all} layers the probes decode the pole better than both baselines (uncorrected for "
            "the number of layers); at the others this test found no advantage, which does not show that they hold none.")
    return ["- Probes beat both lexical baselines (bag of words and embedding probe) at " + "; ".join(parts) + ". " + tail]


def decoding_conclusion(res: StudyResults) -> list[str]:
    """Neutral-text decoding of each pole's intervention, next to two random masks."""
    sets = res.sets
    if not all(s.neutral_decoding for s in sets.values()):
        return []
    ref = "two random masks (reference)"
    parts = [f"{n} / {label}: {d.n_decodable} of {len(d.layers)} layers"
             for n, s in sets.items() for label, d in s.neutral_decoding.items() if label != ref]
    line = ("- Which pole's intervention is active is decodable from neutral text (95 % interval above chance) at: "
            + "; ".join(parts) + ".")
    refs = [s.neutral_decoding[ref] for s in sets.values() if ref in s.neutral_decoding]
    cw = [s.neutral_decoding.get("contrastive-wanda masks") for s in sets.values()]
    if refs and all(cw):
        r = refs[0]
        mean_ref = float(np.mean([x.accuracy for x in r.layers]))
        mean_cw = [float(np.mean([x.accuracy for x in d.layers])) for d in cw]
        above = sum(m > mean_ref for m in mean_cw)
        line += (f" Two random masks of the same sparsity are decodable at {r.n_decodable} of {len(r.layers)} layers "
                 f"(mean accuracy over layers {100 * mean_ref:.0f} %); the poles' contrastive-Wanda masks have a higher mean "
                 f"accuracy in {above} of {len(cw)} sets"
                 + (", so their decodability alone is no evidence of persona structure." if above == 0 else "."))
    return [line]


def similarity_conclusion(res: StudyResults) -> list[str]:
    """Split-half reliability beyond its permutation null; the paper's cosine reported, not read as evidence."""
    sets = res.sets
    if not all(s.similarity for s in sets.values()):
        return []
    parts = [f"{n} {sum(r.p_value < 0.05 for r in s.similarity.layers)} of {len(s.similarity.layers)}"
             for n, s in sets.items()]
    lo = min(r.cosine_of_means for s in sets.values() for r in s.similarity.layers[len(s.similarity.layers) // 2:])
    return ["- The pole-difference direction replicates across split halves beyond the permutation null "
            "(p < 0.05) at " + ", ".join(parts) + f" layers. The paper's cosine of the means is at least {lo:.3f} "
            "in the later half of the layers of every set; no control texts were measured, so it is reported for "
            "comparison with the paper, not read as evidence."]


def ablation_conclusions(res: StudyResults) -> list[str]:
    """The restore ablation's lowest fraction (or why it was skipped) and each removal fraction's comparison."""
    a = res.analysis
    if a is None or a.restore is None or a.removal is None:
        return []
    out = []
    r = a.restore
    if r.rows:
        lo = min(r.rows, key=lambda x: x.fraction_of_full)
        out.append(f"- Restoring {lo.restored} to dense in both masks leaves {lo.fraction_of_full:.2f} of the full pole "
                   f"contrast (95 % CI {iv(lo.fraction_ci95, '{:.2f}')}), the lowest of {len(r.rows)} groups.")
    else:
        out.append(f"- Restore ablation not computed: {r.skipped}.")
    for row in a.removal.rows:
        lo_, hi_ = row.contrastive_minus_random_pair_ci95
        verdict = "larger than" if lo_ > 0 else "smaller than" if hi_ < 0 else "not distinguishable from"
        out.append(f"- Removing {100 * row.fraction:g} % of each row ({a.set}, {a.n_items} items): the top-contrastive "
                   f"removals' pole contrast ({row.contrastive_contrast.shift:+.3f}) is {verdict} that of two random "
                   f"removals of the same count ({row.random_pair_contrast.shift:+.3f}; paired difference "
                   f"{iv(row.contrastive_minus_random_pair_ci95)}); the same count of top pooled-Wanda weights shifts the "
                   f"preference by {row.shift_vs_dense['wanda-pooled'].shift:+.3f}.")
    return out


def capability_conclusions(res: StudyResults) -> list[str]:
    """Perplexity and general-knowledge accuracy, dense against every mask; bootstrap stability."""
    a = res.analysis
    out = []
    if a and a.capability and len(a.capability) > 1:
        d, others = a.capability[0], a.capability[1:]
        worst = max(others, key=lambda c: c.perplexity.perplexity)
        out.append(f"- Capability cost at sparsity {res.meta.config.sparsity}: perplexity {d.perplexity.perplexity:.1f} "
                   f"dense vs up to {worst.perplexity.perplexity:.1f} ({worst.condition}); general-knowledge accuracy "
                   f"(summed) {100 * d.general_choice.summed.accuracy:.0f} % dense vs "
                   + ", ".join(f"{100 * c.general_choice.summed.accuracy:.0f} % ({c.condition})" for c in others) + ".")
    if a and a.stability:
        out.append("- Bootstrap stability: mean Jaccard " + ", ".join(f"{r.method} {r.mean_jaccard:.2f}" for r in a.stability)
                   + f" vs {a.stability[0].random_jaccard:.2f} for random masks.")
    return out


def types_atlas_conclusions(res: StudyResults) -> list[str]:
    """The 16 types' Holm verdicts per method and the atlas's pairs shared beyond chance (Holm)."""
    return types_conclusions(res.types) + atlas_conclusions(res)


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
        det = [holm_bound(c) for r, c in tests if not t.verdict(r, c) and not c.persona_specific
               and holm_bound(c) is not None and c.shift <= c.detectable_shift]
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
