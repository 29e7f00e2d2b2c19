import argparse

import pytest

from persona_circuits.study.command import config_from_args, settle_sets

from ..conftest import SHARED


def _args(quick: bool, sets: str | None):
    return argparse.Namespace(quick=quick, sets=sets, seed=0, batch_size=16)


def test_quick_without_sets_keeps_the_headline_on_mbti_ei_and_drops_ai_tasks_without_data(capsys):
    args = _args(True, None)
    cfg, sets = settle_sets(config_from_args(args), args, None)
    assert [s.name for s in sets] == ["mbti-ei"] and cfg.headline.curve_sets == ("mbti-ei",)
    assert "AI-persona tasks are left out" in capsys.readouterr().err


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
