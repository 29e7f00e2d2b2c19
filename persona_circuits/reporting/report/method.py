"""The headline's method for damage-matched rows (:data:`persona_circuits.results.DAMAGE_MATCHED`), described from
the run's own fields: which null each method was tested against, the centre and bound the test used with its K, the
fit and held-out texts with their counts, and the pooled symmetry check; and the helpers the conclusions share
(:func:`span`, :func:`holm_bound`). Nothing here states a setting the results do not record."""

from __future__ import annotations

from ...results import Headline, MatchedRow, NullSymmetry, StudyResults
from .text import pct

#: What each null kind is, per kind of method (``{method}`` is filled in).
NULL_KIND_TEXT = {("label-swapped", "steering"): "the difference of means of label-swapped calibration data",
                  ("label-swapped", "mask"): "the same {method} dial built from label-swapped calibration data",
                  ("random-direction", "steering"): "random directions"}
#: How a label-swapped draw's calibration data are made, per the rows' ``null_swap`` (:mod:`persona_circuits.measure.nulls`;
#: absent: ``coins``, the older design).
SWAP_TEXT = {"balanced": ("exactly half of the calibration items, chosen uniformly, have their two answers swapped between "
                          "the poles (a balanced label swap), so a draw's pseudo-poles carry no mean persona difference"),
             "coins": ("each calibration item's two answers assigned to the two poles by a fair coin, so the draws carry no "
                       "persona difference")}
#: The same for the paper table's null draws (a mask built from the label-swapped calibration set).
PAPER_SWAP_TEXT = {"balanced": "exactly half of the items, chosen uniformly, with their two answers swapped between the poles",
                   "coins": "each item's two answers assigned to the poles by a coin"}


def swap_counts(rows) -> dict[str, int]:
    """How many of ``rows`` (records with ``null_swap``) drew their label swaps each way, ``coins`` where absent."""
    swaps = [r.null_swap or "coins" for r in rows]
    return {s: swaps.count(s) for s in sorted(set(swaps))}


def swap_text(counts: dict[str, int], texts: dict[str, str]) -> str:
    """The label swap of :func:`swap_counts`'s rows in ``texts``' words; both ways, with their counts, for a mixture."""
    def text(s: str) -> str:
        """One way of swapping in words (an unknown name as it is)."""
        return texts.get(s, f"the calibration items' answers swapped between the poles ({s})")

    if len(counts) == 1:
        return text(next(iter(counts)))
    return "; ".join(f"in the {n} rows with {'balanced swaps' if s == 'balanced' else s}, {text(s)}"
                     for s, n in counts.items())


def matched_rows(res: StudyResults) -> list[MatchedRow]:
    """Every reached matched row of every set."""
    return [r for h in res.headlines().values() for r in h.reached()]


def holm_bound(r) -> float | None:
    """The shift a "no" is read against (a matched row's or a type test's): the bound at Holm's strictest step where
    the study computed it, else the uncorrected detectable shift."""
    return r.detectable_shift_adjusted if r.detectable_shift_adjusted is not None else r.detectable_shift


def span(values, fmt: str = "{:g}") -> str:
    """``3`` or ``2 to 3`` for a collection of numbers."""
    v = sorted(set(values))
    if not v:
        return "-"
    return fmt.format(v[0]) if len(v) == 1 else f"{fmt.format(v[0])} to {fmt.format(v[-1])}"


def bound_formula(center: str | None, k: str) -> str:
    """The one-sided 95 % bound of a null test with ``k`` draws (:func:`persona_circuits.measure.nulls.null_test`)."""
    if center == "zero":
        return f"the zero-centred bound t(0.95, K)·sqrt(mean(x²)) (x: the draws' contrasts, K = {k} degrees of freedom)"
    return f"the estimated-centre bound mean + t(0.95, K−1)·sd·sqrt(1 + 1/K) (K = {k})"


def null_of(method: str, kind: str | None) -> str:
    """What ``method``'s null of ``kind`` is."""
    key = (kind, "steering" if method in ("steering", "steering-all") else "mask")
    return NULL_KIND_TEXT.get(key, f"{kind or 'unnamed'} draws").format(method=method)


def nulls_sentence(rows: list[MatchedRow]) -> str:
    """Each method's null, as recorded on its rows (``null_kind``), and how the label-swapped draws were made
    (``null_swap``)."""
    kinds = {}
    for r in rows:
        kinds.setdefault(r.method, set()).add(r.null_kind)
    parts = [f"{m}: {', '.join(null_of(m, k) for k in sorted(ks, key=str))}" for m, ks in kinds.items()]
    swapped = swap_counts([r for r in rows if r.null_kind == "label-swapped"])
    return "Null of each row (" + "; ".join(parts) + ")" + (f"; label-swapped: {swap_text(swapped, SWAP_TEXT)}."
                                                            if swapped else ".")


def centre_used(res: StudyResults) -> str | None:
    """The centre of the matched rows' tests (their own ``null_center``; ``None`` when no row was tested or they differ)."""
    centres = {r.null_center for r in matched_rows(res) if r.null_center}
    return centres.pop() if len(centres) == 1 else None


def k_text(rows: list[MatchedRow]) -> str:
    """K, the null draws per row (a range when draws whose search fell short were left out)."""
    ks = [r.n_null for r in rows]
    short = sum(r.null_draws_not_reached or 0 for r in rows)
    return span(ks) + (f"; {short} draws in all did not reach their target and are left out" if short else "")


def symmetry_sentence(sym: NullSymmetry | None, centre: str | None, k: str) -> str:
    """The pooled symmetry check and the centre it led to."""
    used = bound_formula(centre, k) if centre else "each row's own centre (see its row)"
    if sym is None or sym.stouffer_z is None or sym.p_value is None:
        return f"The rows are tested with {used} (this run records no pooled symmetry check)."
    if sym.role == "description":
        return (f"Label-swapped nulls are centred on 0 by construction: a draw and its complement give opposite contrasts, "
                f"bit for bit (tested on a tiny model), so every row is tested with {used}. As a description, pooled over "
                f"the {sym.n_rows} tested rows, the t statistics of the draws' means against 0 give Stouffer z = "
                f"{sym.stouffer_z:+.2f}, p = {sym.p_value:.3g}, with {pct(sym.share_rejected)} % of rows rejecting at the "
                "5 % level (5 % expected by chance).")
    verdict = "does not reject" if sym.centered else "rejects"
    follows = "the zero centre is used" if sym.centered else "the estimated centre is used"
    return (f"Label-swapped nulls are centred on 0 by construction (a draw and its complement give opposite contrasts); "
            f"the run checks it on the data: pooled over its {sym.n_rows} tested rows, the t statistics of the draws' "
            f"means against 0 give Stouffer z = {sym.stouffer_z:+.2f}, p = {sym.p_value:.3g}, with {pct(sym.share_rejected)} % "
            f"of rows rejecting at the 5 % level (5 % expected by chance). The check {verdict}, so {follows}: every row "
            f"is tested with {used}.")


def texts_sentence(head: Headline, rows: list[MatchedRow]) -> str:
    """The fit and held-out neutral texts, their counts, and the tolerance (from ``headline.damage`` or the rows)."""
    d = head.damage
    fit = d.fit_texts if d else next((r.fit_texts for r in rows if r.fit_texts), None)
    held = d.damage_texts if d else next((r.damage_texts for r in rows if r.damage_texts), None)
    if not fit or not held:
        return ""
    rel = "disjoint from them" if set(fit).isdisjoint(held) else "overlapping them"
    tol = d.tolerance if d and d.tolerance is not None else 0.25
    return (f"Each method's strength is fitted to each target damage on {len(fit)} *fit* neutral texts; the damage "
            f"reported is measured at that strength on {len(held)} *held-out* neutral texts ({rel}), with a bootstrap "
            f"95 % interval over texts. A row whose held-out damage lies outside ±{100 * tol:g} % of its target is "
            "flagged (\"outside\").")


def matched_method(res: StudyResults) -> list[str]:
    """The paragraphs under the matched-damage figure for damage-matched rows, every part read from the results."""
    heads = res.headlines()
    rows = matched_rows(res)
    head = next(iter(heads.values()))
    k = k_text(rows)
    same = all(r.null_on_same_items for r in rows)
    n_tested = sum(r.p_value is not None for r in rows)
    swapped = all(r.null_kind == "label-swapped" for r in rows)
    measured = ("At the fitted strength the real pair is measured on **every held-out item** (contrast, interval, share "
                f"of items moved), and so is each of its K = {k} null draws, "
                + ("on the same items" if same else "on the items of its null test") + ", each brought to the same "
                "target damage by its own strength search on the fit texts. " + nulls_sentence(rows))
    test = (symmetry_sentence(res.null_symmetry, centre_used(res), k) if swapped else
            f"Every row is tested with {bound_formula(centre_used(res), k)}.")
    if not n_tested:
        test = "No row has the two null draws a test needs, so no row is tested in this run."
    test += (" A row is persona-specific when its contrast lies above that bound and its own bootstrap interval excludes "
             f"0; p is the bound's one-sided p-value, and the verdict is taken after Holm's correction over the {n_tested} "
             "tested rows of the tables. The bound is also the row's *detectable shift*, the smallest contrast its test "
             "could have called persona-specific: a \"no\" reads \"not detectable above\" it.")
    test += holm_step_sentence(rows, centre_used(res), n_tested)
    beside = " ".join(_beside(rows, head) + [
        "`− prompt` and `− steering`: the paired difference (same items) to the persona prompt (at its own damage) and "
        "to steering at the same target, with a paired bootstrap 95 % interval and Holm's verdict. A target the "
        "strength search did not reach is not extrapolated (\"not reached\")."])
    return [p + "\n" for p in (texts_sentence(head, rows), measured, test, beside) if p]


def _beside(rows: list[MatchedRow], head: Headline) -> list[str]:
    """The tests reported beside the verdict: estimated centre, random directions, the older strength-matched test."""
    out = []
    if any(r.estimated_center for r in rows):
        out.append("The estimated-centre bound of the same draws is shown beside the bound the test used.")
    rnd = [r.random_direction_null for r in rows if r.random_direction_null]
    if rnd:
        out.append(f"Steering rows are also tested against K = {span(x.n_null for x in rnd)} random directions, each "
                   "brought to the same target damage the same way (`random-direction null`: reported beside, not part "
                   "of the verdict nor of the Holm family).")
    sm = [r.strength_matched_null for r in rows if r.strength_matched_null]
    if sm:
        items = span(x.null_items for x in sm if x.null_items is not None)
        out.append(f"The older test, {span(x.n_null for x in sm)} label-swapped draws at the real pair's own strength on "
                   f"{items} items with the estimated centre, is shown too (`strength-matched null`).")
    return out


def curves_method(res: StudyResults) -> str:
    """The paragraph under the curves figure for damage-matched rows."""
    heads = res.headlines()
    head = next(iter(heads.values()))
    rows = matched_rows(res)
    kinds = sorted({(r.method, r.null_kind) for r in rows if r.null_kind}, key=str)
    null = "; ".join(f"{m}: {null_of(m, k)}" for m, k in kinds) or "null draws"
    items = span(h.n_items_curve for h in heads.values())
    on_fit = " (damage measured on the fit texts)" if all(curve_on_fit_texts(h) for h in heads.values()) else ""
    centre = curve_centre(head)
    bound = f", {bound_formula(centre, span(h.null_draws for h in heads.values()))}" if centre else ""
    return (f"Each method's contrast over its strength dial on the first {items} held-out items{on_fit}, with the first "
            f"{span(h.null_draws for h in heads.values())} of the same null draws at every strength ({null}; hollow "
            f"markers; dotted: their one-sided 95 % bound{bound}). A point is persona-specific (*) only above that bound, "
            "with its own bootstrap interval above 0. The curves draw this figure and start the strength search; the "
            "verdicts are the table's.")


def holm_step_sentence(rows: list[MatchedRow], centre: str | None, m: int) -> str:
    """What the bound becomes at Holm's strictest step (``1 − 0.05 / m``), in null spreads, for the rows' K."""
    from scipy import stats

    ks = sorted({r.n_null for r in rows if r.detectable_shift_adjusted is not None and r.n_null})
    if not ks or m < 2:
        return ""
    df = [k if centre == "zero" else k - 1 for k in ks]
    q = [float(stats.t.ppf(1 - 0.05 / m, d)) for d in df]
    q0 = [float(stats.t.ppf(0.95, d)) for d in df]
    return (f" Under Holm's correction a row is certain to pass (its interval excluding 0) only above the bound at "
            f"level 1 − 0.05/{m}, t = {span(q, '{:.2f}')} null spreads with K = {span(ks)} draws against "
            f"{span(q0, '{:.2f}')} uncorrected: the row's *detectable shift after Holm*, which a \"no\" after "
            "Holm is read against (a smaller contrast may pass, depending on the other rows' p-values).")


def curve_on_fit_texts(head: Headline) -> bool:
    """Whether the curve's damages are the fit damages of the strength search (the same strength, the same value)."""
    fit = {(s, d) for r in head.matched for s, d in (r.search or [])}
    pts = [(p.strength, p.damage_kl) for pts in head.curves.values() for p in pts]
    return bool(pts) and any(p in fit for p in pts)


def curve_centre(head: Headline) -> str | None:
    """The centre of the curve points' bounds, read from their numbers (``None`` when no point tells)."""
    import numpy as np
    from scipy import stats

    for p in (p for pts in head.curves.values() for p in pts):
        x = np.asarray(p.null_shifts or [], float)
        if len(x) < 2 or p.null_threshold is None:
            continue
        k = len(x)
        est = x.mean() + stats.t.ppf(0.95, k - 1) * x.std(ddof=1) * np.sqrt(1 + 1 / k)
        zero = stats.t.ppf(0.95, k) * np.sqrt((x ** 2).mean())
        return "estimated" if abs(est - p.null_threshold) <= abs(zero - p.null_threshold) else "zero"
    return None
