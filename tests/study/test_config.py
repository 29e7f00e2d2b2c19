import json

import pytest

from persona_circuits.study import StudyConfig, StudyError



def test_config_sections_round_trip_and_presets():
    full, quick = StudyConfig.full(), StudyConfig.quick_preset()
    assert full.analysis.similarity_permutations > quick.analysis.similarity_permutations
    assert full.nulls.matched_draws >= 10 and full.damage.damage_texts >= 24 and quick.quick and not full.quick
    assert StudyConfig.from_dict(json.loads(json.dumps(full.to_dict()))) == full
    assert full.get("nulls.matched_draws") == full.nulls.matched_draws
    with pytest.raises(StudyError, match="unknown study settings in nulls: draws"):
        StudyConfig.from_dict({**full.to_dict(), "nulls": {"draws": 3}})
