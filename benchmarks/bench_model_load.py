"""Model load: ``load_model()`` with an empty converted-weights cache (de-quantises the GGUF file and writes
the cache) vs with the cache filled (reads float32 safetensors), in a fresh cache folder
(``PERSONA_CIRCUITS_CACHE`` pointed at a temporary folder for the run).

Same result: every parameter and buffer of the cached load is bit-identical to the first load's.

    python benchmarks/bench_model_load.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import Result, main_of, median, repeats_for  # noqa: E402

_FRESH = ("import time; t = time.perf_counter(); import persona_circuits as pc; pc.load_model(dtype='float32'); "
          "print(time.perf_counter() - t)")


def run(quick: bool = False, repeats: int | None = None, model=None) -> Result:
    import persona_circuits as pc
    from persona_circuits.model.loading import converted_cache_path, embedded_gguf_path, hf_model

    repeats = repeats_for(quick, repeats, 3)
    res = Result("model_load", "Model load: converted-weights cache vs de-quantising the GGUF file",
                 "python benchmarks/bench_model_load.py" + (" --quick" if quick else ""), runs=repeats)
    old = os.environ.get("PERSONA_CIRCUITS_CACHE")
    with tempfile.TemporaryDirectory(prefix="pc_cache_") as tmp:
        os.environ["PERSONA_CIRCUITS_CACHE"] = tmp
        try:
            t0 = time.perf_counter()
            first = pc.load_model(dtype="float32")
            t_first = time.perf_counter() - t0
            folder = converted_cache_path(embedded_gguf_path())
            assert (folder / "model.safetensors").is_file(), "cache not written"
            ref = {k: v.clone() for k, v in hf_model(first).state_dict().items()}
            ref_bufs = {k: v.clone() for k, v in hf_model(first).named_buffers()}
            del first
            second = []
            for i in range(repeats):
                t0 = time.perf_counter()
                m = pc.load_model(dtype="float32")
                second.append(time.perf_counter() - t0)
                if i == 0:
                    sd = hf_model(m).state_dict()
                    assert set(sd) == set(ref) and all(torch.equal(sd[k], ref[k]) for k in ref), "weights differ"
                    bufs = dict(hf_model(m).named_buffers())
                    assert all(torch.equal(bufs[k], v) for k, v in ref_bufs.items()), "buffers differ"
                del m
            env = dict(os.environ, OMP_NUM_THREADS="1")
            fresh = []
            for _ in range(1 if quick else 2):
                out = subprocess.run([sys.executable, "-c", _FRESH], env=env, capture_output=True, text=True, check=True)
                fresh.append(float(out.stdout.strip().splitlines()[-1]))
            size = sum(p.stat().st_size for p in folder.iterdir())
        finally:
            if old is None:
                os.environ.pop("PERSONA_CIRCUITS_CACHE", None)
            else:
                os.environ["PERSONA_CIRCUITS_CACHE"] = old
    res.checks.append(f"cached load: all {len(ref)} state-dict tensors and {len(ref_bufs)} buffers bit-identical "
                      f"to the first load's")
    res.timings = {"load_model(), empty cache (GGUF + cache write)": [t_first], "load_model(), cache filled": second,
                   "fresh process: import persona_circuits + load_model(), cache filled": fresh}
    med = median(second)
    res.add("second load_model() (cache filled)", med, "s", 3, "<=")
    res.add("first load_model() (empty cache)", t_first, "s")
    res.add("speed-up of the second load", t_first / med, "x")
    res.add("fresh process: imports + load_model() with the cache", median(fresh), "s")
    res.add("cache size", size / 1e6, "MB")
    res.notes.append("default model (SmolLM2-135M-Instruct, Q4_1 GGUF), every load in float32 (dtype='float32'; "
                     "the default 'auto' adds a cast to bfloat16 on a CPU with AVX512-BF16 or AMX); the cache holds "
                     "float32 weights (any dtype is cast from them on load, bit-identical to de-quantising to that dtype)")
    if med > 3:
        res.misses.append(f"second load {med:.1f} s: see the fresh-process row; the rest is building the "
                          f"TransformerBridge")
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
