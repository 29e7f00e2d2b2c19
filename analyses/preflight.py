"""Before a long study on another model: every stage of the study, at the quick preset's sizes, with every
matched method (the quick preset measures two), on that model; prints the seconds per stage.

    python analyses/preflight.py --out /tmp/preflight [--model gemma-3-270m] [--dtype auto] [--data-root ../shared/data]

A shard of the full study on Gemma-3-270M runs for hours; this runs the same code paths on it in about half an
hour on 2 cores (float32 on an AMD EPYC, Zen 3, 2026-12-07, each measured once: 1912 s with the code before
commit 4fc40cd, which shares the KL damage's unembedding between texts, and 1792 s after it, with results equal
number for number), so a failure on that architecture shows before the hours are spent. It writes a study folder (``results.json``, ``REPORT.md``, figures) whose numbers mean
nothing at these sizes (two null draws, four test items).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace


def config():
    from persona_circuits.study.config import StudyConfig

    cfg = StudyConfig.quick_preset()
    full = StudyConfig.full()
    # the sizes the timings above were measured at (the quick preset's before 2026-12-07): mbti-ei and an AI task
    # (the paper table's path), 8 + 8 neutral texts, 2 curve and 2 matched draws, decoding on 6 texts x 64 tokens
    return cfg.with_changes(
        sets=replace(cfg.sets, sets=("mbti-ei", "power")),
        damage=replace(cfg.damage, damage_texts=8, fit_texts=8),
        headline=replace(cfg.headline, gate_strengths=full.headline.gate_strengths,
                         steer_all_coefs=full.headline.steer_all_coefs, matched_methods=full.headline.matched_methods),
        nulls=replace(cfg.nulls, curve_draws=2, matched_draws=2),
        analysis=replace(cfg.analysis, neutral_probe_texts=6, neutral_probe_tokens=64))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="study folder to write (a fresh one)")
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    p.add_argument("--data-root", default="../shared/data", help="folder laid out like shared/data (the power task)")
    args = p.parse_args(argv)
    from persona_circuits.model.loading import load_model
    from persona_circuits.study.run import run_study

    model = load_model(args.model, dtype=args.dtype)
    t = time.perf_counter()
    res = run_study(model, args.out, cfg=config(), data_root=args.data_root, command="python " + " ".join(sys.argv))
    print(f"preflight on {args.model}: {time.perf_counter() - t:.0f} s")
    for k, v in sorted(res.timings.items(), key=lambda kv: -kv[1]):
        print(f"  {v:8.1f} s  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
