import json

import pytest

from persona_circuits.data import (bundled_personas, encode_pair, load_persona_set, pad_batches, render_prompt)
from persona_circuits.errors import DatasetError

from .conftest import shared_data


def test_bundled_mbti_sets_meet_the_data_card():
    names = bundled_personas()
    assert names == ["mbti-ei", "mbti-jp", "mbti-sn", "mbti-tf"]
    for n in names:
        ps = load_persona_set(n)
        assert len(ps.poles) == 2
        assert len(ps.calibration) >= 160 and len(ps.test) >= 80
        assert len(ps.calibration) + len(ps.test) >= 240
        qs = [it.question for it in ps.calibration + ps.test]
        assert len(set(qs)) == len(qs), f"{n}: duplicate questions"
        ids = [it.id for it in ps.calibration + ps.test]
        assert len(set(ids)) == len(ids)
        for it in ps.calibration + ps.test:
            ratio = len(it.answer_a) / len(it.answer_b)
            assert 0.8 <= ratio <= 1.25, f"{n} {it.id}: answers differ in length ({ratio:.2f})"


def test_paper_csv_layout_loads_test_ab_with_matching_as_pole_a():
    ps = load_persona_set(shared_data("ai_persona", "power"))
    assert ps.pole_names == ["matching", "not_matching"]
    assert len(ps.calibration) == 642 and len(ps.test) == 200
    # first test_ab row: matching = A = "Absolutely."
    assert ps.test[0].answer_a == "Absolutely."
    assert ps.test[1].answer_a.startswith("Certainly.")  # matching = B there


def test_anthropic_jsonl_loads_and_splits_deterministically():
    path = shared_data("anthropic_persona", "narcissism.jsonl")
    a, b = load_persona_set(path), load_persona_set(path)
    assert len(a.calibration) == 800 and len(a.test) == 200
    assert [i.id for i in a.test] == [i.id for i in b.test]
    assert {i.answer_a for i in a.calibration} <= {"Yes", "No"}


def test_own_format_roundtrip(tmp_path):
    (tmp_path / "persona.json").write_text(json.dumps({"name": "x", "poles": [{"name": "p"}, {"name": "q"}]}))
    rows = [{"id": f"i{i}", "question": f"q{i}?", "answer_a": "yes", "answer_b": "no",
             "split": "test" if i % 3 == 0 else "calibration"} for i in range(9)]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ps = load_persona_set(tmp_path)
    assert ps.name == "x" and len(ps.test) == 3 and len(ps.calibration) == 6
    assert ps.calibration_pairs("q")[0] == ("q1?", "no")
    assert ps.content_hash() == load_persona_set(tmp_path).content_hash()


@pytest.mark.parametrize("case", ["unknown", "empty", "missing_column", "bad_letter", "bad_json", "no_rows"])
def test_bad_datasets_raise_dataset_error(tmp_path, case):
    d = tmp_path / "ds"
    d.mkdir()
    if case == "unknown":
        src = "no-such-persona"
    elif case == "empty":
        (d / "train.csv").write_text("")
        src = d
    elif case == "missing_column":
        (d / "train.csv").write_text("question,matching\nq,a\n")
        src = d
    elif case == "bad_letter":
        (d / "train.csv").write_text("question,matching,not_matching\nq,a,b\n")
        (d / "test_ab.csv").write_text("question,A,B,matching\nq,a,b,C\n")
        src = d
    elif case == "bad_json":
        src = tmp_path / "x.jsonl"
        src.write_text('{"question": "q", "answer_matching_behavior": " Yes"}\n{not json\n')
    else:
        (d / "train.csv").write_text("question,matching,not_matching\n")
        src = d
    with pytest.raises(DatasetError) as e:
        load_persona_set(src)
    assert str(e.value)


def test_encode_pair_marks_exactly_the_answer_tokens(tiny_llama):
    tok = tiny_llama.tokenizer
    e = encode_pair(tok, "How are you?", "Fine, thanks for asking.")
    assert tok.decode(e.ids[e.answer_start:]) == "Fine, thanks for asking."
    prompt = render_prompt(tok, "How are you?")
    assert tok.decode(e.ids[: e.answer_start]) == prompt
    assert "<|im_start|>user" in prompt and prompt.rstrip().endswith("assistant")


def test_pad_batches_right_pads_and_masks():
    from persona_circuits.data import EncodedText

    enc = [EncodedText([1, 2, 3, 4], 2), EncodedText([5, 6], 1), EncodedText([7, 8, 9], 3 - 1)]
    (b,) = pad_batches(enc, pad_id=0, batch_size=8)
    assert b.index == [1, 2, 0]
    assert b.input_ids.tolist() == [[5, 6, 0, 0], [7, 8, 9, 0], [1, 2, 3, 4]]
    assert b.attention_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert b.answer_mask.tolist() == [[False, True, False, False], [False, False, True, False], [False, False, True, True]]
