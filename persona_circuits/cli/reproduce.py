"""``persona-circuits reproduce``: its sub-parser and handler. The CLI imports this module to build its parser,
so it imports nothing heavy at module level; nothing here imports the CLI (the global options arrive as the
``common`` function)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path


def add_reproduce_parser(sub, common) -> None:
    s = sub.add_parser("reproduce", help="run the whole study: baselines, masks, nulls, analyses; write results.json, REPORT.md, figures",
                       description="Run the whole study on the model (default: embedded SmolLM2-135M-Instruct) for every "
                                   "bundled MBTI persona pair and, with --data-root, the paper's AI-persona tasks, or for "
                                   "the sets named in --sets. Stages are cached under OUT/cache; rerunning the same command "
                                   "resumes. One process writes a folder at a time (a lock in OUT).")
    s.add_argument("--out", required=True, help="output folder (created; resumed if it holds the same study)")
    s.add_argument("--quick", action="store_true", help="reduced run (about 4.5 min in float32 on a 2-core AVX2-only CPU): every stage on mbti-ei, a few items, "
                   "the headline with its nulls (with --sets: on every named set, e.g. mbti-ei,power with --data-root)")
    s.add_argument("--sets", default=None, help="comma-separated persona sets: bundled names (mbti-ei), AI-task names (power; "
                   "needs --data-root), paths the loaders read (a folder in the package format or the paper's CSV layout, "
                   "a package or Anthropic .jsonl file) or NAME=PATH; default: every bundled set and, with --data-root, "
                   "every AI task (with --quick: mbti-ei)")
    s.add_argument("--data-root", default=None, help="folder laid out like shared/data (ai_persona/{power,wealth,hallucination})")
    s.add_argument("--cache-from", action="append", default=None, metavar="DIR",
                   help="output folder of another study: its cached stage results are reused where their keys match "
                        "(same model, settings and inputs), e.g. a seven-set run on top of a four-set one; repeatable")
    g = s.add_argument_group("shards and executors")
    g.add_argument("--shard", default=None, metavar="SET",
                   help="compute one shard of the study into --out (its shard.json): a set of the study, or "
                        "'cross' (the 16 types and the atlas; needs the set shards, see --set-shards); "
                        "`persona-circuits merge` joins the shards. The other options must be the whole study's: "
                        "a shard beside shards (or checkpoints) of another study is refused before computing; "
                        "--dtype auto takes the dtype of the study's shards or of the shard's checkpoint")
    g.add_argument("--cache", default=None, metavar="DIR",
                   help="with --shard: the work folder holding the stage cache (default OUT/cache; never commit it); "
                        "the shards of one study may share one, one at a time")
    g.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="with --shard: also copy the shard's stage results to DIR as they are computed (all but the "
                        "calibration statistics; a few MB, meant to be committed while a long shard runs); rerunning "
                        "the command resumes from DIR on any machine (in DIR's dtype); DIR is removed once the shard "
                        "is written")
    g.add_argument("--set-shards", nargs="+", default=None, metavar="DIR",
                   help="with --shard cross: the folders of every set shard (default: the folders next to --out "
                        "holding a shard.json)")
    g.add_argument("--executor", choices=("process", "ray"), default="process",
                   help="process (default): the whole study in this process; ray: every shard as a Ray task "
                        "(a GPU each on CUDA), the cross shard after the set shards, then the merge into --out "
                        "(shards under OUT/shards/)")
    g.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --executor ray: the Ray cluster to join (default: start a local Ray)")
    g.add_argument("--ray-cpus", type=int, default=None, metavar="N",
                   help="with --executor ray and no address: CPUs of the local Ray, one task per CPU "
                        "(default: half the machine's cores)")
    g.add_argument("--ray-threads", type=int, default=None, metavar="N",
                   help="with --executor ray: torch threads per task (default: Ray's, one per CPU of the task); a "
                        "shard's numbers equal a sequential run's at the same thread count, else differ in the last digits")
    common(s)


def config_from_args(args):
    """The study's settings from the command line: the preset, the seed, the batch size and ``--sets``."""
    from ..study.config import StudyConfig, StudyError

    cfg = StudyConfig.quick_preset() if args.quick else StudyConfig.full()
    cfg.seed, cfg.batch_size = args.seed, args.batch_size
    if args.sets is not None:
        names = tuple(n.strip() for n in args.sets.split(",") if n.strip())
        if not names:
            raise StudyError("--sets: no persona set given")
        cfg.sets = replace(cfg.sets, sets=names)
    return cfg


def settle_sets(cfg, args, root):
    """The sets the command will run (every one readable, before the model is loaded) and the settings they
    imply: the analysis set falls back to the first set; with ``--quick --sets`` every named set gets its headline."""
    from ..study.sets import study_sets

    sets = study_sets(cfg, root)
    if cfg.sets.analysis_set not in {s.name for s in sets}:
        cfg.sets = replace(cfg.sets, analysis_set=sets[0].name)
    if cfg.quick and args.sets is not None:  # the sets a user names each get their headline, nulls and damage
        cfg.headline = replace(cfg.headline, curve_sets=tuple(s.name for s in sets))
    return cfg, sets


def _check_executor_args(args) -> None:
    from ..study.config import StudyError

    if args.shard is not None and args.executor != "process":
        raise StudyError("--shard computes one shard in this process: it takes no --executor")
    if args.shard is None and (args.cache is not None or args.set_shards is not None or args.checkpoint is not None):
        raise StudyError("--cache, --checkpoint and --set-shards go with --shard")
    if args.executor != "ray" and (args.ray_address, args.ray_cpus, args.ray_threads) != (None, None, None):
        raise StudyError("--ray-address, --ray-cpus and --ray-threads go with --executor ray")
    for flag, v in (("--ray-cpus", args.ray_cpus), ("--ray-threads", args.ray_threads)):
        if v is not None and v < 1:
            raise StudyError(f"{flag} must be at least 1, got {v}")


def _model_loader(args):
    """A picklable function that loads the model the global options name (for Ray's workers)."""
    import argparse
    from functools import partial

    from .common import load_model_from_args

    keep = {k: getattr(args, k, None) for k in ("model", "device", "dtype", "device_map", "no_progress")}
    return partial(load_model_from_args, argparse.Namespace(**keep))


def cmd_reproduce(args) -> int:
    from ..errors import OutputError
    from ..study.sets import check_data_root

    _check_executor_args(args)
    cfg = config_from_args(args)
    root = check_data_root(args.data_root)
    cfg, sets = settle_sets(cfg, args, root)
    for d in args.cache_from or []:  # checked before the model is loaded
        if not (Path(d) / "cache").is_dir():
            from ..study.config import StudyError

            raise StudyError(f"--cache-from: {d} is not a study's output folder (no cache folder in it)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a folder: {out}")
    command = "persona-circuits " + " ".join(sys.argv[1:])
    if args.shard is not None:
        from .shard import run_shard_command

        return run_shard_command(args, cfg, root, sets, command)
    if args.executor == "ray":
        from ..study.executors import run_ray

        run_ray(_model_loader(args), out, cfg=cfg, data_root=root, set_names=[s.name for s in sets],
                address=args.ray_address, num_cpus=args.ray_cpus, cuda=str(args.device).startswith("cuda"),
                progress=not args.no_progress, command=command, threads=args.ray_threads)
        return 0
    from .common import load_model_from_args
    from ..study.run import run_study

    model = load_model_from_args(args)
    run_study(model, out, cfg=cfg, data_root=root, progress=not args.no_progress, command=command,
              cache_from=args.cache_from)
    return 0


def add_merge_parser(sub) -> None:
    s = sub.add_parser("merge", help="merge study shards (reproduce --shard) into results.json, REPORT.md and figures",
                       description="Merge the shards of one study (every set's `reproduce --shard SET` and the cross "
                                   "shard's `reproduce --shard cross`) into one results.json, REPORT.md and figures; "
                                   "the verdicts are applied to the merged results. No model is loaded. Shards of "
                                   "different studies (model, dtype, settings, set list, code) and duplicate or "
                                   "missing shards are refused, naming the difference.")
    s.add_argument("shards", nargs="+", help="shard folders (each holding a shard.json)")
    s.add_argument("--out", required=True, help="output folder (created)")
    s.add_argument("--partial", action="store_true", help="merge the shards there are (an interim report of a study "
                   "computed piece by piece): the missing shards are named at the top of the report and in "
                   "meta.missing_shards, and the pooled tests pool only the sets present")


def cmd_merge(args) -> int:
    from ..study.merge import merge_shards

    out = Path(args.out)
    flags = ["--partial"] if args.partial else []
    merge_shards(args.shards, out, command="persona-circuits merge " + " ".join([*args.shards, "--out", args.out, *flags]),
                 partial=args.partial)
    print(f"merged {len(args.shards)} shards into {out / 'results.json'}, {out / 'REPORT.md'} and {out / 'figures'}")
    return 0


def add_verdicts_parser(sub) -> None:
    s = sub.add_parser("verdicts", help="recompute a study's verdicts from its stored null draws (nothing re-measured)",
                       description="Recompute every verdict of a study's results.json (null tests, the symmetry check, "
                                   "Holm's adjustment, the detectable shifts) from the contrasts and null draws it stores, "
                                   "with this version's rules, and rewrite the file atomically. No model is loaded and no "
                                   "measurement changes; meta.verdicts_command records the command. Redraw the report "
                                   "and figures from it afterwards (make report; persona-circuits figures).")
    s.add_argument("results", help="results.json written by `persona-circuits reproduce` (the current schema)")


def cmd_verdicts(args) -> int:
    import json

    from ..errors import OutputError
    from ..results import SCHEMA_VERSION, load_results, write_results
    from ..results.upgrade import is_current
    from ..study.verdicts import apply_verdicts

    path = Path(args.results)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from exc
    if not is_current(d):
        raise OutputError(f"{path}: not the results of a schema-{SCHEMA_VERSION} study (the verdicts need its "
                          "damage-matched draws)")
    results = apply_verdicts(load_results(d))
    results.meta.verdicts_command = "persona-circuits " + " ".join(["verdicts", str(args.results)])
    write_results(results, path)
    print(f"recomputed the verdicts of {path}")
    return 0
