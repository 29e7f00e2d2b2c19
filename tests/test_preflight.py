"""analyses/preflight.py: its config runs every stage's code path (an AI task, every matched method, curve bands)."""

from persona_circuits.study import StudyConfig


def test_preflight_covers_what_the_quick_preset_leaves_out(analysis_script):
    mod = analysis_script("preflight")
    cfg, quick, full = mod.config(), StudyConfig.quick_preset(), StudyConfig.full()
    assert "power" in cfg.sets.sets and "power" not in quick.sets.sets  # the paper table's path
    assert cfg.headline.matched_methods == full.headline.matched_methods
    assert cfg.nulls.curve_draws == cfg.nulls.matched_draws == 2 and cfg.damage.damage_texts == 8
    assert cfg.quick and cfg.sets.test_size_mbti == quick.sets.test_size_mbti  # otherwise the quick sizes
