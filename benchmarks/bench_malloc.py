"""Large tensors kept in the heap (``persona_circuits.model.memory.keep_large_allocations``) against glibc's
defaults, where each chunk of logits is a fresh ``mmap`` that faults its pages in: KL damage of a random mask
on neutral text and choice scoring under that mask, each in a child process of its own (the setting holds for
a whole process), the two settings interleaved.

Same result: every child prints the KL damage and the summed log-likelihood as hexadecimal floats; they must be
equal bit for bit across the settings (memory placement changes no number).

    python benchmarks/bench_malloc.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Result, main_of, median, repeats_for  # noqa: E402

_CHILD = """
import json, sys, time
from persona_circuits.model.memory import keep_large_allocations
kept = keep_large_allocations()
import persona_circuits as pc
from persona_circuits.masks.build import random_mask
from persona_circuits.model.upcast import bf16_compute
name, dtype, n_texts, n_items = {name!r}, {dtype!r}, {n_texts}, {n_items}
m = pc.load_model(name, dtype=dtype, progress=False)
mask = random_mask(m, sparsity=0.5, seed=0)
items = pc.load_persona_set("mbti-ei").test[:n_items]
with bf16_compute(m):
    ref = pc.neutral_reference(m, n_texts=n_texts)
    pc.kl_damage(m, mask, ref, n_boot=1)  # warm-up
    t = time.perf_counter(); kl = pc.kl_damage(m, mask, ref, n_boot=1)[0]; t_kl = time.perf_counter() - t
    with pc.apply_mask(m, mask):
        t = time.perf_counter(); s = pc.score_choices(m, items, batch_size=16); t_sc = time.perf_counter() - t
print(json.dumps({{"kept": kept, "kl_s": t_kl, "score_s": t_sc, "kl": float(kl).hex(), "logp": float(s.logp.sum()).hex()}}))
"""


def child(name: str, dtype: str, n_texts: int, n_items: int, keep: bool) -> dict:
    env = dict(os.environ)
    if keep:
        env.pop("PERSONA_MALLOC", None)
    else:
        env["PERSONA_MALLOC"] = "default"
    code = _CHILD.format(name=name, dtype=dtype, n_texts=n_texts, n_items=n_items)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False, repeats: int | None = None, model=None,
        models: tuple[tuple[str, str], ...] = (("smollm2-135m-instruct", "float32"), ("gemma-3-270m", "bfloat16")),
        n_texts: int | None = None, n_items: int | None = None) -> Result:
    repeats = repeats_for(quick, repeats, 3)
    n_texts, n_items = n_texts or (2 if quick else 8), n_items or (4 if quick else 24)
    res = Result("malloc", "Large tensors kept in the heap vs glibc's defaults: KL damage and choice scoring",
                 "python benchmarks/bench_malloc.py" + (" --quick" if quick else ""), runs=repeats)
    lines = ["| model | dtype | KL damage, defaults (s) | kept (s) | ratio | scoring, defaults (s) | kept (s) | ratio "
             "| results |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, dtype in models:
        runs = {False: [], True: []}
        for _ in range(repeats):
            for keep in (False, True):
                runs[keep].append(child(name, dtype, n_texts, n_items, keep))
        same = len({(r["kl"], r["logp"]) for rs in runs.values() for r in rs}) == 1
        kept = all(r["kept"] for r in runs[True]) and not any(r["kept"] for r in runs[False])
        t = {(k, keep): median([r[k] for r in runs[keep]]) for k in ("kl_s", "score_s") for keep in (False, True)}
        for k in ("kl_s", "score_s"):
            res.timings[f"{name} {dtype}: {k[:-2]}, defaults"] = [r[k] for r in runs[False]]
            res.timings[f"{name} {dtype}: {k[:-2]}, kept"] = [r[k] for r in runs[True]]
        res.add(f"{name} ({dtype}): KL damage, time with glibc's defaults / kept", t["kl_s", False] / t["kl_s", True], "x")
        res.add(f"{name} ({dtype}): choice scoring, time with glibc's defaults / kept",
                t["score_s", False] / t["score_s", True], "x")
        res.checks.append(f"{name} ({dtype}): KL damage and summed log-likelihood identical bit for bit in all "
                          f"{2 * repeats} processes: {same}; thresholds set only where asked: {kept}")
        lines.append(f"| {name} | {dtype} | {t['kl_s', False]:.2f} | {t['kl_s', True]:.2f} | "
                     f"{t['kl_s', False] / t['kl_s', True]:.2f}x | {t['score_s', False]:.2f} | {t['score_s', True]:.2f} | "
                     f"{t['score_s', False] / t['score_s', True]:.2f}x | {'identical' if same else 'DIFFER'} |")
    res.tables.append("\n".join(lines))
    res.notes.append(f"KL damage of a random mask (sparsity 0.5) on {n_texts} neutral texts, then {n_items} mbti-ei "
                     "held-out items scored under it, in one child process per run (model load not timed); a bfloat16 "
                     "model's products as the study computes them (bf16_compute); medians of interleaved runs")
    return res


if __name__ == "__main__":
    main_of(run, __doc__.splitlines()[0])
