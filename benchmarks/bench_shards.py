"""Study shards against the 40-minute target: each committed shard's wall time (its own ``meta.seconds``, as
the shard recorded it), where it went (the shard's per-stage log, grouped), and the floor its matched-damage
null draws set (their item scorings alone, measured here in the shard's dtype).

Read from ``reports/shards/<model>/<shard>/shard.json`` (written by ``reproduce --shard``: nothing is re-run
but one scoring of every held-out item per family, to price the floor). A shard is one job of a scheduler or
one Ray task, so the target is per shard: 40 minutes on 2 cores in bfloat16 for a SmolLM2 set shard.

Groups (a stage's label is ``SET: what``): *setup* (calibration, masks, steering), *conditions* (the dense
model, masks, prompt, RAG, LoRA and their contrasts and damage), *curves and matched table* (the headline:
every method's curve, the real pair's strength fits and the matched-damage null stages, which are also listed
one by one and are part of it), *paper table*, *gate analyses*, *analysis set* (ablation, sweeps, stability,
capability), *representations* (probes, similarity, decoding, mask analyses), and the cross shard's stages.

    python benchmarks/bench_shards.py [--quick]   (--quick: read only, no floor)
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Result, main_of  # noqa: E402
from bench_study import model_in, scoring_seconds, set_scorings  # noqa: E402

from persona_circuits.results import Shard  # noqa: E402
from persona_circuits.study.shard_format import read_shard  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARDS = ROOT / "reports" / "shards"
TARGET_S = 40 * 60.0
GROUPS = (("matched-damage nulls", "matched-damage nulls (each listed, inside the curves)"),
          ("effect-damage curves", "curves and matched table"), ("paper table", "paper table"),
          ("projection-gate analyses", "gate analyses"), ("calibration (atlas only)", "cross: atlas-only calibration"),
          ("calibration", "setup"), ("masks", "setup"), ("steering", "setup"),
          ("baselines and masks", "conditions"), ("contrasts and damage", "conditions"),
          ("ablation", "analysis set"), ("sweeps", "analysis set"), ("stability", "analysis set"),
          ("capability", "analysis set"), ("probes", "representations"), ("mask analyses", "representations"),
          ("types", "cross: 16 types"), ("atlas", "cross: atlas"))


def group_of(label: str) -> str:
    what = label.split(": ", 1)[1] if ": " in label and not label.startswith("types") else label
    for key, group in GROUPS:
        if key in what:
            return group
    return "other"


def shard_rows(shard: Shard) -> dict[str, float]:
    """Seconds per group of one shard's stage log."""
    out: dict[str, float] = defaultdict(float)
    for label, sec in shard.timings.items():
        out[group_of(label)] += float(sec)
    return dict(out)


def resumed(shard: Shard) -> bool:
    """Whether the shard's run resumed an earlier one: some matched-damage null stage took under a second (its
    draws read back from the stage cache). Its ``meta.seconds`` is then the last run's only: a lower bound."""
    return any("matched-damage nulls" in k and float(v) < 1.0 for k, v in shard.timings.items())


def wall_time(shard: Shard) -> tuple[float, str]:
    """The shard's wall time in seconds and what it covers: every run, from its run log (``meta.seconds_all_runs``,
    a shard computed with ``--checkpoint``), the logged runs only (a lower bound) when the log began after the
    first, else ``meta.seconds`` (the last run's only when :func:`resumed`)."""
    m = shard.meta
    if m.seconds_all_runs is not None:
        n = m.runs or 1
        return float(m.seconds_all_runs), ("" if n == 1 and m.runs_complete else
                                           f"{n} runs" if m.runs_complete else f"{n} logged runs only: a lower bound")
    return float(m.seconds or 0.0), "resumed: last run only" if resumed(shard) else ""


def read_shards(root: Path = SHARDS) -> dict[str, dict[str, Shard]]:
    """``{model: {shard: its record}}`` of every committed shard."""
    out: dict[str, dict[str, Shard]] = {}
    for f in sorted(root.glob("*/*/shard.json")):
        out.setdefault(f.parent.parent.name, {})[f.parent.name] = read_shard(f.parent)
    return out


def run(quick: bool = False, repeats: int | None = None, model=None) -> Result:
    floor = not quick
    res = Result("shards", "Study shards: wall time per shard, where it went, its floor",
                 "python benchmarks/bench_shards.py")
    shards = read_shards()
    if not shards:
        res.notes.append(f"no shard under {SHARDS.relative_to(ROOT)}: nothing to report")
        return res
    secs: dict[str, float] = {}
    for mname, by in shards.items():
        groups = sorted({g for p in by.values() for g in shard_rows(p)})
        head = "| shard | CPU | threads | dtype | resumed | wall min | " + " | ".join(groups) + " |"
        L = [f"**{mname}** (minutes per group of the shard's own stage log)", "", head,
             "|" + " --- |" * (6 + len(groups))]
        for name, p in by.items():
            m, rows = p.meta, shard_rows(p)  # every shard records how it was computed
            wall, note = wall_time(p)
            L.append(f"| {name} | {m.cpu} | {m.threads} | {m.dtype} | {'yes' if (m.runs or 0) > 1 or resumed(p) else 'no'} | "
                     f"{wall / 60:.1f}{f' ({note})' if note else ''} | "
                     + " | ".join(f"{rows.get(g, 0.0) / 60:.1f}" for g in groups) + " |")
            target = TARGET_S / 60 if (mname.startswith("smollm2") and name != "cross") else None
            res.add(f"{mname} shard {name}: wall time{f' ({note})' if note else ''}", wall / 60, "min",
                    target, "<=" if target else "",
                    detail=f"{m.cpu}, {m.threads} threads, {m.dtype}, finished {m.finished}")
            if target and wall > TARGET_S:
                res.misses.append(f"{mname} shard {name}: {wall / 60:.0f} min against {TARGET_S / 60:.0f}; "
                                  f"its curves and matched table took {rows.get('curves and matched table', 0) / 60:.0f} min, "
                                  f"of which matched-damage nulls "
                                  f"{rows.get('matched-damage nulls (each listed, inside the curves)', 0) / 60:.0f} min")
            if floor and p.shard.name != "cross":
                n = set_scorings(p.results)
                if n:
                    key = (mname, m.dtype)
                    if key not in secs:
                        if mname != "smollm2-135m-instruct":
                            continue  # the floor is priced on the default model only
                        secs.update({(mname, m.dtype, fam): s for fam, s in scoring_seconds(model_in(m.dtype, model)).items()})
                        secs[key] = 1.0
                    fam = p.results.get("family", "mbti")  # the set's results as stored
                    per = secs.get((mname, m.dtype, fam), secs.get((mname, m.dtype, "mbti")))
                    res.add(f"{mname} shard {name}: null draws' item scoring alone (floor)", n * per / 60, "min",
                            detail=f"{n} scorings of every held-out item at {per:.1f} s ({m.dtype})")
        res.tables.append("\n".join(L))
    res.notes.append("wall time and stage log: the shard's own record (meta.seconds, timings), measured by the run "
                     "that computed it; whether other work shared its cores is not recorded (BENCHMARKS.md says where it "
                     "did); a resumed shard's record covers its last run only, unless its checkpoint's run log "
                     "holds every run (meta.seconds_all_runs); the floor is priced here by one scoring of "
                     "every held-out item per family in the shard's dtype")
    return res


if __name__ == "__main__":
    main_of(run, __doc__.splitlines()[0])
