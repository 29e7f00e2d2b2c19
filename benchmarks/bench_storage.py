"""Storage and memory: mask bytes on disk per weight (``Mask.save``, bit-packed) vs a bool tensor saved
with ``torch.save``; and the peak memory of recording signatures vs a plain forward over the same
batches, each measured in a fresh subprocess as the peak RSS (``VmHWM``, reset after the model is
loaded) minus the RSS before the work, next to the model's bytes (sum of parameter bytes).

    python benchmarks/bench_storage.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import Result, get_model, main_of, repeats_for  # noqa: E402

_CHILD = r"""
import json, os, sys, threading, time
sys.path.insert(0, {bench!r})
import torch
from _common import calibration_texts, get_model
from persona_circuits.data import pad_batches
from persona_circuits.model.loading import get_tokenizer
from persona_circuits.masks.statistics import record_encoded

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024

peak = [0]
stop = False
def sample():  # fallback when VmHWM cannot be reset
    while not stop:
        peak[0] = max(peak[0], rss()); time.sleep(0.002)

model = get_model()
enc = calibration_texts(model, {n})
batches = pad_batches(enc, get_tokenizer(model).pad_token_id, 8)
model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
import gc; gc.collect()
try:
    open("/proc/self/clear_refs", "w").write("5"); how = "VmHWM reset"
except OSError:
    how = "sampled VmRSS"
th = threading.Thread(target=sample, daemon=True); th.start()
before = rss()
with torch.no_grad():
    if {mode!r} == "record":
        record_encoded(model, enc, batch_size=8)
    else:
        for b in batches:
            model(b.input_ids, attention_mask=b.attention_mask)
stop = True; th.join()
hwm = max(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps(dict(before=before, peak=max(hwm if how == "VmHWM reset" else 0, peak[0]), model_bytes=model_bytes, how=how)))
"""


def child_peak(mode: str, n: int) -> dict:
    code = _CHILD.format(bench=str(Path(__file__).resolve().parent), n=n, mode=mode)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, TQDM_DISABLE="1"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False, repeats: int | None = None, model=None, memory: bool = True) -> Result:
    import persona_circuits as pc

    model = model or get_model()
    repeats = repeats_for(quick, repeats, 3)
    res = Result("storage", "Storage: mask bytes per weight; peak memory while recording",
                 "python benchmarks/bench_storage.py" + (" --quick" if quick else ""), runs=repeats)
    mask = pc.random_mask(model, sparsity=0.5, seed=0)
    with tempfile.TemporaryDirectory() as d:
        mask.save(Path(d) / "m")
        n_mask = (Path(d) / "m" / "mask.safetensors").stat().st_size
        n_cfg = (Path(d) / "m" / "mask_config.json").stat().st_size
        torch.save(mask.masks, Path(d) / "bool.pt")
        n_bool = (Path(d) / "bool.pt").stat().st_size
        back = pc.Mask.load(Path(d) / "m")
        bools = torch.load(Path(d) / "bool.pt")
        assert all(torch.equal(back.masks[k], v) and torch.equal(bools[k], v) for k, v in mask.masks.items())
    res.checks.append(f"both files load back to the same mask ({len(mask.masks)} layers)")
    n = mask.n_weights
    res.add("Mask.save bits per weight (tensors + config)", 8 * (n_mask + n_cfg) / n, "bits", 1.1, "<=")
    res.add("torch.save(bool tensors) bits per weight", 8 * n_bool / n, "bits")
    res.add("size ratio torch.save / Mask.save", n_bool / (n_mask + n_cfg), "x")
    if memory:
        n_txt = 4 if quick else 16
        rec, plain = child_peak("record", n_txt), child_peak("plain", n_txt)
        mb = rec["model_bytes"]
        res.add("peak memory while recording / model bytes (model + peak extra RSS)",
                (mb + rec["peak"] - rec["before"]) / mb, "x", 1.5, "<=")
        res.add("extra RSS while recording", (rec["peak"] - rec["before"]) / 1e6, "MB")
        res.add("extra RSS of a plain full forward (same batches)", (plain["peak"] - plain["before"]) / 1e6, "MB")
        res.add("whole-process peak RSS while recording / model bytes", rec["peak"] / mb, "x")
        res.notes.append(f"model bytes {mb / 1e6:.0f} MB (sum of parameter bytes); {n_txt} texts, batch 8; "
                         f"peak by {rec['how']}; the whole-process RSS also holds the Python runtime, torch and "
                         f"what the GGUF loader left behind, which recording does not add to")
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
