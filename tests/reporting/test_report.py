"""REPORT.md from the typed results: the committed reports, computed conclusions, version-2 fields, imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from persona_circuits.reporting.report import build_report, write_report
from persona_circuits.results import load_results, upgrade

from ..results_fixtures import GEMMA, ROOT, SMOLLM, raw, v2

WING = ROOT / "persona_circuits" / "reporting"


@pytest.mark.parametrize("results, report", [(SMOLLM, ROOT / "REPORT.md"),
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
    assert "| damage 95 % CI | within ±25 % of target |" in text and "| p (Holm) |" in text
    assert "null on the same items: mean ± sd" in text and "contrast on curve items" not in text
    assert "damage on 24 held-out neutral texts" in text and "random-direction null bound" in text
    assert "Corrected by family: matched null tests: 15 of 41 pass uncorrected, 13 after Holm's correction" in text
    assert "### The paper's metric: released scoring" in text and "| power paper | power ours |" in text
    assert "Released scoring (the paper's metric): " in text
    assert "### 9. The 16 types" in text and "| ESTJ |" in text and "**Interference**" in text
    assert "### 10. Atlas" in text and "Steering directions: mean cosine" in text
    assert re.search(r"- 16 types: \d+ of 64 \(type, axis\) contrasts beat their null", text)
    assert re.search(r"- Atlas: \d+ of 42 \(module type or layer, set pair\) overlaps", text)


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
