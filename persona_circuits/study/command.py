"""``persona-circuits reproduce``: its sub-parser and handler. The CLI imports this module; nothing
here imports the CLI (the global options arrive as the ``common`` function)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import OutputError
from .plan import StudyConfig, StudyError, check_data_root
from .run import run_study


def add_reproduce_parser(sub, common) -> None:
    s = sub.add_parser("reproduce", help="run the whole study: baselines, masks, analyses; write results.json, REPORT.md, figures",
                       description="Run the whole study on the model (default: embedded SmolLM2-135M-Instruct) for every "
                                   "bundled MBTI persona pair and, with --data-root, the paper's AI-persona tasks. "
                                   "Stages are cached under OUT/cache; rerunning the same command resumes.")
    s.add_argument("--out", required=True, help="output folder (created; resumed if it holds the same study)")
    s.add_argument("--quick", action="store_true", help="reduced run (about 2 min on 2 cores in bfloat16): one MBTI set (mbti-ei) and, "
                   "with --data-root, one AI task (power), a few items each, fewer sweep points")
    s.add_argument("--sets", default=None, help="comma-separated persona sets to run (default: every bundled MBTI set and, "
                   "with --data-root, every AI task; with --quick: mbti-ei and power), e.g. mbti-ei,power")
    s.add_argument("--data-root", default=None, help="folder laid out like shared/data (ai_persona/{power,wealth,hallucination})")
    common(s)


def _load(args):
    """The model named by the global options (as every other command loads it)."""
    from ..models import load_model, parse_device_map

    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    return load_model(args.model, device=args.device, dtype=args.dtype,
                      device_map=parse_device_map(getattr(args, "device_map", None)), progress=not args.no_progress)


def cmd_reproduce(args) -> int:
    cfg = StudyConfig.quick_config() if args.quick else StudyConfig()
    cfg.seed = args.seed
    if args.sets is not None:
        from ..data import bundled_personas
        from .plan import AI_TASKS

        names = tuple(n.strip() for n in args.sets.split(",") if n.strip())
        known = set(bundled_personas()) | set(AI_TASKS)
        bad = [n for n in names if n not in known]
        if not names or bad:
            raise StudyError(f"--sets: unknown persona set(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(sorted(known))}")
        if any(n in AI_TASKS for n in names) and args.data_root is None:
            raise StudyError("--sets names an AI-persona task: give --data-root too")
        cfg.sets = names
        if cfg.analysis_set not in names:
            cfg.analysis_set = names[0]
    cfg.batch_size = args.batch_size
    if args.data_root is not None:
        check_data_root(args.data_root)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path exists and is not a folder: {out}")
    model = _load(args)
    run_study(model, out, cfg=cfg, data_root=args.data_root, progress=not args.no_progress,
              command="persona-circuits " + " ".join(sys.argv[1:]))
    return 0
