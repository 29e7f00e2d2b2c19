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


def test_settings_are_declared_by_typed_paths():
    """``SETTINGS.nulls.swap`` is the dotted path ``"nulls.swap"`` (what a cache key holds), checked against the
    config's fields where it is written; every declared setting of every stage names a real setting."""
    import persona_circuits.study.run  # noqa: F401 (declares every stage)
    from persona_circuits.study.config import SETTINGS, StudyConfig
    from persona_circuits.study.stage import STAGES

    assert str(SETTINGS.nulls.swap) == "nulls.swap" and str(SETTINGS.masks) == "masks"
    with pytest.raises(AttributeError, match="no study setting 'nulls.swapp'"):
        SETTINGS.nulls.swapp  # noqa: B018
    with pytest.raises(AttributeError):
        SETTINGS.seed.anything  # noqa: B018 (a leaf has no settings below it)
    cfg = StudyConfig()
    assert cfg.get(SETTINGS.nulls.matched_draws) == cfg.nulls.matched_draws
    declared = {s for _, settings in STAGES.values() for s in settings}
    assert declared and all(isinstance(s, str) for s in declared)
    for s in declared:
        cfg.get(s)  # a KeyError names a declared setting that does not exist


def test_a_stage_returns_its_records_computed_or_read_back(tmp_path, tiny_llama):
    """``result=``: the cache holds plain JSON, and the stage returns the same records whether it ran or was read
    back from the cache (and refuses cached data that does not fit its record)."""
    from persona_circuits.results import CurvePoint, ResultsError
    from persona_circuits.study.stage import stage
    from persona_circuits.study.state import Study

    calls = []

    @stage("probe-records", result=list[CurvePoint])
    def points(study, *, x: float) -> list[CurvePoint]:
        calls.append(x)
        return [CurvePoint(strength=x, n=3, shift=0.1 * x, shift_ci95=(0.0, 0.2 * x), damage_kl=0.01, null_shifts=[0.0])]

    st = Study(tiny_llama, tmp_path, StudyConfig.quick_preset(), None, progress=False)
    first, again = points(st, x=2.0), points(st, x=2.0)
    assert calls == [2.0] and isinstance(again[0], CurvePoint) and first == again
    assert again[0].shift_ci95 == (0.0, 0.4)  # an interval comes back as a tuple, as results.json reads it

    @stage("probe-bad-records", result=CurvePoint)
    def bad(study, *, x: float) -> dict:
        return {"strength": x}  # required fields missing

    with pytest.raises(ResultsError, match="missing"):
        bad(st, x=1.0)


def test_a_record_update_refuses_a_name_it_does_not_have():
    from persona_circuits.results import PairedDiff, ResultsError

    p = PairedDiff(diff=0.1, ci95=(0.0, 0.2), n=4, verdict="higher")
    assert p.update(p_adjusted=0.5) is p and p.p_adjusted == 0.5
    with pytest.raises(ResultsError, match="no field p_ajusted"):
        p.update(p_ajusted=0.5)


def test_a_torch_stage_returns_its_type_computed_or_read_back(tmp_path, tiny_llama):
    """``store="torch"`` with ``result=``: the cache holds ``to_store()`` (tensors in a dict), and the stage returns
    the type whether it ran or was read back (here :class:`ChoiceScores`, as the condition-scores stage)."""
    import torch

    from persona_circuits.measure.evaluation import ChoiceScores
    from persona_circuits.study.stage import stage
    from persona_circuits.study.state import Study

    calls = []

    @stage("probe-torch-scores", store="torch", result=ChoiceScores)
    def scores(study, *, n: int) -> ChoiceScores:
        calls.append(n)
        return ChoiceScores(torch.arange(2.0 * n).reshape(n, 2), torch.ones(n, 2))

    st = Study(tiny_llama, tmp_path, StudyConfig.quick_preset(), None, progress=False)
    first, again = scores(st, n=3), scores(st, n=3)
    assert calls == [3] and isinstance(again, ChoiceScores) and again.features is None
    assert torch.equal(first.logp, again.logp) and torch.equal(first.n_tokens, again.n_tokens)
    stored = next(tmp_path.rglob("probe-torch-scores-*.pt"))
    assert set(torch.load(stored, weights_only=False)) == {"logp", "n_tokens"}  # the layout older caches hold


def test_stored_scores_hold_their_own_values_only(tmp_path, tiny_llama):
    """Scores that are views of a large buffer (as the scoring path makes them) are stored as compact copies:
    ``torch.save`` of a view writes its whole storage, which bloated cache entries and checkpoints."""
    import torch

    from persona_circuits.measure.evaluation import ChoiceScores
    from persona_circuits.study.stage import stage
    from persona_circuits.study.state import Study

    buffer = torch.arange(200_000.0, dtype=torch.float64)

    @stage("probe-view-scores", store="torch", result=ChoiceScores)
    def scores(study, *, n: int) -> ChoiceScores:
        return ChoiceScores(buffer[: 2 * n].view(n, 2), buffer[2 * n: 4 * n].view(n, 2))

    st = Study(tiny_llama, tmp_path, StudyConfig.quick_preset(), None, progress=False)
    computed = scores(st, n=4)
    stored = next(tmp_path.rglob("probe-view-scores-*.pt"))
    assert stored.stat().st_size < 10_000  # the buffer alone is 1.6 MB
    again = Study(tiny_llama, tmp_path, StudyConfig.quick_preset(), None, progress=False)
    back = scores(again, n=4)
    assert torch.equal(back.logp, computed.logp) and torch.equal(back.n_tokens, buffer[8:16].view(4, 2))
