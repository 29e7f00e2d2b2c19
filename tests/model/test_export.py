"""`export`: a persona model as a plain Hugging Face checkpoint (tiny random Llama)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from persona_circuits import build_masks, load_model, prunable_layers, record_persona_signatures, save_masks
from persona_circuits.cli import main
from persona_circuits.errors import OutputError
from persona_circuits.model.export import exported_layer_names, export_model
from persona_circuits.model.interventions import apply_mask

# Loads and generates with transformers alone; fails if anything imported persona_circuits.
PLAIN = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

d, question, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(d).eval()
tok = AutoTokenizer.from_pretrained(d)
prompt = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
with torch.no_grad():
    out = model.generate(**enc, max_new_tokens=n, do_sample=False, use_cache=False, pad_token_id=tok.pad_token_id)
text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
assert not any(m.split(".")[0] == "persona_circuits" for m in sys.modules), "persona_circuits was imported"
print(json.dumps({"text": text, "n_params": sum(p.numel() for p in model.parameters())}))
"""


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="module")
def masks(tiny, tmp_path_factory):
    from persona_circuits.data import load_persona_set

    ps = load_persona_set("mbti-ei").subset(calib_size=6, test_size=2)
    m = build_masks(tiny, "contrastive-wanda", record_persona_signatures(tiny, ps, batch_size=4), sparsity=0.5)
    folder = tmp_path_factory.mktemp("masks") / "m"
    save_masks(folder, m)
    return m, folder


def test_exported_weights_are_the_masked_weights(tiny, masks, tmp_path):
    m = masks[0]["introvert"]
    dense = {k: v.clone() for k, v in tiny.original_model.state_dict().items()}
    out = export_model(tiny, m, tmp_path / "model")
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "persona_mask.json"} <= {
        p.name for p in out.iterdir()}
    saved = load_file(out / "model.safetensors")
    names = exported_layer_names(tiny)
    with apply_mask(tiny, m):
        for layer in prunable_layers(tiny):
            assert torch.equal(saved[names[layer.name]], layer.weight), layer.name
    # at least one weight was zeroed by the mask; the model itself is restored
    assert any((saved[names[n]] == 0).sum() > 0 for n in m.masks)
    assert all(torch.equal(v, dense[k]) for k, v in tiny.original_model.state_dict().items())
    card = (out / "README.md").read_text()
    assert "contrastive-wanda" in card and "introvert" in card and m.config.calibration_hash in card
    assert "persona_circuits version | 0.1.0" in card
    meta = json.loads((out / "persona_mask.json").read_text())
    dtype = str(next(tiny.parameters()).dtype).replace("torch.", "")
    assert meta["pole"] == "introvert" and meta["dtype"] == meta["mask_dtype"] == dtype  # the weights' and the mask's
    assert f"weights dtype | {dtype}" in card


def test_export_refuses_an_existing_folder(tiny, masks, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="already exists"):
        export_model(tiny, masks[0]["introvert"], tmp_path / "model")
    assert [p.name for p in (tmp_path / "model").iterdir()] == ["keep.txt"]
    export_model(tiny, masks[0]["introvert"], tmp_path / "model", overwrite=True)
    assert (tmp_path / "model" / "model.safetensors").is_file() and not (tmp_path / "model" / "keep.txt").exists()


def test_exported_checkpoint_loads_without_the_package_and_generates_like_generate_mask(
        tiny_model_dir, masks, tmp_path, capsys):
    folder = masks[1]
    common = ["--model", str(tiny_model_dir), "--no-progress"]
    assert main(["export", "--mask", str(folder), "--pole", "introvert", "--out", str(tmp_path / "model")] + common) == 0
    assert "introvert persona model" in capsys.readouterr().out
    question = "How would you spend a free Saturday?"
    assert main(["generate", "--mask", str(folder), "--pole", "introvert", "--max-new-tokens", "8", question] + common) == 0
    expected = capsys.readouterr().out.strip()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", PLAIN, str(tmp_path / "model"), question, "8"], capture_output=True,
                       text=True, cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert expected and got["text"] == expected
    assert got["n_params"] == sum(p.numel() for p in
                                  __import__("transformers").AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())


@pytest.mark.parametrize("command", ["mask", "signatures", "export"])
def test_existing_outputs_are_kept_without_overwrite(tiny_model_dir, masks, tmp_path, capsys, command):
    out = tmp_path / ("s.safetensors" if command == "signatures" else "out")
    if command == "signatures":
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    common = ["--model", str(tiny_model_dir), "--no-progress", "--batch-size", "4"]
    args = {"mask": ["mask", "mbti-ei", "--method", "wanda", "--sparsity", "0.5", "--calib-size", "4"],
            "signatures": ["signatures", "mbti-ei", "--calib-size", "4"],
            "export": ["export", "--mask", str(masks[1]), "--pole", "extravert"]}[command] + ["--out", str(out)] + common
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("persona-circuits: error: output already exists") and "--overwrite" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    assert (out.read_text() if out.is_file() else (out / "keep.txt").read_text()) == "mine"
    assert main(args + ["--overwrite"]) == 0, capsys.readouterr().err
    assert out.is_file() if command == "signatures" else not (out / "keep.txt").exists()


def test_export_bad_input(tiny_model_dir, masks, tmp_path, capsys):
    common = ["--model", str(tiny_model_dir), "--no-progress"]
    for args, needle in [
        (["--mask", str(masks[1]), "--out", str(tmp_path / "o")], "--pole is required"),
        (["--mask", str(masks[1]), "--pole", "nobody", "--out", str(tmp_path / "o")], "no mask for pole"),
        (["--mask", str(masks[1]), "--pole", "introvert", "--out", str(tmp_path / "nope" / "o")], "parent does not exist"),
        (["--mask", str(masks[1]), "--pole", "introvert", "--gamma", "2", "--out", str(tmp_path / "o")], "gamma"),
    ]:
        assert main(["export"] + args + common) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert list(Path(tmp_path).iterdir()) == []


@pytest.mark.slow
def test_export_of_the_embedded_gguf_model(real_model, tmp_path):
    """The default model comes from a GGUF file: its config carries a GGUF quantization_config and tied
    embeddings; the export must reload as plain float weights and generate what `generate --mask` does."""
    from persona_circuits import generate, random_mask

    m = random_mask(real_model, sparsity=0.1, seed=1, pole="random")
    out = export_model(real_model, m, tmp_path / "model")
    cfg = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["architectures"] == ["LlamaForCausalLM"]
    question = "What is the capital of France?"
    with apply_mask(real_model, m):
        expected = generate(real_model, question, max_new_tokens=12)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", PLAIN, str(out), question, "12"], capture_output=True, text=True,
                       cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert expected and got["text"] == expected
