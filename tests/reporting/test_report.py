"""REPORT.md from the typed results: the committed reports, computed conclusions, version-2 fields, one current shape
read by null design (no version branch), imports."""

from __future__ import annotations

import ast
import copy
import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from persona_circuits.reporting.report import build_report, write_report
from persona_circuits.reporting.report.headline import STRENGTH_MATCHED_CAPTION, STRENGTH_MATCHED_CURVES
from persona_circuits.results import DAMAGE_MATCHED, STRENGTH_MATCHED, load_results, upgrade

from ..results_fixtures import COMMITTED, GEMMA, ROOT, SMOLLM, raw, v2

WING = ROOT / "persona_circuits" / "reporting"


@pytest.mark.parametrize("results, report", [(COMMITTED, ROOT / "REPORT.md"),
                                             (GEMMA, ROOT / "reports" / "gemma-3-270m" / "REPORT.md")])
def test_committed_reports_are_built_by_the_wing(results, report):
    assert build_report(results) == report.read_text(encoding="utf-8")


def test_write_report(tmp_path):
    path = write_report(load_results(GEMMA), tmp_path / "REPORT.md")
    assert path.read_text().startswith("# persona_circuits: study report")


def _conclusions(d) -> str:
    return build_report(d).split("## Conclusions")[1]


def test_conclusions_follow_the_numbers():
    base = _conclusions(raw())
    assert "**wanda** at sparsity 0.5 (damage 1.11 to 1.28 nats/token): the pole contrast on every held-out item is " \
           "positive with a 95 % interval above zero in 7 of 7 sets" in base
    d = raw()
    wanda = next(c for c in d["sets"]["power"]["contrasts"] if c["condition"] == "wanda")
    wanda["shift_ci95"] = [-0.2, -0.1]
    assert "in 6 of 7 sets (mbti-ei, mbti-jp, mbti-sn, mbti-tf, wealth, hallucination); reversed in power" in _conclusions(d)
    d = raw()
    next(r for r in d["sets"]["power"]["conditions"] if r["condition"] == "random-mask" and r["pole"] == "matching")[
        "accuracy"] = 0.40
    assert "power: random 58.0" in base and "power: random 40.0" in _conclusions(d)
    assert "above the random mask in 2 of 6" in base and "above the random mask in 4 of 6" in _conclusions(d)


def test_conclusions_read_the_curves_and_the_matched_rows():
    d = raw()
    assert "**Curves, wanda**: 1 of 7 points" in _conclusions(d)
    for s in d["sets"].values():
        s["effect_damage"]["curves"]["wanda"][0]["persona_specific"] = True
    assert "**Curves, wanda**: 7 of 7 points" in _conclusions(d)
    d["sets"]["mbti-ei"]["effect_damage"]["curves"]["wanda"][0]["strength"] = 0.5
    assert "at this sparsity 1 of 1 curve points beat their null" in _conclusions(d)


def test_lora_is_an_upper_bound_only_where_its_adapters_moved_the_model():
    smol, gemma = build_report(SMOLLM), build_report(GEMMA)
    assert "| LoRA fine-tuning (upper bound) |" in smol and "| LoRA (upper bound) |" in smol
    assert "(upper bound) |" not in gemma and "(adapters at zero)" in gemma and "not an upper bound" in gemma
    d = v2(GEMMA)
    d["sets"]["power"]["headline"]["points"]["sft"]["trained"] = False
    assert "| LoRA (adapters at zero) |" in build_report(d)


def test_fixed_claims_are_gone_and_settings_are_computed():
    text = build_report(SMOLLM)
    for claim in ("the paper's setting", "the default model", "answer length included", "as it would be for any texts",
                  "Only those layers carry", "(the paper's scoring)"):
        assert claim not in text, claim
    assert "model `smollm2-135m-instruct`" in text and "Ours: `gemma-3-270m`" in build_report(GEMMA)
    assert "per-text `rms` statistic" in text and "`l2` channel statistic (Wanda scores)" in text
    d = raw()
    d["meta"]["config"]["sparsity"] = 0.3
    d["meta"]["config"]["text_stat"] = "l2"
    text = build_report(d)
    assert "0.3 for every mask method, the released code's default for contrastive-wanda and contrastive-sparse; the " \
           "released code's default for wanda is 0.5" in text and "per-text `l2` statistic, modules" in text


def test_version_1_says_what_was_not_measured():
    text = build_report(SMOLLM)
    assert "Not measured in this run: the damage on held-out neutral texts" in text
    assert "released scoring (mean loss over every token, persona system prompt on): not measured in this run" in text
    assert "### 9. The 16 types" not in text and "### 10. Atlas" not in text


def test_version_2_fields_are_shown():
    text = build_report(v2())
    assert "Not measured in this run" not in text and "not measured in this run" not in text
    assert "| damage, held-out [95 % CI] |" in text and "| p / p (Holm) | persona-specific (Holm) |" in text
    assert "| 95 % bound (zero centre) | estimated-centre bound |" in text and "contrast on curve items" not in text
    assert "strengths fitted on 8 neutral texts, damage on 8 held-out ones" in text and "| random-direction null |" in text
    assert "Every family of tests in this run, corrected within the family: primary: one test per (method, target)" in text
    assert "; matched-damage null tests" in text and "## Primary family" in text and "## Calibration" in text
    assert "## AI persona tasks: the paper's table, under the paper's scoring" in text
    assert "### 9. The 16 types" in text and "#### soft-mask" in text and "#### steering" in text and "| ESTJ |" in text
    assert "**Interference**" in text and "### 10. Atlas" in text and "| shared (Holm) |" in text
    assert re.search(r"- \*\*16 types, soft-mask\*\*: \d+ of 32 \(type pair, axis\) tests persona-specific after Holm", text)
    assert re.search(r"- Atlas: 2 of 21 tested set pairs share top contrastive weights beyond their label-swapped null "
                     r"after Holm's correction \(hallucination & mbti-ei, hallucination & mbti-jp\)", text)


def _headline(d) -> str:
    return build_report(d).split("## Headline")[1].split("### Every curve point")[0]


def test_the_method_text_is_read_from_the_run():
    d = v2()
    text = _headline(d)
    for fixed in ("random directions of the persona vector's norm", "interpolated (log strength against log damage)",
                  "measured there again", "mean + t(0.95, K−1)·sd·sqrt(1 + 1/K), with its own"):
        assert fixed not in text, fixed
    assert "fitted to each target damage on 8 *fit* neutral texts" in text and "on 8 *held-out* neutral texts (disjoint" in text
    assert "steering: the difference of means of label-swapped calibration data" in text
    assert "soft-mask: the same soft-mask dial built from label-swapped calibration data" in text
    assert "its K = 6 null draws, on the same items" in text
    s = d["null_symmetry"]
    assert (f"pooled over the {s['n_rows']} tested rows" in text and f"Stouffer z = {s['stouffer_z']:+.2f}" in text
            and "a draw and its complement give opposite contrasts, bit for bit" in text)  # a description (issue 23)
    d["null_symmetry"].pop("role")  # an older run: the check chose the centre
    text = _headline(d)
    assert (f"pooled over its {s['n_rows']} tested rows" in text
            and "The check does not reject, so the zero centre is used" in text)
    assert "the zero-centred bound t(0.95, K)·sqrt(mean(x²)) (x: the draws' contrasts, K = 6 degrees of freedom)" in text
    assert "null band (shaded: from 0 to the zero-centred 95 % bound)" in text
    assert "Steering rows are also tested against K = 6 random directions" in text
    d["null_symmetry"].update(centered=False, center_used="estimated", p_value=0.001)
    for s in d["sets"].values():
        for r in s["headline"]["matched"]:
            r.pop("random_direction_null", None)
            if r.get("null_center"):
                r["null_center"] = "estimated"
            for k in ("fit_texts",):
                r[k] = list(range(8, 20))
        s["headline"]["damage"]["fit_texts"] = list(range(8, 20))
    text = _headline(d)
    assert "The check rejects, so the estimated centre is used" in text and "random directions" not in text
    assert "the estimated-centre bound mean + t(0.95, K−1)·sd·sqrt(1 + 1/K) (K = 6)" in text
    assert "on 12 *fit* neutral texts" in text and "from the null draws' mean to their estimated-centre 95 % bound" in text


def test_verdicts_say_what_a_no_means_and_flag_damage_outside_the_tolerance():
    d = v2()
    text = _headline(d)
    res = load_results(d)
    rows = [r for h in res.headlines().values() for r in h.reached()]
    below = next(r for r in rows if not r.persona_specific and r.shift <= r.detectable_shift)
    assert below.detectable_shift_adjusted > below.detectable_shift
    assert (f"no (not detectable above {below.detectable_shift:+.3f} uncorrected, "
            f"{below.detectable_shift_adjusted:+.3f} after Holm)") in text
    holm = next(r for r in rows if r.persona_specific and not r.persona_specific_adjusted)
    assert (f"no after Holm (p {holm.p_adjusted:.2g}; uncorrected: above {holm.detectable_shift:+.3f}; certain to pass "
            f"Holm above {holm.detectable_shift_adjusted:+.3f})") in text
    assert "Under Holm's correction a row is certain to pass (its interval excluding 0) only above the bound" in text
    out = next(r for r in rows if r.within_tolerance is False)
    assert f"{out.damage_kl:.3f} [" in text and "**outside**" in text
    assert f"Held-out damage outside ±25 % of the target (compare these rows with care): {out.method} at " in text
    conc = _conclusions(d)
    n_adj = sum(bool(r.specific) for r in rows if r.method == "steering")
    assert f"- **Matched damage, steering**: reached in {sum(r.method == 'steering' for r in rows)} of 14 (set, target) " \
           f"rows; persona-specific after Holm's correction in {n_adj} (" in conc
    assert "the contrast is not detectable above its row's detectable shift at Holm's strictest step" in conc
    assert "pass uncorrected but not after Holm's correction (their contrasts are " in conc
    for s in d["sets"].values():  # the counts follow Holm's verdicts, not the uncorrected ones
        for r in s["headline"]["matched"]:
            if r.get("method") == "steering" and r["reached"]:
                r["persona_specific_adjusted"] = False
    assert "- **Matched damage, steering**: reached in 13 of 14 (set, target) rows; persona-specific after Holm's " \
           "correction in 0 (" in _conclusions(d)


def test_the_paper_table_is_the_released_scoring():
    text = build_report(v2()).split("## Headline")[0]
    released, summed = text.split("### Summed and per-token accuracy (not the paper's scoring)")
    assert "the persona system prompt in front" in released and "null draws" in released
    assert "| random mask (sparsity 0.3) | - |" in released and "| random mask (sparsity 0.5) | - |" in released
    assert "| Wanda persona mask (sparsity 0.5) | 51.5 | 60.0 [53, 67] |" in released
    assert "| contrastive Wanda (sparsity 0.3) | 54.0 |" in released and "| LoRA fine-tuning (upper bound) | 64.0 |" in released
    assert "Neither column is the paper's scoring" in summed and "| method | power paper | power ours (sum) |" in summed
    conc = _conclusions(v2())
    assert "with K = 3 draw(s) each, a mask with no persona effect does so by chance with probability 1/(K + 1) = 25 %" in conc
    assert "- Released scoring against a random mask of the same sparsity: above it in 9 of 9" in conc
    d = v2()
    for s in d["sets"].values():
        for r in s.get("paper_table") or []:
            if r["condition"] == "sft":
                r["accuracy"] = 0.123
    assert "| LoRA fine-tuning (upper bound) | 64.0 | 12.3 [" in build_report(d)


def untested_v2() -> dict:
    """Version-2 results whose matched rows, types and atlas pairs have no test (one null draw each)."""
    return copy.deepcopy(_untested())


@functools.cache
def _untested() -> dict:
    d = v2()
    for s in d["sets"].values():
        for r in s["headline"]["matched"]:
            for k in ("null_threshold", "p_value", "p_adjusted", "persona_specific", "persona_specific_adjusted",
                      "detectable_shift", "null_center", "estimated_center", "null_shift_sd", "random_direction_null"):
                r.pop(k, None)
            if r["reached"]:
                r["null_shifts"], r["null_draws"] = r["null_shifts"][:1], 1
    d["null_symmetry"] = {"n_rows": 0, "stouffer_z": None, "p_value": None, "share_rejected": None, "centered": True,
                          "center_used": "zero"}
    for t in d["types"]:
        for row in t["rows"]:
            for c in row["contrasts"]:
                c.pop("p_value", None)
    for pair in d["atlas"]["pairs"]:
        pair.update(p_value=None, p_holm=None, shared=None)
    return d


def test_rows_without_a_test_say_so():
    d = untested_v2()
    text = build_report(d)
    assert "No row has the two null draws a test needs, so no row is tested in this run." in text
    assert "zero-centred" not in _headline(d) and "| no (untested: fewer than 2 null draws) |" in text
    assert "- **16 types, soft-mask**: no (type pair, axis) contrast was tested against a null in this run." in text
    assert "- Atlas: no set pair was tested against a label-swapped null in this run" in text


def test_where_the_masks_meet_their_nulls_is_computed():
    d = v2()
    assert "their nulls, and every method at matched damage, are in the headline section" in build_report(d)
    del d["sets"]["power"]["headline"]
    d["sets"]["wealth"]["headline"]["curves"].pop("wanda")
    text = build_report(d)
    power = text.split("\n### power (")[1].split("\n### wealth (")[0]
    wealth = text.split("\n### wealth (")[1].split("\n### hallucination (")[0]
    assert "this run measured no effect against damage on this set" in power
    assert "steering was not measured at matched damage on this set in this run" in power
    assert ("wanda: no null in this run; the matched-damage table holds steering, contrastive-wanda, soft-mask, "
            "projection-gate, steering-all, gate-bias." in wealth)
    assert "contrastive-wanda, contrastive-sparse: label-swapped nulls on the effect-against-damage curves" in wealth


def test_types_and_atlas_sections_are_skipped_cleanly_when_absent():
    d = v2()
    d["types"], d["atlas"] = [], None
    text = build_report(d)
    assert "### 9. The 16 types" not in text and "### 10. Atlas" not in text
    assert "16 types" not in _conclusions(d) and "- Atlas" not in _conclusions(d)


def test_atlas_verdicts_come_from_holm_not_from_the_95th_percentile():
    d = v2()
    for m in d["atlas"]["overlaps"]:  # every pair far above the null's 95th percentile: no verdict changes
        m["null_p95"] = [[0.0] * len(row) for row in m["null_p95"]]
    text = build_report(d)
    assert "2 of 21 tested set pairs share top contrastive weights" in text
    assert all(f"- {c}" in text for c in d["atlas"]["conclusions"])
    d["atlas"]["pairs"][0]["shared"] = False
    assert "1 of 21 tested set pairs share top contrastive weights" in _conclusions(d)


def test_upgraded_and_raw_version_1_give_the_same_report():
    assert build_report(raw()) == build_report(upgrade(raw())) == build_report(load_results(SMOLLM))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_wing_never_imports_the_study_and_figures_never_import_the_report():
    for path in WING.rglob("*.py"):
        names = _imports(path)
        assert not any("study" in n for n in names), path
        if "figures" in path.parts:
            assert not any(n.endswith("report") or ".report." in n or n.startswith("..report") for n in names), path
    code = ("import sys, persona_circuits.reporting.figures, persona_circuits.reporting.report; "
            "print(any(m.startswith('persona_circuits.study') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    code = "import sys, persona_circuits.reporting.figures; print('persona_circuits.reporting.report' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_style_limits_of_the_wing_and_the_contract():
    for path in [*WING.rglob("*.py"), *(ROOT / "persona_circuits" / "results").rglob("*.py")]:
        text = path.read_text()
        assert len(text.splitlines()) <= 500, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 80, f"{path}:{node.name}"
                assert ast.get_docstring(node) or node.name.startswith("_") or node.name in ("to_dict",), \
                    f"{path}:{node.name} has no docstring"


def test_a_version_1_file_renders_in_the_words_of_its_null_design():
    """An older file is upgraded to the current shape; what its rows measured differently is their null design,
    read like any other field: strength-matched rows get their captions, columns and conclusions."""
    for d in (raw(), raw(GEMMA)):
        res = load_results(d)
        assert res.null_design == STRENGTH_MATCHED
        assert {r.null_design for h in res.headlines().values() for r in h.reached()} == {STRENGTH_MATCHED}
        text = build_report(d)
        assert text.startswith("# persona_circuits: study report") and "## Conclusions" in text
        assert STRENGTH_MATCHED_CAPTION in text and STRENGTH_MATCHED_CURVES in text
        assert "null test on 12 items" in text and "| contrast on curve items |" in text
        assert "beats its null in" in _conclusions(d) and "after Holm's correction in" not in _conclusions(d)
    res = load_results(v2())
    assert res.null_design == DAMAGE_MATCHED and {h.null_design for h in res.headlines().values()} == {DAMAGE_MATCHED}
    assert STRENGTH_MATCHED_CAPTION not in build_report(v2())


def test_a_set_renders_in_its_rows_design_not_the_files_version():
    """A current (schema-2) file with one set of strength-matched rows: that set's table takes the strength-matched
    layout, every other set's the damage-matched one."""
    d = v2()
    for r in d["sets"]["power"]["headline"]["matched"]:
        r.pop("null_kind", None)
    res = load_results(d)
    assert res.schema == 2 and res.sets["power"].headline.null_design == STRENGTH_MATCHED
    assert res.null_design == res.sets["wealth"].headline.null_design == DAMAGE_MATCHED
    text = _headline(d)
    power = text.split("#### power (")[1].split("#### ")[0]
    wealth = text.split("#### wealth (")[1].split("#### ")[0]
    assert "null test on" in power.splitlines()[0] and "| damage, held-out [95 % CI] |" not in power
    assert "contrast and null on all of them" in wealth.splitlines()[0] and "| damage, held-out [95 % CI] |" in wealth


#: Names that would compare the results' version in the reporting wing (``is_v2``, ``_columns_v1``, ``v2``, ``schema``,
#: ``SCHEMA_VERSION``, ``version``).
VERSION_NAME = re.compile(r"(?:^|_)v\d+(?:$|_)|schema|version", re.IGNORECASE)


def version_branches(source: str) -> list[str]:
    """Every name, attribute, definition, import or string key in ``source`` that names a version or the schema."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, ast.keyword):
            names = [node.arg or ""]
        elif isinstance(node, ast.alias):
            names = [node.name, node.asname or ""]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            names = [str(node.slice.value)]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get" and node.args \
                and isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]
        found += [f"line {node.lineno}: {n}" for n in names if VERSION_NAME.search(n)]
    return found


def test_the_reporting_wing_has_no_version_branch():
    """The report and the figures read one current shape: no module, name or key of theirs names a version."""
    for path in WING.rglob("*.py"):
        assert not VERSION_NAME.search(path.stem), path
        assert version_branches(path.read_text()) == [], path
    bad = ("from .conclusions_v2 import matched_line_v2\n"
           "def headline(res, v2):\n    return is_v2(res) or res.schema >= 2 or d.get('schema') or d['schema']\n")
    assert len(version_branches(bad)) == 7
    assert version_branches("def f(res):\n    return res.null_design == DAMAGE_MATCHED\n") == []


BALANCED = ("label-swapped: exactly half of the calibration items, chosen uniformly, have their two answers swapped between "
            "the poles (a balanced label swap), so a draw's pseudo-poles carry no mean persona difference.")
COINS = ("label-swapped: each calibration item's two answers assigned to the two poles by a fair coin, so the draws carry "
         "no persona difference.")


def test_the_label_swap_is_read_from_the_rows():
    """``null_swap`` of the matched rows (absent: coins, the older design) decides how the draws are described."""
    d = v2()
    assert COINS in _headline(d) and "balanced" not in _headline(d)
    rows = [r for s in d["sets"].values() for r in s["headline"]["matched"] if r.get("null_kind") == "label-swapped"]
    for r in rows:
        r["null_swap"] = "balanced"
    text = _headline(d)
    assert BALANCED in text and "fair coin" not in text
    for r in rows[:5]:
        r["null_swap"] = "coins"
    text = _headline(d)
    assert (f"label-swapped: in the {len(rows) - 5} rows with balanced swaps, exactly half of the calibration items, "
            "chosen uniformly, have their two answers swapped") in text
    assert "in the 5 rows with coins, each calibration item's two answers assigned to the two poles by a fair coin" in text


def test_the_paper_tables_label_swap_is_read_from_its_rows():
    d = v2()
    paper = build_report(d).split("## Headline")[0]
    assert "label-swapped calibration set(s) (each item's two answers assigned to the poles by a coin: the accuracies" in paper
    for s in d["sets"].values():
        for r in s.get("paper_table") or []:
            if r.get("null_accuracies"):
                r["null_swap"] = "balanced"
    paper = build_report(d).split("## Headline")[0]
    assert ("label-swapped calibration set(s) (exactly half of the items, chosen uniformly, with their two answers swapped "
            "between the poles: the accuracies") in paper and "by a coin" not in paper


def test_the_symmetry_conclusion_names_the_centre_the_rows_were_tested_with():
    d = v2()
    d["null_symmetry"].update(role="description", centered=False, p_value=0.04)  # described only: zero centre regardless
    line = next(x for x in _conclusions(d).splitlines() if x.startswith("- Null symmetry"))
    assert "a description" in line and "tested with the zero-centred bound" in line and "estimated centre" not in line
    d["null_symmetry"].pop("role")  # an older run, whose check chose the centre
    line = next(x for x in _conclusions(d).splitlines() if x.startswith("- Null symmetry"))
    assert "not taken as centred on 0, and every row is tested with the estimated centre" in line
