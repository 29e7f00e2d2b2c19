"""Shared helpers of the benchmark scripts: machine description, timing, data and result records.

Every benchmark compares two ways of doing the same work in the same process, checks that both give
the same result, then reports the median time of several interleaved runs and the ratio.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

if os.environ.get("PC_BENCH_THREADS"):
    # with another process busy on the cores, OpenMP threads wait on each other: one thread per
    # process gives steadier timings (run_all.py records which setting was used)
    torch.set_num_threads(int(os.environ["PC_BENCH_THREADS"]))

REPO = Path(__file__).resolve().parents[1]
SHARED_POWER = REPO.parent / "shared" / "data" / "ai_persona" / "power"

MODELS: dict[str, object] = {}
WORKAROUNDS: list[str] = []  # problems met while loading, reported in BENCHMARKS.md


def machine() -> dict:
    """Cores, CPU model (from /proc/cpuinfo), torch version and threads."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {"load1": load, "cores": os.cpu_count(), "cpu": cpu, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "gpu": torch.cuda.is_available()}


def get_model(name: str | None = None):
    """Load a model once per process (``None`` = the default model), in float32: the benchmarks' reference
    dtype on every machine (``load_model``'s default ``auto`` would follow the CPU)."""
    key = name or "default"
    if key not in MODELS:
        import persona_circuits as pc

        try:
            MODELS[key] = pc.load_model(name, dtype="float32")
        except ValueError as exc:
            if "architecture" not in str(exc) or name is None:
                raise
            # load_model("gemma-3-270m") fails with transformer-lens 4.3: the config read from the GGUF
            # file has no ``architectures`` entry, so the bridge cannot pick an adapter. Work around it
            # here (the package is not changed by the benchmarks): load the HF model, name its
            # architecture, and hand it to load_model as an already-loaded model.
            from persona_circuits.model.loading import load_hf

            hf, tok, mid, _ = load_hf(name, torch.float32)
            hf.config.architectures = [type(hf).__name__]
            MODELS[key] = pc.load_model(hf, tok, model_id=mid, dtype="float32")
            WORKAROUNDS.append(f"load_model({name!r}) raised 'Could not determine supported architecture' "
                               f"(GGUF config without 'architectures'); loaded with "
                               f"config.architectures = [{type(hf).__name__!r}] instead")
    return MODELS[key]


def calibration_texts(model, n: int, *, pole: int = 0) -> list:
    """``n`` encoded calibration texts: half from the bundled mbti-ei set, half from the power task
    (``../shared/data/ai_persona/power``) when it is present, else all from mbti-ei."""
    import persona_circuits as pc
    from persona_circuits.data import encode_pair
    from persona_circuits.model.loading import get_tokenizer

    tok = get_tokenizer(model)
    mbti = pc.load_persona_set("mbti-ei")
    sources = [mbti]
    if SHARED_POWER.is_dir():
        sources.append(pc.load_persona_set(SHARED_POWER))
    per = [n // len(sources) + (1 if i < n % len(sources) else 0) for i in range(len(sources))]
    pairs = []
    for ps, k in zip(sources, per):
        pairs += ps.calibration_pairs(pole, k)
    return [encode_pair(tok, q, a) for q, a in pairs]


def data_sources() -> str:
    return "mbti-ei (bundled)" + (" + ai_persona/power" if SHARED_POWER.is_dir() else " (power data absent)")


def persona_signatures(model, calib_size: int):
    """Both poles' signatures of mbti-ei (first ``calib_size`` calibration items)."""
    import persona_circuits as pc

    return pc.record_persona_signatures(model, pc.load_persona_set("mbti-ei"), calib_size=calib_size)


def timeit(fn, *, warmup: bool = False) -> float:
    if warmup:
        fn()
    gc.collect()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Run each function ``repeats`` times, interleaved (a, b, a, b, ...) so load changes hit both."""
    out = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            out[k].append(timeit(f))
    return out


def median(xs) -> float:
    return float(statistics.median(xs))


@dataclass
class Row:
    """One measured quantity: ``value`` compared with ``target`` (``op`` is '<=', '>=' or '<')."""

    metric: str
    value: float
    unit: str = ""
    target: float | None = None
    op: str = ""
    detail: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return {"<=": self.value <= self.target, ">=": self.value >= self.target,
                "<": self.value < self.target, ">": self.value > self.target}[self.op]


@dataclass
class Result:
    key: str
    title: str
    command: str
    rows: list[Row] = field(default_factory=list)
    timings: dict = field(default_factory=dict)  # name -> list of seconds
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)  # reason (with measured cause) for each missed target
    tables: list[str] = field(default_factory=list)  # extra markdown tables
    runs: int = 0

    def add(self, *a, **kw) -> Row:
        r = Row(*a, **kw)
        self.rows.append(r)
        return r

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        rows = [Row(**{k: v for k, v in r.items() if k != "met"}) for r in d["rows"]]
        return cls(**{**{k: v for k, v in d.items() if k != "rows"}, "rows": rows})

    def to_dict(self) -> dict:
        d = asdict(self)
        for r, rd in zip(self.rows, d["rows"]):
            rd["met"] = r.met
        return d

    def print(self) -> None:
        print(f"== {self.title}  ({self.command})")
        for k, v in self.timings.items():
            print(f"   {k}: median {median(v) * 1e3:.1f} ms over {len(v)} runs")
        for r in self.rows:
            tgt = "" if r.target is None else f"   target {r.op} {r.target:g}  {'MET' if r.met else 'MISSED'}"
            print(f"   {r.metric}: {r.value:.4g} {r.unit}{tgt}")
        for c in self.checks:
            print(f"   check: {c}")
        for n in self.notes:
            print(f"   note: {n}")
        for m in self.misses:
            print(f"   missed: {m}")
        for t in self.tables:
            print(t)


def cli(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, not a measurement)")
    p.add_argument("--repeats", type=int, default=None, help="runs per measurement (default 5, 2 with --quick)")
    return p.parse_args()


def repeats_for(quick: bool, repeats: int | None, full: int = 5) -> int:
    return repeats if repeats else (2 if quick else full)


def main_of(run, description: str) -> None:
    args = cli(description)
    res = run(quick=args.quick, repeats=args.repeats)
    res.print()
    sys.exit(0)
