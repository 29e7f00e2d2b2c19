"""Scaling sweep: how each cost grows with model size (the two embedded models, SmolLM2-135M and
Gemma-3-270M) and with calibration size (16 to 256 texts on the default model).

Per model: recording time per text, building both contrastive-Wanda masks (rho 0.5), one persona
switch, mask bytes on disk, model bytes. Per calibration size: recording time (linear in texts) and
mask construction (independent of the calibration size), signature bytes (independent too: sums).
Same result: the masks built from each model's signatures keep exactly k weights per row.

    python benchmarks/bench_scaling.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from _common import Result, calibration_texts, get_model, main_of, median, repeats_for  # noqa: E402


def _t(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def model_costs(model, n_texts: int, repeats: int) -> dict:
    import persona_circuits as pc
    from persona_circuits.masks.build import keep_count
    from persona_circuits.model.loading import prunable_layers
    from persona_circuits.masks.statistics import record_encoded

    enc_a = calibration_texts(model, n_texts, pole=0)
    rec = []
    for _ in range(repeats):
        dt, _ = _t(lambda: record_encoded(model, enc_a, batch_size=8))
        rec.append(dt / len(enc_a))
    sigs = pc.record_persona_signatures(model, pc.load_persona_set("mbti-ei"), calib_size=n_texts)
    a, b = sigs["extravert"], sigs["introvert"]
    build = []
    for _ in range(repeats):
        dt, (ma, mb) = _t(lambda: pc.contrastive_wanda_masks(model, a, b, sparsity=0.5))
        build.append(dt)
    layers = prunable_layers(model)
    assert all(int(m.masks[l.name].sum(1).min()) == int(m.masks[l.name].sum(1).max()) == keep_count(l.shape[1], 0.5)
               for m in (ma, mb) for l in layers)
    sw = []
    for _ in range(max(3, repeats)):
        cm = pc.apply_mask(model, mb)
        t0 = time.perf_counter()
        cm.__enter__()
        cm.__exit__(None, None, None)
        sw.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as d:
        ma.save(Path(d) / "m")
        disk = sum(f.stat().st_size for f in (Path(d) / "m").iterdir())
    return {"params": sum(p.numel() for p in model.parameters()),
            "model_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "prunable": sum(l.weight.numel() for l in layers), "layers": len(layers),
            "record_s_per_text": median(rec), "build_s": median(build), "switch_s": median(sw), "mask_bytes": disk}


def run(quick: bool = False, repeats: int | None = None, model=None, models: tuple | None = None,
        calib_sizes: tuple | None = None) -> Result:
    from persona_circuits.masks.statistics import record_encoded

    model = model or get_model()
    repeats = repeats_for(quick, repeats, 3)
    models = models if models is not None else ((None,) if quick else (None, "gemma-3-270m"))
    calib_sizes = calib_sizes or ((4, 8) if quick else (16, 64, 256))
    res = Result("scaling", "Scaling with model size and calibration size",
                 "python benchmarks/bench_scaling.py" + (" --quick" if quick else ""), runs=repeats)
    n_texts = 4 if quick else 16
    rows = []
    for name in models:
        m = model if name is None else get_model(name)
        c = model_costs(m, n_texts, repeats)
        rows.append((name or "smollm2-135m-instruct (default)", c))
    tbl = ["| model | params | prunable weights | layers | recording, s per text | both masks, s | switch, ms | "
           "mask on disk, MB | model, MB |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in rows:
        tbl.append(f"| {name} | {c['params'] / 1e6:.0f} M | {c['prunable'] / 1e6:.0f} M | {c['layers']} | "
                   f"{c['record_s_per_text']:.3f} | {c['build_s']:.2f} | {c['switch_s'] * 1e3:.0f} | "
                   f"{c['mask_bytes'] / 1e6:.1f} | {c['model_bytes'] / 1e6:.0f} |")
    res.tables.append("\n".join(tbl))
    if len(rows) == 2:
        (_, a), (_, b) = rows
        for key, label in (("record_s_per_text", "recording time"), ("build_s", "mask construction"),
                           ("switch_s", "switch"), ("mask_bytes", "mask bytes")):
            res.add(f"{label}: second / first model", b[key] / a[key], "x")
        res.add("prunable weights: second / first model", b["prunable"] / a["prunable"], "x")
    # calibration size on the default model (one run per size: the time is linear in texts)
    import persona_circuits as pc

    tbl = ["| calibration texts | recording, s | s per text | signature on disk, MB |", "| --- | --- | --- | --- |"]
    per_text = []
    for n in calib_sizes:
        enc = calibration_texts(model, n)
        dt, (sums, n_tok, n_txt) = _t(lambda enc=enc: record_encoded(model, enc, batch_size=8))
        sig = pc.ActivationSignature(sums, n_tok, n_txt, "m", "f", "h")
        with tempfile.TemporaryDirectory() as d:
            size = sig.save(Path(d) / "s.safetensors").stat().st_size
        per_text.append(dt / len(enc))
        tbl.append(f"| {len(enc)} | {dt:.2f} | {dt / len(enc):.3f} | {size / 1e6:.2f} |")
    res.tables.append("\n".join(tbl))
    import _common

    res.notes += [f"workaround: {w}" for w in _common.WORKAROUNDS]
    res.add("recording s per text, largest / smallest calibration set", per_text[-1] / per_text[0], "x")
    res.notes.append("recording is linear in the number of texts (per-text cost flat); mask construction and "
                     "signature size do not depend on it (signatures are fixed-size sums); calibration texts "
                     "alternate mbti-ei and power; texts of different length make per-text cost vary a little")
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
