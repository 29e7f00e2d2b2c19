import argparse

import pytest

from persona_circuits.cli.reproduce import config_from_args, settle_sets

from ..conftest import SHARED


def _args(quick: bool, sets: str | None):
    return argparse.Namespace(quick=quick, sets=sets, seed=0, batch_size=16)


@pytest.mark.parametrize("with_data", [False, True])
def test_quick_without_sets_is_mbti_ei_with_or_without_data(with_data, capsys):
    if with_data and not SHARED.exists():
        pytest.skip("needs ../shared/data")
    args = _args(True, None)
    cfg, sets = settle_sets(config_from_args(args), args, SHARED if with_data else None)
    assert [s.name for s in sets] == ["mbti-ei"] and cfg.headline.curve_sets == ("mbti-ei",)
    assert cfg.sets.analysis_set == "mbti-ei" and capsys.readouterr().err == ""


@pytest.mark.skipif(not (SHARED / "anthropic_persona" / "narcissism.jsonl").is_file(), reason="needs ../shared/data")
def test_quick_with_named_sets_gives_every_set_its_headline():
    args = _args(True, f"mbti-ei,{SHARED / 'anthropic_persona' / 'narcissism.jsonl'}")
    cfg, sets = settle_sets(config_from_args(args), args, None)
    assert [s.name for s in sets] == ["mbti-ei", "narcissism"]
    assert cfg.headline.curve_sets == ("mbti-ei", "narcissism")


def test_full_study_with_named_sets_keeps_headline_on_all():
    args = _args(False, "mbti-sn,mbti-tf")
    cfg, _ = settle_sets(config_from_args(args), args, None)
    assert cfg.headline.curve_sets == ("*",) and cfg.sets.analysis_set == "mbti-sn"


def test_verdicts_command_recomputes_verdicts_in_place_and_refuses_other_files(tmp_path, capsys):
    import json

    from persona_circuits.cli import main

    from ..results_fixtures import v2

    d = v2()
    for s in d["sets"].values():
        for r in s["headline"]["matched"]:
            r.pop("detectable_shift_adjusted", None)
            if r.get("p_value") is not None:
                r["persona_specific_adjusted"] = not r["persona_specific_adjusted"]  # stale verdicts
    path = tmp_path / "results.json"
    path.write_text(json.dumps(d))
    assert main(["verdicts", str(path)]) == 0
    first = path.read_bytes()
    out = json.loads(first)
    rows = [r for s in out["sets"].values() for r in s["headline"]["matched"] if r.get("p_value") is not None]
    assert rows and all(r["detectable_shift_adjusted"] > r["detectable_shift"] for r in rows)
    assert all(r["persona_specific_adjusted"] == bool(r["p_adjusted"] < 0.05 and r["shift_ci95"][0] > 0) for r in rows)
    assert out["meta"]["verdicts_command"].startswith("persona-circuits verdicts ")
    assert main(["verdicts", str(path)]) == 0 and path.read_bytes() == first  # the same input, the same bytes
    bad = tmp_path / "v1.json"
    bad.write_text(json.dumps({"sets": {}}))
    capsys.readouterr()
    assert main(["verdicts", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not the results of a schema-2 study" in err[0] and bad.read_text() == '{"sets": {}}'
