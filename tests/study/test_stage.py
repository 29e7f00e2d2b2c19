from dataclasses import replace

import pytest

from persona_circuits.study import StudyConfig



def test_a_stage_must_declare_every_setting_it_reads(tmp_path, tiny_llama):
    from persona_circuits.study.stage import stage
    from persona_circuits.study.state import Study

    calls = []

    @stage("probe-declared", settings=("nulls.curve_draws",))
    def declared(study, *, x: int) -> dict:
        calls.append(x)
        return {"v": study.cfg.nulls.curve_draws + x}

    @stage("probe-undeclared", settings=("nulls.curve_draws",))
    def undeclared(study, *, x: int) -> dict:
        return {"v": study.cfg.nulls.matched_draws}

    st = Study(tiny_llama, tmp_path, StudyConfig.quick_preset(), None, progress=False)
    assert declared(st, x=1) == {"v": st.cfg.nulls.curve_draws + 1} == declared(st, x=1) and calls == [1]
    declared(st, x=2)
    st.cfg.nulls = replace(st.cfg.nulls, matched_draws=99)  # not declared: the key does not change
    declared(st, x=1)
    assert calls == [1, 2]
    st.cfg.nulls = replace(st.cfg.nulls, curve_draws=5)  # declared: a new key
    assert declared(st, x=1) == {"v": 6} and calls == [1, 2, 1]
    with pytest.raises(KeyError, match="nulls.matched_draws"):
        undeclared(st, x=1)
