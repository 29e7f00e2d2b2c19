"""The matched-damage table of one set, laid out for the null design of its rows (:data:`LAYOUTS`,
:attr:`persona_circuits.results.Headline.null_design`): damage-matched rows (held-out damage, nulls each at their own
damage-matched strength on the same items, Holm) in columns of their own, with each verdict written out ("no (not
detectable above +0.145)"); strength-matched rows (the older design: the null at the real pair's strength, on the
curve items) in a column for each field that some row has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...results import DAMAGE_MATCHED, STRENGTH_MATCHED, Headline, MatchedRow, NullDraws, ReferencePoint, SetResults
from ..labels import lora_label
from .method import span
from .text import iv, opt, pct, table


@dataclass
class _Col:
    header: str
    cell: Callable[[MatchedRow], str]
    ref: Callable[[ReferencePoint], str] = lambda p: "-"


def null_cells(p: NullDraws) -> tuple[str, str, str]:
    """The null's ``mean ± sd``, its bound and its (uncorrected) verdict, as table cells."""
    sd = f"{p.null_shift_sd:.3f}" if p.null_shift_sd is not None else "-"
    nm = f"{p.null_shift_mean:+.3f} ± {sd}" if p.null_shift_mean is not None else "-"
    thr = f"{p.null_threshold:+.3f}" if p.null_threshold is not None else "-"
    return nm, thr, "yes" if p.persona_specific else "no"


def _diff(d) -> str:
    if not d:
        return "-"
    return f"{d.diff:+.3f} {iv(d.ci95)}" + (f"; Holm: {d.verdict_adjusted}" if d.verdict_adjusted else "")


def _yes_no(v: bool | None) -> str:
    return {True: "yes", False: "no", None: "-"}[v]


def _field_columns(rows: list[MatchedRow], points: list[ReferencePoint]) -> list[_Col]:
    """The columns of strength-matched rows (also with only some of the damage-matched rows' fields): each field that
    some row has."""
    def has(attr):
        """Whether some row has a value for ``attr``."""
        return any(getattr(r, attr) is not None for r in rows)

    same = bool(rows) and all(r.null_on_same_items for r in rows)
    cols = [_Col("method", lambda r: r.method), _Col("target KL", lambda r: f"{r.target_kl:g}"),
            _Col("strength", lambda r: f"{r.strength:.4g}"),
            _Col("damage (KL)", lambda r: f"{r.damage_kl:.3f}", lambda p: opt(p.damage_kl, "{:.3f}"))]
    if has("damage_kl_ci95") or any(p.damage_kl_ci95 for p in points):
        cols.append(_Col("damage 95 % CI", lambda r: iv(r.damage_kl_ci95, "{:.3f}") if r.damage_kl_ci95 else "-",
                         lambda p: iv(p.damage_kl_ci95, "{:.3f}") if p.damage_kl_ci95 else "-"))
    if has("within_tolerance"):
        cols.append(_Col("within ±25 % of target", lambda r: _yes_no(r.within_tolerance)))
    cols += [_Col("contrast, all items", lambda r: f"{r.shift:+.3f}", lambda p: f"{p.shift:+.3f}"),
             _Col("95 % CI", lambda r: iv(r.shift_ci95), lambda p: iv(p.shift_ci95)),
             _Col("moved", lambda r: pct(r.moved), lambda p: pct(p.moved)),
             _Col("null on the same items: mean ± sd" if same else "null on curve items: mean ± sd",
                  lambda r: null_cells(r)[0], lambda p: "no null")]
    if has("null_strengths"):
        cols.append(_Col("null damage (mean)", lambda r: opt(r.null_damage_mean, "{:.3f}")))
    if not same:
        cols.append(_Col("contrast on curve items", lambda r: f"{r.curve_shift:+.3f}"))
    cols.append(_Col("null 95 % bound", lambda r: null_cells(r)[1]))
    if has("detectable_shift"):
        cols.append(_Col("detectable shift", lambda r: opt(r.detectable_shift)))
    if has("p_value"):
        cols.append(_Col("p", lambda r: opt(r.p_value, "{:.3f}")))
    if has("p_adjusted"):
        cols.append(_Col("p (Holm)", lambda r: opt(r.p_adjusted, "{:.3f}")))
    cols.append(_Col("persona-specific", lambda r: null_cells(r)[2], lambda p: "untested"))
    if has("persona_specific_adjusted"):
        cols.append(_Col("persona-specific (Holm)", lambda r: _yes_no(r.persona_specific_adjusted)))
    return cols + [_Col("− prompt [95 % CI]", lambda r: _diff(r.vs_prompt)),
                   _Col("− steering [95 % CI]", lambda r: _diff(r.vs_steering))]


def verdict(r: MatchedRow) -> str:
    """The row's verdict in words: ``yes``, or why not (under its detectable shift, an interval that includes 0, or
    above the bound but not after Holm's correction)."""
    if r.specific:
        return "yes"
    bound = r.detectable_shift if r.detectable_shift is not None else r.null_threshold
    if bound is None:
        return "no (untested: fewer than 2 null draws)"
    holm_bound = r.detectable_shift_adjusted
    if r.persona_specific and r.persona_specific_adjusted is False:
        tail = f"; certain to pass Holm above {holm_bound:+.3f}" if holm_bound is not None else ""
        return f"no after Holm (p {opt(r.p_adjusted, '{:.2g}')}; uncorrected: above {bound:+.3f}{tail})"
    if r.tested_shift is not None and r.tested_shift > bound:
        return f"no (above {bound:+.3f}, but its interval includes 0)"
    if holm_bound is not None:
        return f"no (not detectable above {bound:+.3f} uncorrected, {holm_bound:+.3f} after Holm)"
    return f"no (not detectable above {bound:+.3f})"


def _damage(r: MatchedRow) -> str:
    ci = f" {iv(r.damage_kl_ci95, '{:.3f}')}" if r.damage_kl_ci95 else ""
    return f"{r.damage_kl:.3f}{ci}" + (" **outside**" if r.within_tolerance is False else "")


def _side(t, n_items: bool = False) -> str:
    """A test reported beside the verdict: its bound, p and verdict (uncorrected)."""
    if t is None:
        return "-"
    items = f", {t.null_items} items" if n_items and t.null_items is not None else ""
    bound = f"bound {t.null_threshold:+.3f}" if t.null_threshold is not None else "no bound"
    return f"{bound}, p {opt(t.p_value, '{:.2g}')} ({t.n_null} draws{items}): {_yes_no(t.persona_specific)}"


def _damage_matched_columns(rows: list[MatchedRow], points: list[ReferencePoint]) -> list[_Col]:
    """The columns of damage-matched rows; a side test's column only where some row has it."""
    centres = {r.null_center for r in rows}
    centre = f" ({centres.pop()} centre)" if len(centres) == 1 and None not in centres else ""
    cols = [_Col("method", lambda r: r.method), _Col("target KL", lambda r: f"{r.target_kl:g}"),
            _Col("strength", lambda r: f"{r.strength:.4g}"),
            _Col("damage, held-out [95 % CI]", _damage,
                 lambda p: opt(p.damage_kl, "{:.3f}") + (f" {iv(p.damage_kl_ci95, '{:.3f}')}" if p.damage_kl_ci95 else "")),
            _Col("contrast [95 % CI]", lambda r: f"{r.shift:+.3f} {iv(r.shift_ci95)}",
                 lambda p: f"{p.shift:+.3f} {iv(p.shift_ci95)}"),
            _Col("moved", lambda r: pct(r.moved), lambda p: pct(p.moved)),
            _Col("null: mean ± sd (K)", lambda r: f"{null_cells(r)[0]} ({r.n_null})", lambda p: "no null"),
            _Col("null damage (mean)", lambda r: opt(r.null_damage_mean, "{:.3f}")),
            _Col(f"95 % bound{centre}", lambda r: null_cells(r)[1] + ("" if centre or not r.null_center else
                                                                     f" ({r.null_center})"))]
    if any(r.estimated_center for r in rows):
        cols.append(_Col("estimated-centre bound",
                         lambda r: opt(r.estimated_center.null_threshold) if r.estimated_center else "-"))
    cols += [_Col("p / p (Holm)", lambda r: f"{opt(r.p_value, '{:.3f}')} / {opt(r.p_adjusted, '{:.3f}')}"),
             _Col("persona-specific (Holm)", verdict, lambda p: "untested")]
    if any(r.random_direction_null for r in rows):
        cols.append(_Col("random-direction null", lambda r: _side(r.random_direction_null)))
    if any(r.strength_matched_null for r in rows):
        cols.append(_Col("strength-matched null (older test)", lambda r: _side(r.strength_matched_null, True)))
    return cols + [_Col("− prompt [95 % CI]", lambda r: _diff(r.vs_prompt)),
                   _Col("− steering [95 % CI]", lambda r: _diff(r.vs_steering))]


def _damage_matched_title(name: str, head: Headline, reached: list[MatchedRow]) -> str:
    d = head.damage
    texts = (f"strengths fitted on {len(d.fit_texts)} neutral texts, damage on {len(d.damage_texts)} held-out ones"
             if d else f"damage on {head.n_damage_texts} held-out neutral texts")
    kinds = " / ".join(sorted({r.null_kind for r in reached if r.null_kind}))
    return (f"#### {name} ({head.n_items_table} held-out items, contrast and null on all of them; "
            f"K = {span(r.n_null for r in reached)} {kinds} null draws per row; {texts})\n")


def _strength_matched_title(name: str, head: Headline, reached: list[MatchedRow]) -> str:
    items = head.null_items(reached[0]) if reached else head.n_items_curve
    texts = next((r.damage_texts for r in reached if r.damage_texts), None)
    dmg = f"{len(texts)} held-out neutral texts" if texts else f"{head.n_damage_texts} neutral texts"
    k = next((r.null_draws for r in reached if r.null_draws), head.null_draws_matched)
    return f"#### {name} ({head.n_items_table} held-out items; null test on {items} items, {k} null draws; damage on {dmg})\n"


@dataclass(frozen=True)
class Layout:
    """How the matched-damage table of rows of one null design is laid out: its columns (of the reached rows and the
    reference points), its title, and the texts on which the strength search of an unreached row measured its
    damages (``fit`` or ``curve``)."""

    columns: Callable[[list[MatchedRow], list[ReferencePoint]], list[_Col]]
    title: Callable[[str, Headline, list[MatchedRow]], str]
    searched_on: str


#: The table's layout per null design (:attr:`persona_circuits.results.Headline.null_design`).
LAYOUTS = {DAMAGE_MATCHED: Layout(_damage_matched_columns, _damage_matched_title, "fit"),
           STRENGTH_MATCHED: Layout(_field_columns, _strength_matched_title, "curve")}


def matched_table(name: str, head: Headline, s: SetResults) -> list[str]:
    """One set's matched-damage table in the layout of its rows' null design: every (method, target) row, then the
    reference points (and the rows whose held-out damage is outside the tolerance, where the rows say so)."""
    reached = head.reached()
    layout = LAYOUTS[head.null_design]
    points = [(cond, label, head.points[cond]) for cond, label in
              (("prompt", "persona prompt"), ("rag", "RAG"), ("sft", lora_label(s, short=True))) if cond in head.points]
    cols = layout.columns(reached, [p for _, _, p in points])
    rows = []
    for r in head.matched:
        if not r.reached:
            lo, hi = r.curve_damage_range or (None, None)
            what = f"not reached ({layout.searched_on} damage {lo:.3g} to {hi:.3g})" if lo is not None else "not reached"
            rows.append([r.method, f"{r.target_kl:g}", what] + ["-"] * (len(cols) - 3))
        else:
            rows.append([c.cell(r) for c in cols])
    rows += [[label] + [c.ref(p) for c in cols[1:]] for _, label, p in points]
    L = [layout.title(name, head, reached)] + table([c.header for c in cols], rows)
    out = [r for r in reached if r.within_tolerance is False]
    if out:
        tol = head.damage.tolerance if head.damage and head.damage.tolerance is not None else 0.25
        L.append(f"\nHeld-out damage outside ±{100 * tol:g} % of the target (compare these rows with care): "
                 + "; ".join(f"{r.method} at {r.target_kl:g} ({r.damage_kl:.3g})" for r in out) + ".")
    return L + [""]
