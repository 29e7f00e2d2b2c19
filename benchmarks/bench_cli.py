"""Command line: whole-process times of ``persona-circuits --help``, an argument error and
``persona-circuits evaluate mbti-tf --limit 2`` (warm caches), each interleaved with a baseline process
``python -c "import torch"`` so that the ratio to the baseline survives a busy machine.

Same result: ``--help`` and the argument error leave torch and transformers unimported (checked in a
child process through ``sys.modules``); ``evaluate`` exits 0 and prints both poles' rows. A breakdown of
the ``evaluate`` process (imports, model load, TransformerBridge construction, plain-forward build,
scoring), measured in a child process, says what remains of its time and why.

    python benchmarks/bench_cli.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Result, interleaved, main_of, median, repeats_for  # noqa: E402

HELP_TARGET_S, EVALUATE_TARGET_S = 1.0, 8.0
ARG_ERROR = ["evaluate", "mbti-tf", "--scoring", "nope"]
EVALUATE = ["evaluate", "mbti-tf", "--limit", "2", "--no-progress"]

_NO_TORCH = """
import sys
import persona_circuits.cli as cli
for argv in (["--help"], {arg_error!r}):
    try:
        cli.main(argv)
    except SystemExit:
        pass
print([m for m in ("torch", "transformers", "transformer_lens") if m in sys.modules])
"""

_BREAKDOWN = """
import json, sys, time
t0 = time.perf_counter(); marks = {}
def mark(name):
    marks[name] = time.perf_counter() - t0 - sum(marks.values())
import persona_circuits.cli; mark("python start-up + persona_circuits.cli")
import torch; mark("import torch")
import transformers; from transformers import AutoModelForCausalLM; mark("import transformers")
from transformer_lens.model_bridge import TransformerBridge; mark("import transformer_lens.model_bridge")
boot = TransformerBridge.boot_transformers  # as the class gives it: bound if a classmethod
spent = []
def timed_boot(*a, **kw):
    t = time.perf_counter(); out = boot(*a, **kw); spent.append(time.perf_counter() - t); return out
TransformerBridge.boot_transformers = staticmethod(timed_boot)
import persona_circuits as pc
from persona_circuits.measure.evaluation import score_choices
from persona_circuits.model.plain import plain_model
model = pc.load_model(progress=False); mark("load_model")
marks["load_model: cached weights, tokenizer, dtype cast"] = marks.pop("load_model") - spent[0]
marks["load_model: TransformerBridge.boot_transformers"] = spent[0]
plain_model(model); mark("plain forward module (weights shared; self-check remembered)")
items = pc.load_persona_set("mbti-tf").test[:2]
score_choices(model, items); mark("scoring 2 items (4 answers, one forward pass)")
print(json.dumps(marks))
"""


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "persona-circuits"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "persona_circuits.cli"]


def _env() -> dict:
    env = dict(os.environ)
    if os.environ.get("PC_BENCH_THREADS"):  # the same thread setting as the benchmark process
        env["OMP_NUM_THREADS"] = os.environ["PC_BENCH_THREADS"]
    return env


def _proc(cmd: list[str], expect: int = 0):
    def fn():
        r = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
        if r.returncode != expect:
            raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}, expected {expect}: {r.stderr[-500:]}")
        return r
    return fn


def _breakdown(repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _BREAKDOWN], env=_env(), capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: median([r[k] for r in runs]) for k in runs[0]}


def run(quick: bool = False, repeats: int | None = None, model=None) -> Result:
    repeats = repeats_for(quick, repeats, 3)
    cli = _cli()
    res = Result("cli", "Command line: whole-process times (--help, an argument error, evaluate --limit 2)",
                 "python benchmarks/bench_cli.py" + (" --quick" if quick else ""), runs=repeats)
    t = time.perf_counter()
    warm = _proc(cli + EVALUATE)()  # fills the converted-weights cache and the plain-forward check, if empty
    t_warm = time.perf_counter() - t
    rows = [l for l in warm.stdout.splitlines() if l.startswith("dense ")]
    assert len(rows) == 2, warm.stdout
    dtype_line = next((l for l in warm.stderr.splitlines() if l.startswith("persona-circuits: dtype ")), "")
    heavy = subprocess.run([sys.executable, "-c", _NO_TORCH.format(arg_error=ARG_ERROR)], env=_env(),
                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    assert heavy == "[]", f"--help / argument error imported {heavy}"
    names = {"baseline: python -c 'import torch'": _proc([sys.executable, "-c", "import torch"]),
             "persona-circuits --help": _proc(cli + ["--help"]),
             f"argument error (persona-circuits {' '.join(ARG_ERROR)})": _proc(cli + ARG_ERROR, expect=2),
             f"persona-circuits {' '.join(EVALUATE)}": _proc(cli + EVALUATE)}
    res.timings = interleaved(names, repeats)
    base, hlp, err, ev = (median(v) for v in res.timings.values())
    res.add("--help, whole process", hlp, "s", HELP_TARGET_S, "<=")
    res.add("argument error, whole process", err, "s", HELP_TARGET_S, "<=")
    res.add("evaluate mbti-tf --limit 2, whole process (warm caches)", ev, "s", EVALUATE_TARGET_S, "<=")
    res.add("baseline python -c 'import torch'", base, "s")
    for label, v in (("--help", hlp), ("argument error", err), ("evaluate --limit 2", ev)):
        res.add(f"{label} / baseline (median ratio)", v / base, "x")
    res.checks.append(f"--help and `{' '.join(ARG_ERROR)}` leave torch, transformers and transformer_lens unimported; "
                      f"evaluate exits 0 with both poles' rows ({dtype_line or 'no dtype line'})")
    parts = _breakdown(1 if quick else repeats)
    total = sum(parts.values())
    res.tables.append("What the `evaluate` process spends (child process, median of the runs; imports in the order "
                      "the command needs them):\n\n| part | s | share |\n| --- | --- | --- |\n" + "\n".join(
                          f"| {k} | {v:.2f} | {100 * v / total:.0f} % |" for k, v in parts.items()))
    res.notes.append(f"first (warming) evaluate run: {t_warm:.1f} s; every timed run reads the converted-weights cache "
                     "and the remembered plain-forward check")
    res.notes.append("what remains of evaluate is library work the command needs: importing torch, transformers "
                     "(its modeling utilities pull in scipy, torch.distributed and torch._dynamo) and transformer_lens "
                     "(it imports datasets, pandas and every supported architecture's adapter), reading the float32 "
                     "weights and the tokenizer, and TransformerBridge.boot_transformers (it deep-copies its component "
                     "templates per block and scans the hook points twice); this package adds the plain-forward build "
                     "and one forward pass")
    if ev > EVALUATE_TARGET_S or hlp > HELP_TARGET_S or err > HELP_TARGET_S:
        res.misses.append(f"measured {hlp:.2f} s (--help), {err:.2f} s (argument error), {ev:.1f} s (evaluate) with "
                          f"the import-torch baseline at {base:.2f} s: see the breakdown table for where the time goes")
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
