import json
import subprocess
import sys

import pytest

from persona_circuits.cli import main


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def dtype_lines(err: str) -> list[str]:
    """The line a model load prints on stderr: ``persona-circuits: dtype NAME (reason)``."""
    return [l for l in err.splitlines() if l.startswith("persona-circuits: dtype ")]


def other_lines(err: str) -> list[str]:
    return [l for l in err.strip().splitlines() if l not in dtype_lines(err)]


def test_personas_lists_bundled_sets(capsys):
    code, out, _ = run_cli(["personas", "--json"], capsys)
    assert code == 0
    assert [r["name"] for r in json.loads(out)] == ["mbti-ei", "mbti-jp", "mbti-sn", "mbti-tf"]


@pytest.mark.parametrize("args,needle", [
    (["mask", "no-such-set", "--method", "wanda", "--sparsity", "0.5", "--out", "{tmp}/m"], "unknown dataset"),
    (["mask", "mbti-ei", "--method", "wanda", "--sparsity", "1.0", "--out", "{tmp}/m"], "sparsity"),
    (["mask", "mbti-ei", "--method", "wanda", "--sparsity", "-0.1", "--out", "{tmp}/m"], "sparsity"),
    (["mask", "mbti-ei", "--method", "wanda", "--sparsity", "0.5", "--out", "{tmp}/nope/m"], "parent does not exist"),
    (["signatures", "mbti-ei", "--out", "{tmp}/nope/s.safetensors"], "parent does not exist"),
    (["evaluate", "mbti-ei", "--mask", "{tmp}/nothing"], "mask"),
    (["evaluate", "{tmp}/bad_csv"], "missing column"),
    (["evaluate", "{tmp}/bad_letter"], "must be A or B"),
    (["evaluate", "{tmp}/empty"], "empty file"),
    (["mask", "mbti-ei", "--method", "wanda", "--sparsity", "0.5", "--out", "{tmp}/m", "--model", "no-such-model"], "unknown model"),
    (["reproduce", "--out", "{tmp}/r", "--sets", "mbti-ei,nope"], "unknown persona set(s) nope"),
    (["reproduce", "--out", "{tmp}/r", "--sets", "power"], "give --data-root"),
])
def test_bad_input_gives_one_error_line_and_no_output(tmp_path, capsys, args, needle):
    (tmp_path / "bad_csv").mkdir()
    (tmp_path / "bad_csv" / "train.csv").write_text("question,matching\nq,a\n")
    (tmp_path / "bad_letter").mkdir()
    (tmp_path / "bad_letter" / "train.csv").write_text("question,matching,not_matching\nq,a,b\n")
    (tmp_path / "bad_letter" / "test_ab.csv").write_text("question,A,B,matching\nq,a,b,X\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "train.csv").write_text("")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("persona-circuits: error:") and needle in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_mask_of_another_model_is_a_clear_error(tmp_path, capsys, tiny_model_dir):
    from persona_circuits.masks.build import MaskConfig, Mask, save_masks
    import torch

    fake = Mask({"blocks.0.attn.q": torch.ones(3, 5, dtype=torch.bool)}, MaskConfig("wanda", 0.5, "other", "x", pole="extravert"))
    save_masks(tmp_path / "m", {"extravert": fake})
    code, _, err = run_cli(["evaluate", "mbti-ei", "--mask", str(tmp_path / "m"), "--model", str(tiny_model_dir),
                            "--limit", "2", "--no-progress"], capsys)
    assert code == 2 and "another model" in err and len(other_lines(err)) == 1 and len(dtype_lines(err)) == 1


def test_pipeline_on_tiny_model(tmp_path, capsys, tiny_model_dir):
    common = ["--model", str(tiny_model_dir), "--no-progress", "--batch-size", "4"]
    code, out, err = run_cli(["signatures", "mbti-ei", "--out", str(tmp_path / "s.safetensors"), "--calib-size", "6"] + common, capsys)
    assert code == 0, err
    dtype = dtype_lines(err)[0].split()[2]  # "persona-circuits: dtype NAME (auto: ...)"; every artefact records it
    assert dtype in ("float32", "bfloat16") and "(auto: " in dtype_lines(err)[0]
    from persona_circuits.masks.statistics import load_signatures

    assert {s.meta["dtype"] for s in load_signatures(tmp_path / "s.safetensors").values()} == {dtype}
    code, out, err = run_cli(["mask", "mbti-ei", "--method", "contrastive-sparse", "--sparsity", "0.6", "--out",
                              str(tmp_path / "m"), "--signatures", str(tmp_path / "s.safetensors")] + common, capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["extravert", "introvert"]
    assert json.loads((tmp_path / "m" / "introvert" / "mask_config.json").read_text())["dtype"] == dtype
    code, out, err = run_cli(["evaluate", "mbti-ei", "--mask", str(tmp_path / "m"), "--limit", "5", "--json"] + common, capsys)
    assert code == 0, err
    rows = [json.loads(l) for l in out.strip().splitlines()]
    assert [(r["condition"], r["pole"]) for r in rows] == [
        ("dense", "extravert"), ("dense", "introvert"),
        ("contrastive-sparse:extravert", "extravert"), ("contrastive-sparse:introvert", "introvert"),
        ("contrastive-sparse", "contrast")]
    contrast = rows.pop()
    assert contrast["damage_kl"] > 0 and "null_draws" not in contrast  # no null pairs in this folder
    for r in rows:
        assert set(r) == {"condition", "pole", "n", "accuracy", "accuracy_ci95", "accuracy_length_normalized", "mean_margin",
                          "scoring", "dtype"}
        assert r["scoring"] == "summed" and r["dtype"] == dtype
        assert r["n"] == 5 and 0 <= r["accuracy"] <= 1
    code, out, err = run_cli(["generate", "--mask", str(tmp_path / "m"), "--pole", "introvert", "--max-new-tokens", "4",
                              "Hello?"] + common, capsys)
    assert code == 0, err


def test_scorings_released_and_per_token(tmp_path, capsys, tiny_model_dir):
    from persona_circuits.data import load_persona_set
    from persona_circuits.measure.released import released_system_prompt

    common = ["--model", str(tiny_model_dir), "--no-progress", "--batch-size", "4", "--dtype", "float32"]
    code, _, err = run_cli(["mask", "mbti-ei", "--method", "contrastive-wanda", "--sparsity", "0.3", "--calib-size", "4",
                            "--out", str(tmp_path / "m")] + common, capsys)
    assert code == 0, err
    assert dtype_lines(err) == ["persona-circuits: dtype float32 (--dtype float32)"]
    evaluate = ["evaluate", "mbti-ei", "--mask", str(tmp_path / "m"), "--limit", "3", "--damage-texts", "2", "--json"]
    code, out, err = run_cli(evaluate + ["--scoring", "released"] + common, capsys)
    assert code == 0, err
    rows = [json.loads(l) for l in out.strip().splitlines()]
    ps = load_persona_set("mbti-ei")
    assert {r["scoring"] for r in rows} == {"released"} and {r["dtype"] for r in rows} == {"float32"}
    for r in rows[:-1]:  # the persona system prompt of the evaluated pole, with and without its mask
        assert set(r) == {"condition", "pole", "n", "accuracy", "accuracy_ci95", "mean_margin", "system", "scoring", "dtype"}
        assert r["system"] == released_system_prompt(ps, r["pole"]) and r["n"] == 3
    assert rows[-1]["pole"] == "contrast" and rows[-1]["n"] == 3
    code, out, err = run_cli(evaluate + ["--scoring", "per-token"] + common, capsys)
    assert code == 0, err
    for r in [json.loads(l) for l in out.strip().splitlines()][:-1]:
        assert r["scoring"] == "per-token" and r["accuracy"] == r["accuracy_length_normalized"]
    code, out, _ = run_cli(evaluate[:-1] + ["--scoring", "released"] + common, capsys)
    assert code == 0 and "released scoring" in out and "system prompt of introvert" in out


NO_TORCH = """
import sys
import persona_circuits as pc
import persona_circuits.cli as cli
cli.build_parser()
assert "load_model" in dir(pc) and "score_released" in pc.__all__
for argv in ({argvs}):
    try:
        cli.main(argv)
    except SystemExit as exc:
        assert exc.code == (0 if "--help" in argv else 2), (argv, exc.code)
    else:
        raise AssertionError(argv)
heavy = [m for m in ("torch", "transformers", "transformer_lens", "numpy") if m in sys.modules]
assert not heavy, heavy
"""


def test_help_and_argument_errors_import_neither_torch_nor_transformers():
    argvs = [["--help"], ["evaluate", "--help"], ["reproduce", "--help"], ["evaluate"], ["evaluate", "x", "--scoring", "nope"],
             ["mask", "mbti-ei", "--method", "nope", "--sparsity", "0.5", "--out", "m"], ["signatures", "x", "--dtype", "fp8"],
             ["nope"]]
    r = subprocess.run([sys.executable, "-c", NO_TORCH.format(argvs=", ".join(map(repr, argvs)))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "reproduce" in r.stdout and "--scoring" in r.stdout  # the top-level and evaluate help were printed


def test_reproduce_help_lists_the_studys_options():
    r = subprocess.run([sys.executable, "-m", "persona_circuits.cli", "reproduce", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--data-root" in r.stdout and "--dtype" in r.stdout


def test_console_script_help():
    r = subprocess.run([sys.executable, "-m", "persona_circuits.cli", "mask", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--sparsity" in r.stdout and "DATASET" in r.stdout


def test_removal_masks_with_nulls_and_the_contrast_object(tmp_path, capsys, tiny_model_dir):
    common = ["--model", str(tiny_model_dir), "--no-progress", "--batch-size", "4"]
    code, out, err = run_cli(["mask", "mbti-ei", "--method", "contrastive-removal", "--sparsity", "0.05", "--calib-size", "6",
                              "--null-draws", "3", "--out", str(tmp_path / "m")] + common, capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["extravert", "introvert", "nulls"]
    assert sorted(p.name for p in (tmp_path / "m" / "nulls").iterdir()) == ["0", "1", "2"]
    cfg = json.loads((tmp_path / "m" / "nulls" / "1" / "introvert" / "mask_config.json").read_text())
    assert cfg["method"] == "contrastive-removal" and cfg["extra"]["null"] == "label-swapped" and cfg["sparsity"] == 0.05
    assert cfg["extra"]["null_swap"] == "balanced"  # the default: exactly half the items swapped per draw
    code, out, err = run_cli(["evaluate", "mbti-ei", "--mask", str(tmp_path / "m"), "--limit", "4", "--json",
                              "--damage-texts", "3"] + common, capsys)
    assert code == 0, err
    rows = [json.loads(l) for l in out.strip().splitlines()]
    c = rows[-1]
    assert c["pole"] == "contrast" and c["condition"] == "contrastive-removal" and c["n"] == 4
    for k in ("shift", "shift_ci95", "moved", "damage_kl", "null_shift_mean", "null_shift_sd", "null_draws", "persona_specific"):
        assert k in c, k
    assert c["null_draws"] == 3 and isinstance(c["persona_specific"], bool) and c["damage_kl"] > 0
    assert c["null_swap"] == "balanced" and c["z"] == pytest.approx(c["shift"] / (sum(x * x for x in c["null_shifts"]) / 3) ** 0.5)
    assert c["shift_ci95"][0] <= c["shift"] <= c["shift_ci95"][1]
    code, out, err = run_cli(["evaluate", "mbti-ei", "--mask", str(tmp_path / "m"), "--limit", "4",
                              "--damage-texts", "3"] + common, capsys)
    assert code == 0 and "pole contrast" in out and "persona-specific" in out


def test_null_draws_need_per_text_statistics(tmp_path, capsys, tiny_model_dir):
    common = ["--model", str(tiny_model_dir), "--no-progress"]
    code, _, err = run_cli(["signatures", "mbti-ei", "--out", str(tmp_path / "s.safetensors"), "--calib-size", "4"] + common, capsys)
    assert code == 0, err
    code, _, err = run_cli(["mask", "mbti-ei", "--method", "contrastive-wanda", "--sparsity", "0.3", "--null-draws", "2",
                            "--signatures", str(tmp_path / "s.safetensors"), "--out", str(tmp_path / "m")] + common, capsys)
    assert code == 2 and "per-text" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_no_progress_hides_every_bar(capsys):
    # the embedded model is a GGUF file: transformers dequantises it behind its own tqdm bar
    code, out, err = run_cli(["generate", "--no-progress", "--max-new-tokens", "2", "Hi"], capsys)
    assert code == 0 and out.strip()
    assert other_lines(err) == [] and len(dtype_lines(err)) == 1, err


def test_projection_gate_mask_export_uses_its_own_gate(tmp_path, capsys, tiny_model_dir):
    import json

    from persona_circuits.masks.build import load_masks

    common = ["--model", str(tiny_model_dir), "--no-progress", "--batch-size", "4"]
    code, out, err = run_cli(["mask", "mbti-ei", "--method", "projection-gate", "--sparsity", "0.2", "--calib-size", "4",
                              "--out", str(tmp_path / "g")] + common, capsys)
    assert code == 0, err
    masks = load_masks(tmp_path / "g")
    assert {m.config.method for m in masks.values()} == {"projection-gate"}
    assert all(m.config.extra["gamma"] == pytest.approx(0.8) and m.density() < 1 for m in masks.values())
    code, _, err = run_cli(["export", "--mask", str(tmp_path / "g"), "--pole", "introvert", "--out", str(tmp_path / "x")]
                           + common, capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "x" / "persona_mask.json").read_text())["gamma"] == pytest.approx(0.8)
    code, _, err = run_cli(["mask", "mbti-ei", "--method", "projection-gate", "--sparsity", "0.2", "--null-draws", "2",
                            "--out", str(tmp_path / "n")] + common, capsys)
    assert code == 2 and "projection-gate" in err
