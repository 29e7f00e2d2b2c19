"""Command line interface: ``persona-circuits {personas,signatures,mask,evaluate,generate,export,reproduce,merge,verdicts,figures}``.

Errors on bad input print one line, ``persona-circuits: error: ...``, on stderr and exit with 2. Loading
a model prints one line naming the dtype and why it was chosen. This module and the parser import
neither torch nor transformers: each handler imports what it needs, so ``--help`` and argument errors
answer at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .common import check_positive, command_scope, load_model_from_args, mask_gamma
from ..errors import PersonaCircuitsError
from ..options import (DEFAULT_DAMAGE_TEXTS, DEFAULT_SCORING, DEFAULT_TEXT_STAT, DTYPE_LOGGER, DTYPES, METHODS, SCORINGS,
                      STATISTICS, TEXT_STATISTICS, TOKEN_SELECTIONS)

EPILOG = "DATASET is a bundled persona set (see `persona-circuits personas`) or a path: a paper-layout folder " \
         "(train.csv, test_ab.csv), a package-format folder (persona.json, items.jsonl) or an Anthropic .jsonl file."


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and run options")
    g.add_argument("--model", default=None, help="embedded model name (default smollm2-135m-instruct; also gemma-3-270m), "
                   "a local folder or .gguf file, or a Hugging Face id (only this contacts the hub)")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="weights' dtype: auto (default: bfloat16 on a CPU with AVX512-BF16 or AMX and on a CUDA device "
                        "with native bfloat16, float32 elsewhere), float32, bfloat16 or float16")
    g.add_argument("--seed", type=int, default=0, help="seed for random masks and bootstrap intervals (default 0)")
    g.add_argument("--batch-size", type=int, default=16, help="texts per forward pass (default 16)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument("--device-map", default=None, help="shard the model over several devices (needs accelerate): auto, "
                   "balanced, sequential or a JSON object of module -> device; overrides --device")


def build_parser() -> argparse.ArgumentParser:
    """The ``persona-circuits`` parser (imports neither torch nor transformers: the study's ``reproduce``
    sub-parser is light too)."""
    p = argparse.ArgumentParser(prog="persona-circuits", description="Find persona subnetworks in a language model "
                                "(activation signatures, Wanda / contrastive masks, evaluation).", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("personas", help="list the bundled persona sets")
    s.add_argument("--json", action="store_true", help="print JSON")

    tokens_help = ("positions whose statistics are recorded: answer (the answer tokens, default), predict (the positions "
                   "that predict the answer tokens, i.e. those the evaluation scores) or all (prompt included)")
    s = sub.add_parser("signatures", help="record the activation signatures of both poles", epilog=EPILOG)
    s.add_argument("dataset")
    s.add_argument("--out", required=True, help="output .safetensors file")
    s.add_argument("--calib-size", type=int, default=None, help="use the first N calibration items (default all)")
    s.add_argument("--tokens", choices=TOKEN_SELECTIONS, default="answer", help=tokens_help)
    _common(s)

    _add_mask_parser(sub, tokens_help)

    s = sub.add_parser("evaluate", help="two-way-choice alignment: dense model and, with --mask, each pole's mask", epilog=EPILOG)
    s.add_argument("dataset")
    s.add_argument("--mask", default=None, help="folder written by `mask`")
    s.add_argument("--limit", type=int, default=None, help="evaluate the first N held-out items")
    s.add_argument("--gamma", type=float, default=None,
                   help="soft mask: keep this fraction of pruned weights (default 0; a projection-gate mask: its own 1 - s)")
    s.add_argument("--damage-texts", type=int, default=DEFAULT_DAMAGE_TEXTS,
                   help=f"neutral texts for the KL damage of each mask (default {DEFAULT_DAMAGE_TEXTS})")
    s.add_argument("--json", action="store_true", help="one JSON object per condition and pole, and one per mask pair "
                   "with \"pole\": \"contrast\" (pole contrast, damage and, with null pairs, the null test)")
    s.add_argument("--scoring", choices=SCORINGS, default=DEFAULT_SCORING,
                   help="which choice \"accuracy\" reports: summed (default: the answers' summed log-likelihood), "
                        "per-token (their mean log-likelihood per answer token) or released (the paper's released code: "
                        "the mean next-token loss over the whole text, persona system prompt and question included, "
                        "with each pole's persona system prompt on, also under its mask)")
    _common(s)

    s = sub.add_parser("generate", help="answer a question, optionally with a pole's mask on")
    s.add_argument("question")
    s.add_argument("--mask", default=None, help="folder written by `mask`")
    s.add_argument("--pole", default=None, help="which pole's mask (required when the folder holds several)")
    s.add_argument("--max-new-tokens", type=int, default=64)
    _common(s)

    from .reproduce import add_merge_parser, add_reproduce_parser, add_verdicts_parser  # noqa: PLC0415

    add_reproduce_parser(sub, _common)
    add_merge_parser(sub)
    add_verdicts_parser(sub)
    _add_figures_parser(sub)
    _add_export_parser(sub)
    _add_overwrite_options(sub)
    return p


def _add_mask_parser(sub, tokens_help: str) -> None:
    s = sub.add_parser("mask", help="build the masks of both poles", epilog=EPILOG)
    s.add_argument("dataset")
    s.add_argument("--method", choices=METHODS, required=True,
                   help="contrastive-removal: each pole's mask removes the top --sparsity fraction of every row by "
                        "the opposite pole's contrastive score (use 0.001-0.05); the others keep the top of each row")
    s.add_argument("--sparsity", type=float, required=True,
                   help="fraction of each row's weights removed, in [0, 1) (the method's strength dial; projection-gate: "
                        "the gate strength s, its weights scaled by 1 - s)")
    s.add_argument("--out", required=True, help="output folder (one sub-folder per pole)")
    s.add_argument("--calib-size", type=int, default=None, help="use the first N calibration items (default all)")
    s.add_argument("--statistic", choices=STATISTICS, default="l2",
                   help="channel magnitude: l2 (released code, default), mean_abs (paper's equation), rms (Wanda)")
    s.add_argument("--modules", choices=("all", "attn", "mlp"), default="all", help="which layers to mask (default all)")
    s.add_argument("--tokens", choices=TOKEN_SELECTIONS, default="answer", help=tokens_help)
    s.add_argument("--text-stat", choices=TEXT_STATISTICS, default=DEFAULT_TEXT_STAT,
                   help="per-text statistic of the contrastive z-score: rms (L2 / sqrt(tokens), which does not grow with "
                        "answer length; default) or l2 (per-text L2 norm, as the paper and the released code)")
    s.add_argument("--phi", choices=("relu", "softplus"), default="relu", help="contrastive rectifier (default relu)")
    s.add_argument("--tau", type=float, default=2.0, help="softplus temperature (default 2)")
    s.add_argument("--signatures", default=None, help="reuse a signature file written by `signatures`")
    s.add_argument("--null-draws", type=int, default=0,
                   help="also write K label-swapped null pairs of the same method and strength under OUT/nulls/<k>/ "
                        "(each calibration item's two answers assigned to pseudo-poles at random; default 0)")
    s.add_argument("--null-swap", choices=("balanced", "coins"), default="balanced", help="with --null-draws: swap exactly "
                   "half the calibration items per draw (balanced, default) or each by a fair coin (coins, the older design)")
    s.add_argument("--type", default=None, help="with the dataset mbti: compose the MBTI type's mask (any of the 16, "
                   "e.g. INTJ) and its opposite's from the four bundled axes' masks, with their damage")
    s.add_argument("--damage-texts", type=int, default=DEFAULT_DAMAGE_TEXTS,
                   help=f"with --type: neutral texts for the KL damage of each composed mask (default {DEFAULT_DAMAGE_TEXTS})")
    _common(s)


def _add_export_parser(sub) -> None:
    s = sub.add_parser("export", help="write the model with a pole's mask applied as a Hugging Face checkpoint",
                       description="Write the model with one pole's mask applied as a standard Hugging Face checkpoint "
                                   "(config.json, model.safetensors, tokenizer, README.md model card) that "
                                   "transformers.AutoModelForCausalLM.from_pretrained loads without this package.")
    s.add_argument("--mask", required=True, help="folder written by `mask`")
    s.add_argument("--pole", default=None, help="which pole's mask (required when the folder holds several)")
    s.add_argument("--out", required=True, help="output folder (the checkpoint)")
    s.add_argument("--gamma", type=float, default=None,
                   help="soft mask: keep this fraction of pruned weights (default 0; a projection-gate mask: its own 1 - s)")
    _common(s)


def _add_figures_parser(sub) -> None:
    s = sub.add_parser("figures", help="draw the study's figures from a results.json",
                       description="Draw every figure of a study (or those named in --only) from its results.json, "
                                   "in each --format; a figure whose data the results lack is skipped with a message.")
    s.add_argument("results", help="results.json written by `persona-circuits reproduce`")
    s.add_argument("--out", required=True, help="output folder (created)")
    s.add_argument("--only", default=None, help="comma-separated figure names (default: every figure)")
    s.add_argument("--format", default="png", help="comma-separated formats among png, pdf, svg (default png)")


def _add_overwrite_options(sub) -> None:
    for name in ("signatures", "mask", "export"):
        sub.choices[name].add_argument("--overwrite", action="store_true",
                                       help="replace an existing output (refused otherwise)")


def _check_overwrite(args) -> None:
    """Commands with --overwrite refuse to replace an existing --out without it (before any work)."""
    if getattr(args, "overwrite", True) or not getattr(args, "out", None):
        return
    if Path(args.out).exists():
        from ..errors import OutputError

        raise OutputError(f"output already exists: {args.out} (pass --overwrite to replace it)")


def _pick_mask(path: str, pole: str | None):
    from ..masks.build import load_masks

    masks = load_masks(path)
    if pole is None and len(masks) > 1:
        raise PersonaCircuitsError(f"--pole is required: the mask folder holds {', '.join(masks)}")
    key = pole or next(iter(masks))
    if key not in masks:
        raise PersonaCircuitsError(f"no mask for pole {key!r}; the folder holds {', '.join(masks)}")
    return key, masks[key]


class _StderrLine(logging.Handler):
    """Shows the loader's dtype record as one ``persona-circuits: dtype ...`` line on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"persona-circuits: {record.getMessage()}", file=sys.stderr)


def cmd_personas(args) -> int:
    from ..data import load_persona_set, bundled_personas

    rows = []
    for name in bundled_personas():
        ps = load_persona_set(name)
        rows.append({"name": name, "poles": ps.pole_names, "calibration": len(ps.calibration), "test": len(ps.test),
                     "description": ps.description.split(". ")[0]})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']:10s} {' / '.join(r['poles']):24s} calibration {r['calibration']:4d}  test {r['test']:4d}  {r['description']}")
    return 0


def cmd_signatures(args) -> int:
    from .._io import check_parent
    from ..data import load_persona_set
    from ..masks.statistics import record_persona_signatures, save_signatures

    check_positive("--calib-size", args.calib_size)
    check_positive("--batch-size", args.batch_size)
    ps = load_persona_set(args.dataset)
    check_parent(args.out)
    model = load_model_from_args(args)
    sigs = record_persona_signatures(model, ps, calib_size=args.calib_size, tokens=args.tokens,
                                     batch_size=args.batch_size, progress=not args.no_progress)
    save_signatures(args.out, sigs)
    print(f"wrote signatures of {', '.join(sigs)} ({ps.name}, {sigs[ps.pole_names[0]].n_texts} texts per pole) to {args.out}")
    return 0


def cmd_mask(args) -> int:
    if args.dataset == "mbti" or args.type is not None:
        from .mbti_types import cmd_mask_type

        return cmd_mask_type(args)
    from .._io import atomic_directory, check_parent
    from ..data import load_persona_set
    from ..masks.build import NULLS_DIRNAME, safe_name, check_sparsity
    from ..masks.registry import build_masks
    from ..measure.nulls import null_mask_pairs
    from ..masks.statistics import load_signatures, persona_signatures, record_persona_per_text

    check_sparsity(args.sparsity)
    check_positive("--calib-size", args.calib_size)
    check_positive("--batch-size", args.batch_size)
    if args.null_draws < 0:
        raise PersonaCircuitsError(f"--null-draws must be >= 0, got {args.null_draws}")
    ps = load_persona_set(args.dataset)
    if args.method == "projection-gate" and (args.signatures or args.null_draws):
        raise PersonaCircuitsError("projection-gate records its own residual directions: drop --signatures and --null-draws")
    if args.null_draws:
        if args.signatures:
            raise PersonaCircuitsError("--null-draws needs per-text statistics, which a signature file does not hold: drop --signatures")
        if args.method == "random" or len(ps.poles) != 2:
            raise PersonaCircuitsError("--null-draws needs a persona pair and a method that uses its data (not random)")
    check_parent(Path(args.out))
    model = load_model_from_args(args)
    kw = dict(sparsity=args.sparsity, statistic=args.statistic, modules=args.modules, phi=args.phi, tau=args.tau,
              text_stat=args.text_stat)
    stats = None
    if args.method == "projection-gate":
        from ..masks.gate import gate_directions

        sigs, kw["directions"] = gate_directions(model, ps, n_calib=args.calib_size, tokens=args.tokens,
                                                 batch_size=args.batch_size, progress=not args.no_progress)
    elif args.signatures:
        sigs = load_signatures(args.signatures)
    else:
        stats = record_persona_per_text(model, ps, calib_size=args.calib_size, tokens=args.tokens,
                                        batch_size=args.batch_size, progress=not args.no_progress)
        sigs = persona_signatures(ps, stats, calib_size=args.calib_size)
    masks = build_masks(model, args.method, sigs, seed=args.seed, **kw)
    nulls = []
    if args.null_draws:
        a, b = ps.pole_names
        nulls = null_mask_pairs(model, args.method, stats[a], stats[b], draws=args.null_draws, seed=args.seed,
                                poles=(a, b), dataset=ps.name, calibration_hash=ps.subset(args.calib_size).content_hash(),
                                swap=args.null_swap, **kw)
    with atomic_directory(args.out) as tmp:
        for pole, m in masks.items():
            m.save(tmp / safe_name(pole))
        for i, pair in enumerate(nulls):
            (tmp / NULLS_DIRNAME / str(i)).mkdir(parents=True)
            for pole, m in pair.items():
                m.save(tmp / NULLS_DIRNAME / str(i) / safe_name(pole))
    dens = ", ".join(f"{p}: density {m.density():.4f}" for p, m in masks.items())
    extra = f"; {len(nulls)} label-swapped null pair(s) in {Path(args.out) / 'nulls'}" if nulls else ""
    print(f"wrote {args.method} masks (sparsity {args.sparsity}) to {args.out} ({dens}){extra}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import cmd_evaluate as run

    return run(args)


def cmd_generate(args) -> int:
    from ..measure.evaluation import generate
    from ..model.interventions import apply_mask
    from ..masks.build import load_masks

    mask = None
    if args.mask:
        masks = load_masks(args.mask)
        if args.pole is None and len(masks) > 1:
            raise PersonaCircuitsError(f"--pole is required: the mask folder holds {', '.join(masks)}")
        key = args.pole or next(iter(masks))
        if key not in masks:
            raise PersonaCircuitsError(f"no mask for pole {key!r}; the folder holds {', '.join(masks)}")
        mask = masks[key]
    model = load_model_from_args(args)
    with apply_mask(model, mask, gamma=mask_gamma(mask, None)):
        print(generate(model, args.question, max_new_tokens=args.max_new_tokens, seed=args.seed))
    return 0


def cmd_export(args) -> int:
    from .._io import check_parent
    from ..model.export import export_model

    if args.gamma is not None and not 0.0 <= args.gamma <= 1.0:
        raise PersonaCircuitsError(f"--gamma must be in [0, 1], got {args.gamma}")
    check_parent(args.out)
    key, mask = _pick_mask(args.mask, args.pole)
    model = load_model_from_args(args)
    mask.check_model(model)
    export_model(model, mask, args.out, overwrite=args.overwrite, gamma=mask_gamma(mask, args.gamma))
    print(f"wrote the {key} persona model ({mask.config.method}, sparsity {mask.config.sparsity:g}, "
          f"density {mask.density():.3f}) to {args.out}")
    return 0


def cmd_figures(args) -> int:
    from ..reporting.figures import FIGURES, write_figures
    from ..reporting.figures.style import FORMATS

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    if not formats or any(f not in FORMATS for f in formats):
        raise PersonaCircuitsError(f"--format takes {', '.join(FORMATS)} (comma-separated), got {args.format!r}")
    if only is not None and (not only or any(n not in FIGURES for n in only)):
        raise PersonaCircuitsError(f"--only takes figure names among {', '.join(FIGURES)}, got {args.only!r}")
    for path in write_figures(args.results, args.out, formats=formats, only=only):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"personas": cmd_personas, "signatures": cmd_signatures, "mask": cmd_mask,
                "evaluate": cmd_evaluate, "generate": cmd_generate, "export": cmd_export, "figures": cmd_figures}
    dtype_log = logging.getLogger(DTYPE_LOGGER)  # load_model's "dtype ... (reason)" record, shown on stderr
    saved = dtype_log.level, dtype_log.propagate
    handler = _StderrLine()
    dtype_log.addHandler(handler)
    dtype_log.setLevel(logging.INFO)
    dtype_log.propagate = False
    try:
        _check_overwrite(args)
        with command_scope():
            if args.command in ("reproduce", "merge", "verdicts"):
                from . import reproduce as command

                return {"reproduce": command.cmd_reproduce, "merge": command.cmd_merge,
                        "verdicts": command.cmd_verdicts}[args.command](args)
            return handlers[args.command](args)
    except PersonaCircuitsError as exc:
        print(f"persona-circuits: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("persona-circuits: interrupted", file=sys.stderr)
        return 130
    finally:
        dtype_log.removeHandler(handler)
        dtype_log.setLevel(saved[0])
        dtype_log.propagate = saved[1]
