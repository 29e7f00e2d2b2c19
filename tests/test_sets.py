"""Persona sets given by name, path or NAME=PATH (data.resolve_set), their identity, one-token answers."""

import json
import os

import pytest
import torch

from persona_circuits.data import (PERSONAS_DIR, ChoiceItem, PersonaSet, Pole, parse_set_specs, resolve_set)
from persona_circuits.errors import DatasetError, PersonaCircuitsError

from .conftest import shared_data


def test_a_bundled_set_by_name_and_by_any_path_is_the_same_set(monkeypatch):
    by_name = resolve_set("mbti-ei")
    monkeypatch.chdir(PERSONAS_DIR.parent)
    for spec in ("personas/mbti-ei", str(PERSONAS_DIR / "mbti-ei"), "personas/mbti-ei/items.jsonl",
                 os.path.join("personas", "..", "personas", "mbti-ei")):
        ps = resolve_set(spec)
        assert ps == by_name, spec  # same name, poles, items, source and meta
        assert ps.identity_hash() == by_name.identity_hash() and ps.content_hash() == by_name.content_hash()


def test_content_hash_keeps_its_value_and_identity_covers_the_held_out_items():
    ps = resolve_set("mbti-ei")
    assert ps.content_hash() == "4ac9d48f1859365d"  # the value existing masks and signatures record
    assert ps.subset(8).content_hash() == "00d70f3163c62172"
    changed = ps.subset()
    changed.test = [ChoiceItem(ps.test[0].id, ps.test[0].question, ps.test[0].answer_b, ps.test[0].answer_a)] + ps.test[1:]
    assert changed.content_hash() == ps.content_hash()
    assert changed.identity_hash() != ps.identity_hash()
    assert ps.subset(test_size=10).identity_hash() != ps.identity_hash()
    described = ps.subset()
    described.poles = (Pole(ps.poles[0].name, "someone else"), ps.poles[1])  # the persona prompt changes
    assert described.identity_hash() != ps.identity_hash()


def test_name_equals_path_renames_the_set():
    ps = resolve_set(f"ei={PERSONAS_DIR / 'mbti-ei'}")
    assert ps.name == "ei" and ps.pole_names == ["extravert", "introvert"]
    assert ps.identity_hash() != resolve_set("mbti-ei").identity_hash()  # the name is part of the identity
    assert resolve_set("ei=mbti-ei") == ps


def test_names_under_a_data_root():
    root = shared_data()
    power = resolve_set("power", data_root=root)
    assert power == resolve_set(str(root / "ai_persona" / "power"))
    assert power.meta["format"] == "paper-csv" and power.meta["one_token_answers"] is False
    narc = resolve_set("narc=narcissism", data_root=root)
    assert narc.name == "narc" and narc.meta == {"format": "anthropic-jsonl", "one_token_answers": True}
    assert narc.pole_names == ["narcissism", "not-narcissism"]
    assert "high in narcissism" in narc.poles[0].description and "low in narcissism" in narc.poles[1].description


def _write_own(folder, items_name="items.jsonl", persona=True):
    folder.mkdir(parents=True, exist_ok=True)
    if persona:
        (folder / "persona.json").write_text(json.dumps({"name": "x", "poles": [{"name": "p"}, {"name": "q"}]}))
    rows = [{"id": f"i{i}", "question": f"q{i}?", "answer_a": "Yes", "answer_b": "No",
             "split": "test" if i % 3 == 0 else "calibration"} for i in range(6)]
    (folder / items_name).write_text("\n".join(json.dumps(r) for r in rows))
    return folder / items_name


def test_a_jsonl_file_is_read_in_the_format_its_items_have(tmp_path):
    f = _write_own(tmp_path / "own", "other.jsonl")
    ps = resolve_set(str(f))
    assert ps.name == "x" and len(ps.calibration) == 4 and ps.meta["format"] == "package"
    assert ps.meta["one_token_answers"] is True
    anth = tmp_path / "trait.jsonl"
    anth.write_text("\n".join(json.dumps({"question": f"Q{i}", "answer_matching_behavior": " Yes",
                                          "answer_not_matching_behavior": " No"}) for i in range(10)))
    assert resolve_set(str(anth)).meta["format"] == "anthropic-jsonl"


@pytest.mark.parametrize("spec,needle", [
    ("no-such-set", "unknown persona set(s) no-such-set"),
    ("power", "--data-root"),
    ("bad name=mbti-ei", "NAME=PATH"),
    ("{tmp}/loose/items.jsonl", "persona.json"),
    ("{tmp}/weird.jsonl", "neither Anthropic's format"),
    ("{tmp}/empty_dir", "neither persona.json"),
    ("{tmp}/broken", "cannot read it"),
])
def test_bad_specs_raise_dataset_errors_naming_the_problem(tmp_path, spec, needle):
    _write_own(tmp_path / "loose", persona=False)
    (tmp_path / "weird.jsonl").write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "persona.json").write_text(json.dumps({"name": "b", "poles": [{"name": "p"}]}))  # no items
    with pytest.raises(DatasetError) as e:
        resolve_set(spec.format(tmp=tmp_path))
    assert needle in str(e.value)
    assert isinstance(e.value, PersonaCircuitsError)


def test_parse_set_specs_splits_and_refuses_duplicate_names():
    assert parse_set_specs(" mbti-ei, power ,X=/a/b.jsonl,") == ["mbti-ei", "power", "X=/a/b.jsonl"]
    for text, needle in (("mbti-ei,mbti-ei", "'mbti-ei'"), ("a=/x/one,a=/y/two", "'a'"),
                         ("/d/narcissism.jsonl,narcissism", "'narcissism'"), (" , ", "no persona set")):
        with pytest.raises(DatasetError, match=needle):
            parse_set_specs(text)


def test_a_set_by_path_and_by_name_gives_the_same_masks(tiny_llama):
    from persona_circuits.masks.registry import build_masks
    from persona_circuits.masks.statistics import record_persona_signatures

    masks = []
    for spec in ("mbti-ei", str(PERSONAS_DIR / "mbti-ei" / "items.jsonl")):
        ps = resolve_set(spec).subset(4, 2)
        sigs = record_persona_signatures(tiny_llama, ps, batch_size=4)
        masks.append(build_masks(tiny_llama, "contrastive-wanda", sigs, sparsity=0.3))
    for pole in masks[0]:
        assert masks[0][pole].config == masks[1][pole].config
        assert all(torch.equal(masks[0][pole].masks[k], masks[1][pole].masks[k]) for k in masks[0][pole].masks)


def test_one_token_answers_have_identical_predict_statistics_in_both_poles(tiny_llama):
    """Why one-token answers are recorded at the ``answer`` positions: the only ``predict`` position is the last
    prompt token, which both poles' texts of an item share, so the poles' statistics and masks coincide."""
    from persona_circuits.masks.registry import build_masks
    from persona_circuits.masks.scoring import contrastive_z
    from persona_circuits.masks.statistics import persona_signatures, record_persona_per_text

    items = [ChoiceItem(f"i{i}", f"Is the following statement something you would say?\n\"I like plan {i}\"",
                        "Yes" if i % 2 else "No", "No" if i % 2 else "Yes") for i in range(8)]
    ps = PersonaSet("yn", (Pole("trait"), Pole("not-trait")), items, items[:2])
    for tokens in ("predict", "answer"):
        st = record_persona_per_text(tiny_llama, ps, tokens=tokens, batch_size=4)
        assert st["trait"].n_tok.tolist() == [1] * 8
        sigs = persona_signatures(ps, st)
        z = torch.stack([contrastive_z(sigs["trait"], sigs["not-trait"], n).abs().max() for n in st["trait"].per_text])
        if tokens == "predict":
            assert all(torch.equal(st["trait"].per_text[n], st["not-trait"].per_text[n]) for n in st["trait"].per_text)
            assert float(z.max()) == 0.0
            m = build_masks(tiny_llama, "contrastive-wanda", sigs, sparsity=0.3)
            assert all(torch.equal(m["trait"].masks[k], m["not-trait"].masks[k]) for k in m["trait"].masks)
        else:
            assert float(z.max()) > 0.1  # the answer token read in its context differs between the poles
