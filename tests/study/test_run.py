import json
from dataclasses import replace

import pytest

from persona_circuits.errors import OutputError
from persona_circuits.reporting.figures import FIGURES, OPTIONAL
from persona_circuits.study import StudyConfig, StudyError, run_study

from ..conftest import SHARED


def micro_config() -> StudyConfig:
    c = StudyConfig.quick_preset()
    names = ("mbti-ei", "mbti-jp", "power") if SHARED.exists() else ("mbti-ei", "mbti-jp")
    c.sets = replace(c.sets, sets=names, calib_size=6, calib_record=6, test_size_mbti=3, test_size_ai=3)
    c.analysis = replace(c.analysis, analysis_items=3, capability_texts=3, capability_items=3)
    c.headline = replace(c.headline, matched_damages=(0.002,))  # within reach of the tiny random model's dials
    c.nulls = replace(c.nulls, curve_draws=2, matched_draws=3)  # more draws than the quick preset's: curve bands, a gate of 3
    return c


@pytest.fixture(scope="module")
def study_run(tiny_llama, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "run"
    res = run_study(tiny_llama, out, cfg=micro_config(), data_root=SHARED if SHARED.exists() else None, progress=False)
    return out, res


def test_study_writes_results_report_and_figures(study_run):
    out, res = study_run
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["sets"]) == ({"mbti-ei", "mbti-jp", "power"} if SHARED.exists() else {"mbti-ei", "mbti-jp"})
    for name, s in saved["sets"].items():
        conds = {r["condition"] for r in s["conditions"]}
        assert {"dense", "prompt", "rag", "random-mask", "wanda", "contrastive-wanda", "contrastive-sparse"} <= conds, name
        for r in s["conditions"]:
            assert r["n"] == s["n_test"] and 0 <= r["accuracy"] <= 1
        assert {c["condition"] for c in s["contrasts"]} >= {"prompt", "rag", "wanda", "contrastive-wanda"}
        for c in s["contrasts"]:  # every mask and prompt contrast at a stated damage
            if c["condition"] in ("wanda", "contrastive-wanda", "contrastive-sparse", "prompt"):
                assert c["damage_kl"] > 0
        assert set(s["answer_tokens"]) == set(s["poles"])
        pr = s["probes"]
        assert len(pr["layers"]) == 2 and {"bag_of_words", "embedding"} <= set(pr)
        assert all(isinstance(r["informative"], bool) for r in pr["layers"])
        sim = s["similarity"]
        assert len(sim["layers"]) == 2 and all(0 < r["p_value"] <= 1 for r in sim["layers"])
        assert "cosine_centered" not in sim["layers"][0]
        assert set(s["neutral_decoding"]) == {"contrastive-wanda masks", "persona prompts", "two random masks (reference)"}
        assert all(len(d["layers"]) == 2 for d in s["neutral_decoding"].values())
    ref = [s["neutral_decoding"]["two random masks (reference)"] for s in saved["sets"].values()]
    assert all(r == ref[0] for r in ref)  # set-independent: decoded once
    a = saved["analysis"]
    assert a["set"] == "mbti-ei" and a["removal"]["rows"] and a["removal"]["matched_count_per_row"]
    r = a["restore"]
    assert (r["rows"] != []) == r["gate"]["passed"] and (r["skipped"] is None) == r["gate"]["passed"]
    n_null = max(micro_config().nulls.curve_draws, micro_config().nulls.matched_draws)
    assert r["gate"]["null_draws"] == n_null and "null_test" in r["gate"]["test"]  # gated by the null, not by CI > 0
    an = micro_config().analysis
    assert len(a["sparsity_sweep"]["rows"]) == len(an.sweep_sparsities) and len(a["calibration_sweep"]["rows"]) == len(an.sweep_calib_sizes)
    assert {c["condition"] for c in a["capability"]} >= {"dense", "random mask"}
    report = (out / "REPORT.md").read_text()
    assert "## Conclusions" in report and "## Analyses" in report
    assert "persona-specific" in report and "label-swapped" in report and "## Headline: effect against damage" in report
    assert "### Matched-damage table" in report and "paired differences" in report
    assert saved["schema"] == 2 and saved["meta"]["study_config"]["preset"] == "quick"
    ed = saved["sets"]["mbti-ei"]["headline"]
    assert set(ed["curves"]) == {"soft-mask", "steering"}  # the quick grids: no point for the other dials
    for pts in ed["curves"].values():
        grid = [p for p in pts if not p.get("matched_target")]
        assert len(grid) == 2 and all(len(p["null_shifts"]) == 2 and p["damage_kl"] >= 0 for p in pts)
        assert [p["strength"] for p in pts] == sorted(p["strength"] for p in pts)
    assert {"prompt", "rag", "sft"} <= set(ed["points"]) and ed["points"]["sft"]["damage_kl"] > 0
    assert [(r["method"], r["target_kl"]) for r in ed["matched"]] == [("steering", 0.002), ("soft-mask", 0.002)]
    for r in ed["matched"]:
        assert set(r["fit_texts"]).isdisjoint(r["damage_texts"]) and r["damage_texts"] == ed["damage"]["damage_texts"]
        assert r["reached"], r  # the real pair and its damage-matched nulls on every held-out item
        if r["reached"]:
            assert r["n"] == ed["n_items_table"] == saved["sets"]["mbti-ei"]["n_test"] == r["null_items"]
            assert len(r["null_shifts"]) == len(r["null_damage_kl"]) == r["null_draws"] >= 2
            assert r["vs_prompt"]["n"] == r["n"] and "p_adjusted" in r["vs_prompt"]
            assert {"p_value", "p_adjusted", "detectable_shift", "damage_kl_ci95", "null_mean_t"} <= set(r)
            assert r["strength_matched_null"]["null_items"] == ed["n_items_curve"]
        else:
            assert len(r["curve_damage_range"]) == 2
    if ed["matched"][0]["reached"] and ed["matched"][1]["reached"]:
        assert "vs_steering" in ed["matched"][1]
    seeds = [r["null_seed"] for r in ed["matched"] if r["reached"]]
    assert len(set(seeds)) == len(seeds) and all(r["null_swap"] == "balanced" for r in ed["matched"] if r["reached"])
    for r in ed["matched"]:
        if r["reached"]:
            assert r["z"] == pytest.approx(r["shift"] / (sum(x * x for x in r["null_shifts"]) / r["null_draws"]) ** 0.5)
    assert [(t["method"], t["target_kl"]) for t in saved["primary"]] == [
        (r["method"], r["target_kl"]) for r in ed["matched"] if r["reached"]]
    assert all(t["sets"] == ["mbti-ei"] and 0 <= t["p_adjusted"] <= 1 for t in saved["primary"])
    cal = saved["calibration"]
    assert all(c["placebos"] == sum(r["null_draws"] for r in ed["matched"] if r["reached"] and r["method"] == m)
               for m, c in cal.items())
    assert "## Primary family" in report and "## Calibration" in report
    assert "headline" not in saved["sets"]["mbti-jp"]
    assert (out / "figures" / "effect_damage.png").is_file()
    assert "informative" in report and "Split-half reliability" in report and "not evidence" in report
    if SHARED.exists():
        assert "## AI persona tasks" in report and "54.0" in report  # the paper's number, read from the data README
    for name in FIGURES:  # the 16 types, the atlas and stability (skipped by the quick preset): optional
        if name not in (*OPTIONAL, "stability"):
            assert (out / "figures" / f"{name}.png").stat().st_size > 1000


def test_study_resumes_from_cache(study_run, tiny_llama):
    out, res = study_run
    before = sorted(p.name for p in (out / "cache").iterdir())
    again = run_study(tiny_llama, out, cfg=micro_config(), data_root=SHARED if SHARED.exists() else None, progress=False)
    assert sorted(p.name for p in (out / "cache").iterdir()) == before  # nothing recomputed
    assert again.sets["mbti-ei"].conditions == res.sets["mbti-ei"].conditions


def test_foreign_output_folder_is_refused(study_run, tiny_llama, tmp_path):
    out, _ = study_run
    other = micro_config()
    other.masks = replace(other.masks, sparsity=0.3)
    with pytest.raises(StudyError, match="different study"):
        run_study(tiny_llama, out, cfg=other, progress=False)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(StudyError, match="not empty"):
        run_study(tiny_llama, tmp_path / "x", cfg=micro_config(), progress=False)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputError):
        run_study(tiny_llama, tmp_path / "a_file" / "x", cfg=micro_config(), progress=False)


def test_bad_data_root(tiny_llama, tmp_path):
    (tmp_path / "ai_persona" / "power").mkdir(parents=True)
    with pytest.raises(StudyError, match="expected layout"):
        run_study(tiny_llama, tmp_path / "out", cfg=micro_config(), data_root=tmp_path, progress=False)
    assert not (tmp_path / "out").exists()


def test_study_does_not_import_the_cli():
    import subprocess
    import sys

    code = "import sys, persona_circuits.study; print('persona_circuits.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
