"""The results contract: loading, upgrading, round trips, type checks, the shared constants."""

from __future__ import annotations

import copy
import json
import warnings

import pytest

import persona_circuits.results as r
from persona_circuits.results import Contrast, ResultsError, StudyResults, load_results, upgrade

from ..results_fixtures import GEMMA, SMOLLM, raw, v2


def _leaves(x, path=()):
    """Every (path, value) leaf of a JSON tree."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, (*path, i))
    else:
        yield path, x


def _drop_none(x):
    if isinstance(x, dict):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_drop_none(v) for v in x]
    return x


@pytest.mark.parametrize("path", [SMOLLM, GEMMA])
def test_committed_version_1_files_load_upgraded(path):
    res = load_results(path)
    assert isinstance(res, StudyResults) and res.schema == r.SCHEMA_VERSION == 2
    assert all(s.headline is not None for s in res.sets.values())
    assert res.to_dict()["schema"] == 2 and "effect_damage" not in json.dumps(res.to_dict())
    c = res.sets["mbti-ei"].contrasts[0]
    assert c.moved == raw(path)["sets"]["mbti-ei"]["contrasts"][0]["accuracy"]  # one word for the share moved


@pytest.mark.parametrize("path", [SMOLLM, GEMMA])
def test_upgrade_keeps_every_value_and_renames_only(path):
    old, new = raw(path), upgrade(raw(path))
    rename = {"effect_damage": "headline"}
    moved = {"accuracy": "moved", "accuracy_ci95": "moved_ci95"}
    new_leaves = dict(_leaves(new))
    for p, v in _leaves(old):
        q = tuple(rename.get(k, k) for k in p)
        if q not in new_leaves:  # a contrast's share of items moved
            q = tuple(moved.get(k, k) if i == len(p) - 1 or (i == len(p) - 2 and isinstance(p[-1], int)) else k
                      for i, k in enumerate(q))
        assert new_leaves[q] == v, p
    assert len(new_leaves) == len(list(_leaves(old))) + 1  # + "schema"
    assert raw(path) == old  # the input is not modified


@pytest.mark.parametrize("source", ["v1", "v2"])
def test_round_trip(source):
    d = raw() if source == "v1" else v2()
    res = load_results(d)
    assert StudyResults.from_dict(res.to_dict()) == res
    assert res.to_dict() == _drop_none(upgrade(d))
    assert load_results(json.loads(json.dumps(res.to_dict()))) == res


def test_every_record_round_trips_and_keeps_unknown_keys():
    d = v2()
    d["sets"]["power"]["headline"]["matched"][0]["future_field"] = {"a": 1}
    d["future_top"] = [1, 2]
    res = load_results(d)
    row = res.sets["power"].headline.matched[0]
    assert row.extra == {"future_field": {"a": 1}} and res.extra == {"future_top": [1, 2]}
    assert res.to_dict()["sets"]["power"]["headline"]["matched"][0]["future_field"] == {"a": 1}
    assert row.null_on_same_items and row.tested_shift == row.shift and row.null_items == row.n
    assert row.strength_matched_null.null_items == 12 and row.specific == row.persona_specific_adjusted


def _extras(rec, path="results"):
    """Every record under ``rec`` with keys the contract does not type (path, keys)."""
    if isinstance(rec, r.Record):
        if rec.extra:
            yield path, sorted(rec.extra)
        for f in rec.__dataclass_fields__:
            if f != "extra":
                yield from _extras(getattr(rec, f), f"{path}.{f}")
    elif isinstance(rec, (list, tuple)):
        for i, x in enumerate(rec):
            yield from _extras(x, f"{path}[{i}]")
    elif isinstance(rec, dict):
        for k, x in rec.items():
            yield from _extras(x, f"{path}.{k}")


def test_version_2_shapes_are_typed():
    """Every key the rebuilt study writes (as the fixture builds it: study/matched.py, verdicts.py, paper_table.py,
    types.py, atlas.py) has a typed field: nothing lands in ``extra`` (but the run's settings, kept there by design)."""
    res = load_results(v2())
    assert [x for x in _extras(res) if not x[0].startswith("results.meta")] == []
    row = next(x for x in res.sets["mbti-ei"].headline.reached() if x.method == "steering")
    assert row.null_kind == "label-swapped" and row.damage_matched and row.null_center == "zero"
    assert row.null_design == res.sets["mbti-ei"].headline.null_design == res.null_design == r.DAMAGE_MATCHED
    assert row.random_direction_null.null_kind == "random-direction" and row.random_direction_null.p_value is not None
    assert row.estimated_center.null_threshold > row.null_threshold == row.detectable_shift
    assert res.null_symmetry.center_used == "zero" and res.null_symmetry.n_rows == next(
        m for m in res.multiple_comparisons if m.family.startswith("matched-damage")).n_tests
    assert res.primary and res.calibration and res.multiple_comparisons[0].n_tests == len(res.primary)
    head = res.sets["mbti-ei"].headline
    assert set(head.damage.fit_texts).isdisjoint(head.damage.damage_texts) and head.damage.tolerance == 0.25
    paper = res.sets["power"].paper_table
    assert [x.sparsity for x in paper if x.condition == "random-mask"] == [0.3, 0.5]
    assert {x.condition: x.sparsity for x in paper if x.null_accuracies} == {"wanda": 0.5, "contrastive-wanda": 0.3,
                                                                              "contrastive-sparse": 0.3}
    assert [t.method for t in res.types] == ["soft-mask", "steering"] and res.types[1].layer == 15
    t = res.types[0]
    assert len(t.rows) == 16 and len(t.tests()) == 32 and t.rows[0].contrasts[0].detectable_shift is not None
    for row in t.rows:  # a type and its opposite: the same measurement, the same verdict
        opp = t.row(r.types_atlas.opposite_type(row.type))
        assert [t.verdict(row, c) for c in row.contrasts] == [t.verdict(opp, c) for c in opp.contrasts]
    a = res.atlas
    assert a.pairs[0].shared is True and a.family("atlas overlap").n_tests == len(a.pairs) and a.conclusions
    assert a.overlap("all").by == "all" and a.steering.layer == 2


def test_a_contrast_that_calls_its_share_moved_accuracy_is_read_as_moved():
    """The rename is the upgrade's, in every version (here a schema-2 file whose analysis set wrote ``accuracy``);
    the record itself reads the current names only."""
    old = {"condition": "full masks", "n": 2, "shift": 0.1, "shift_ci95": [0.0, 0.2], "accuracy": 0.5,
           "accuracy_ci95": [0.0, 1.0]}
    current = v2()
    assert upgrade(current) is current  # nothing to change: the same dict
    d = copy.deepcopy(current)
    d["analysis"]["restore"]["full_contrast"] = dict(old)
    d["analysis"]["removal"]["rows"][0]["shift_vs_dense"]["wanda-pooled"] = dict(old)
    res = load_results(d)
    for c in (res.analysis.restore.full_contrast, res.analysis.removal.rows[0].shift_vs_dense["wanda-pooled"]):
        assert c.moved == 0.5 and c.moved_ci95 == (0.0, 1.0) and c.extra == {}
    assert d["analysis"]["restore"]["full_contrast"] == old  # the input is not modified
    assert r.Contrast.from_dict(old).moved is None and r.Contrast.from_dict(old).extra == {"accuracy": 0.5,
                                                                                          "accuracy_ci95": [0.0, 1.0]}


def test_the_schema_version_lives_in_the_upgrade():
    from persona_circuits.results.upgrade import SCHEMA_VERSION

    assert r.SCHEMA_VERSION == SCHEMA_VERSION == r.StudyResults.__dataclass_fields__["schema"].default
    with pytest.raises(ResultsError, match="must be an integer"):
        load_results({"schema": "2", "sets": {}})
    with pytest.raises(ResultsError, match="expected an object"):
        upgrade([1, 2])


def test_types_is_a_list_and_version_1_has_none():
    assert load_results(SMOLLM).types is None and load_results(SMOLLM).null_symmetry is None
    d = v2()
    d["types"] = d["types"][0]  # one result, not a list of them
    with pytest.raises(ResultsError, match="types: expected a list"):
        load_results(d)


def test_version_1_rows_test_the_curve_items():
    row = load_results(SMOLLM).sets["mbti-sn"].headline.matched[5]  # soft-mask at KL 0.3, persona-specific
    assert not row.null_on_same_items and row.tested_shift == row.curve_shift != row.shift
    assert row.persona_specific and row.tested_shift > row.null_threshold
    assert row.damage_kl_ci95 is None and row.p_adjusted is None  # not measured: nothing invented
    assert row.null_design == r.STRENGTH_MATCHED  # the null at the real pair's strength: a field of the row
    unreached = next(x for h in load_results(SMOLLM).headlines().values() for x in h.matched if not x.reached)
    assert unreached.null_design is None


def test_missing_or_wrong_values_name_their_path():
    d = raw()
    del d["sets"]["power"]["effect_damage"]["matched"][0]["target_kl"]
    with pytest.raises(ResultsError, match=r"sets\.power\.headline\.matched\[0\]: missing target_kl"):
        load_results(d)
    d = raw()
    d["sets"]["power"]["contrasts"][1]["shift"] = "large"
    with pytest.raises(ResultsError, match=r"sets\.power\.contrasts\[1\]\.shift: expected a number"):
        load_results(d)
    d = raw()
    d["sets"]["power"]["n_test"] = True
    with pytest.raises(ResultsError, match="expected an integer"):
        load_results(d)
    with pytest.raises(ResultsError, match="cannot read"):
        load_results(SMOLLM.parent / "missing.json")


def test_newer_schema_loads_with_a_warning():
    d = upgrade(raw())
    d["schema"] = 3
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = load_results(d)
    assert res.schema == 3 and any("newer" in str(x.message) for x in w)


def test_sets_in_study_order_and_accessors():
    res = load_results(SMOLLM)
    assert list(res.sets) == ["mbti-ei", "mbti-jp", "mbti-sn", "mbti-tf", "power", "wealth", "hallucination"]
    assert list(res.ai_sets()) == ["power", "wealth", "hallucination"]
    s = res.sets["power"]
    assert s.row("random-mask", "matching").accuracy == 0.58 and s.row("nothing", "matching") is None
    assert s.contrast("prompt").condition == "prompt" and res.analysis_set_name == "mbti-ei"
    assert load_results(res) is res


def test_write_results(tmp_path):
    res = load_results(GEMMA)
    r.write_results(res, tmp_path / "results.json")
    back = json.loads((tmp_path / "results.json").read_text())
    assert back["schema"] == 2 and load_results(back) == res


def test_constants_agree_with_the_study_and_the_mask_builders():
    from persona_circuits.masks import DEFAULT_SPARSITY
    from persona_circuits.masks.statistics import DEFAULT_TEXT_STAT
    from persona_circuits.study import config as plan

    assert r.AI_TASKS == plan.AI_TASKS and r.MAIN_METHODS == plan.MAIN_METHODS
    assert r.RELEASED_SPARSITY == {m: DEFAULT_SPARSITY[m] for m in r.MAIN_METHODS}
    assert r.DEFAULT_TEXT_STAT == DEFAULT_TEXT_STAT


def test_paper_numbers_are_read_from_the_data_readme(tmp_path):
    assert r.paper_numbers(None).ai_persona == {} and r.paper_numbers(None).mbti_difference_rate["mbti-ei"] == 1.34
    (tmp_path / "README.md").write_text("| method | power | wealth |\n|---|---|---|\n| contrastive Wanda | 54.0 | 66.0 |\n"
                                        "| RAG | 45.5 | x |\n\ntext\n")
    assert r.paper_numbers(tmp_path).ai_persona == {"power": {"contrastive-wanda": 54.0}, "wealth": {"contrastive-wanda": 66.0}}


def test_a_stage_draw_reads_an_older_cache_entry_and_round_trips():
    """The matched stages' cache held ``StrengthFit.to_dict()`` of a dataclass (``None`` written out): it reads as
    the record, and the record's plain data reads back to the same record."""
    from persona_circuits.results import MatchedDraw, TypePairDraw

    old = {"target_kl": 0.3, "strength": None, "fit_damage_kl": 0.9, "reached": False, "history": [[1.0, 0.9]]}
    d = MatchedDraw.from_dict(old)
    assert d.strength is None and d.history == [(1.0, 0.9)] and d.shifts is None
    assert MatchedDraw.from_dict(d.to_dict()) == d and "strength" not in d.to_dict()
    t = TypePairDraw.from_dict({**old, "reached": True, "strength": 2.0, "shifts": {"mbti-ei": [0.1, -0.2]}})
    assert t.shifts["mbti-ei"] == [0.1, -0.2]
    with pytest.raises(ResultsError, match="shifts"):
        MatchedDraw.from_dict({**old, "shifts": {"mbti-ei": [0.1]}})  # a type pair's shifts are not a row's


def test_update_from_takes_the_fields_another_record_holds():
    from persona_circuits.results import MatchedRow, Shift

    row = MatchedRow(method="steering", target_kl=0.02, reached=True)
    row.update_from(Shift(n=3, shift=0.5, shift_ci95=(0.1, 0.9)))
    assert (row.n, row.shift, row.shift_ci95, row.moved) == (3, 0.5, (0.1, 0.9), None)
    with pytest.raises(ResultsError, match="condition"):
        row.update_from(Contrast(n=3, shift=0.5, shift_ci95=(0.1, 0.9), condition="prompt"))
