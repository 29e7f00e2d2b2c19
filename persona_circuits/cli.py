"""Command line interface: ``persona-circuits {personas,signatures,mask,evaluate,generate,export,reproduce}``.

Errors on bad input print one line, ``persona-circuits: error: ...``, on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import PersonaCircuitsError

EPILOG = "DATASET is a bundled persona set (see `persona-circuits personas`) or a path: a paper-layout folder " \
         "(train.csv, test_ab.csv), a package-format folder (persona.json, items.jsonl) or an Anthropic .jsonl file."


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and run options")
    g.add_argument("--model", default=None, help="embedded model name (default smollm2-135m-instruct; also gemma-3-270m), "
                   "a local folder or .gguf file, or a Hugging Face id (only this contacts the hub)")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    g.add_argument("--seed", type=int, default=0, help="seed for random masks and bootstrap intervals (default 0)")
    g.add_argument("--batch-size", type=int, default=16, help="texts per forward pass (default 16)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument("--device-map", default=None, help="shard the model over several devices (needs accelerate): auto, "
                   "balanced, sequential or a JSON object of module -> device; overrides --device")


def build_parser() -> argparse.ArgumentParser:
    from .masks import METHODS
    from .statistics import STATISTICS, TOKEN_SELECTIONS

    p = argparse.ArgumentParser(prog="persona-circuits", description="Find persona subnetworks in a language model "
                                "(activation signatures, Wanda / contrastive masks, evaluation).", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("personas", help="list the bundled persona sets")
    s.add_argument("--json", action="store_true", help="print JSON")

    s = sub.add_parser("signatures", help="record the activation signatures of both poles", epilog=EPILOG)
    s.add_argument("dataset")
    s.add_argument("--out", required=True, help="output .safetensors file")
    s.add_argument("--calib-size", type=int, default=None, help="use the first N calibration items (default all)")
    s.add_argument("--tokens", choices=TOKEN_SELECTIONS, default="answer", help="statistics over answer tokens (default) or all tokens")
    _common(s)

    s = sub.add_parser("mask", help="build the masks of both poles", epilog=EPILOG)
    s.add_argument("dataset")
    s.add_argument("--method", choices=METHODS, required=True)
    s.add_argument("--sparsity", type=float, required=True, help="fraction of each row's weights removed, in [0, 1)")
    s.add_argument("--out", required=True, help="output folder (one sub-folder per pole)")
    s.add_argument("--calib-size", type=int, default=None, help="use the first N calibration items (default all)")
    s.add_argument("--statistic", choices=STATISTICS, default="l2",
                   help="channel magnitude: l2 (released code, default), mean_abs (paper's equation), rms (Wanda)")
    s.add_argument("--modules", choices=("all", "attn", "mlp"), default="all", help="which layers to mask (default all)")
    s.add_argument("--tokens", choices=TOKEN_SELECTIONS, default="answer", help="statistics over answer tokens (default) or all tokens")
    s.add_argument("--phi", choices=("relu", "softplus"), default="relu", help="contrastive-wanda rectifier (default relu)")
    s.add_argument("--tau", type=float, default=2.0, help="softplus temperature (default 2)")
    s.add_argument("--signatures", default=None, help="reuse a signature file written by `signatures`")
    _common(s)

    s = sub.add_parser("evaluate", help="two-way-choice alignment: dense model and, with --mask, each pole's mask", epilog=EPILOG)
    s.add_argument("dataset")
    s.add_argument("--mask", default=None, help="folder written by `mask`")
    s.add_argument("--limit", type=int, default=None, help="evaluate the first N held-out items")
    s.add_argument("--gamma", type=float, default=0.0, help="soft mask: keep this fraction of pruned weights (default 0)")
    s.add_argument("--json", action="store_true", help="one JSON object per condition and pole")
    _common(s)

    s = sub.add_parser("generate", help="answer a question, optionally with a pole's mask on")
    s.add_argument("question")
    s.add_argument("--mask", default=None, help="folder written by `mask`")
    s.add_argument("--pole", default=None, help="which pole's mask (required when the folder holds several)")
    s.add_argument("--max-new-tokens", type=int, default=64)
    _common(s)

    from .study import add_reproduce_parser  # noqa: PLC0415

    add_reproduce_parser(sub, _common)
    _add_export_parser(sub)
    _add_overwrite_options(sub)
    return p


def _add_export_parser(sub) -> None:
    s = sub.add_parser("export", help="write the model with a pole's mask applied as a Hugging Face checkpoint",
                       description="Write the model with one pole's mask applied as a standard Hugging Face checkpoint "
                                   "(config.json, model.safetensors, tokenizer, README.md model card) that "
                                   "transformers.AutoModelForCausalLM.from_pretrained loads without this package.")
    s.add_argument("--mask", required=True, help="folder written by `mask`")
    s.add_argument("--pole", default=None, help="which pole's mask (required when the folder holds several)")
    s.add_argument("--out", required=True, help="output folder (the checkpoint)")
    s.add_argument("--gamma", type=float, default=0.0, help="soft mask: keep this fraction of pruned weights (default 0)")
    _common(s)


def _add_overwrite_options(sub) -> None:
    for name in ("signatures", "mask", "export"):
        sub.choices[name].add_argument("--overwrite", action="store_true",
                                       help="replace an existing output (refused otherwise)")


def _check_overwrite(args) -> None:
    """Commands with --overwrite refuse to replace an existing --out without it (before any work)."""
    if getattr(args, "overwrite", True) or not getattr(args, "out", None):
        return
    if Path(args.out).exists():
        from .errors import OutputError

        raise OutputError(f"output already exists: {args.out} (pass --overwrite to replace it)")


def _pick_mask(path: str, pole: str | None):
    from .masks import load_masks

    masks = load_masks(path)
    if pole is None and len(masks) > 1:
        raise PersonaCircuitsError(f"--pole is required: the mask folder holds {', '.join(masks)}")
    key = pole or next(iter(masks))
    if key not in masks:
        raise PersonaCircuitsError(f"no mask for pole {key!r}; the folder holds {', '.join(masks)}")
    return key, masks[key]


def _load(args):
    from .models import load_model

    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    return load_model(args.model, device=args.device, dtype=args.dtype, device_map=_device_map(args),
                      progress=not args.no_progress)


def _device_map(args):
    dm = getattr(args, "device_map", None)
    if dm is None or not dm.lstrip().startswith("{"):
        return dm
    try:
        return json.loads(dm)
    except json.JSONDecodeError as exc:
        raise PersonaCircuitsError(f"--device-map: not valid JSON ({exc.msg})") from None


def _positive(name: str, v: int | None) -> None:
    if v is not None and v < 1:
        raise PersonaCircuitsError(f"{name} must be >= 1, got {v}")


def cmd_personas(args) -> int:
    from .data import load_persona_set, bundled_personas

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
    from ._io import check_parent
    from .data import load_persona_set
    from .statistics import record_persona_signatures, save_signatures

    _positive("--calib-size", args.calib_size)
    _positive("--batch-size", args.batch_size)
    ps = load_persona_set(args.dataset)
    check_parent(args.out)
    model = _load(args)
    sigs = record_persona_signatures(model, ps, calib_size=args.calib_size, tokens=args.tokens,
                                     batch_size=args.batch_size, progress=not args.no_progress)
    save_signatures(args.out, sigs)
    print(f"wrote signatures of {', '.join(sigs)} ({ps.name}, {sigs[ps.pole_names[0]].n_texts} texts per pole) to {args.out}")
    return 0


def cmd_mask(args) -> int:
    from ._io import check_parent
    from .data import load_persona_set
    from .masks import build_masks, check_sparsity, save_masks
    from .statistics import load_signatures, record_persona_signatures

    check_sparsity(args.sparsity)
    _positive("--calib-size", args.calib_size)
    _positive("--batch-size", args.batch_size)
    ps = load_persona_set(args.dataset)
    check_parent(Path(args.out))
    model = _load(args)
    if args.signatures:
        sigs = load_signatures(args.signatures)
    else:
        sigs = record_persona_signatures(model, ps, calib_size=args.calib_size, tokens=args.tokens,
                                         batch_size=args.batch_size, progress=not args.no_progress)
    masks = build_masks(model, args.method, sigs, sparsity=args.sparsity, statistic=args.statistic,
                        modules=args.modules, phi=args.phi, tau=args.tau, seed=args.seed)
    save_masks(args.out, masks)
    dens = ", ".join(f"{p}: density {m.density():.3f}" for p, m in masks.items())
    print(f"wrote {args.method} masks (sparsity {args.sparsity}) to {args.out} ({dens})")
    return 0


def cmd_evaluate(args) -> int:
    from .data import load_persona_set
    from .evaluation import score_choices, summarize
    from .interventions import apply_mask
    from .masks import load_masks

    _positive("--limit", args.limit)
    _positive("--batch-size", args.batch_size)
    ps = load_persona_set(args.dataset)
    items = ps.test[: args.limit] if args.limit else ps.test
    if not items:
        raise PersonaCircuitsError(f"{ps.name}: no held-out items to evaluate")
    masks = load_masks(args.mask) if args.mask else {}
    model = _load(args)
    for m in masks.values():
        m.check_model(model)
    # dense: both poles; a pole's mask: that pole (a mask named after no pole: both poles)
    conditions = [("dense", None, ps.pole_names)] + [
        (f"{m.config.method}:{key}", m, [key] if key in ps.pole_names else ps.pole_names) for key, m in masks.items()]
    results = []
    for cond, mask, poles in conditions:
        with apply_mask(model, mask, gamma=args.gamma):
            scores = score_choices(model, items, batch_size=args.batch_size, progress=False if args.no_progress else cond)
        for pole in poles:
            results.append(summarize(scores, ps.pole_index(pole), condition=cond, pole=pole, seed=args.seed))
    if args.json:
        for r in results:
            d = r.to_dict()
            print(json.dumps({k: d[k] for k in ("condition", "pole", "n", "accuracy", "accuracy_ci95",
                                                "accuracy_length_normalized", "mean_margin")}))
    else:
        print(f"{ps.name}: {len(items)} held-out items; accuracy = share of items where the pole's answer has the higher log-likelihood")
        print(f"{'condition':34s} {'pole':14s} {'n':>4s} {'acc (sum)':>10s} {'95% CI':>15s} {'acc (len-norm)':>15s} {'margin nats/tok':>16s}")
        for r in results:
            ci = f"[{r.accuracy_ci95[0]:.2f}, {r.accuracy_ci95[1]:.2f}]"
            print(f"{r.condition:34s} {r.pole:14s} {r.n:4d} {r.accuracy:10.3f} {ci:>15s} {r.accuracy_length_normalized:15.3f} {r.mean_margin:16.3f}")
    return 0


def cmd_generate(args) -> int:
    from .evaluation import generate
    from .interventions import apply_mask
    from .masks import load_masks

    mask = None
    if args.mask:
        masks = load_masks(args.mask)
        if args.pole is None and len(masks) > 1:
            raise PersonaCircuitsError(f"--pole is required: the mask folder holds {', '.join(masks)}")
        key = args.pole or next(iter(masks))
        if key not in masks:
            raise PersonaCircuitsError(f"no mask for pole {key!r}; the folder holds {', '.join(masks)}")
        mask = masks[key]
    model = _load(args)
    with apply_mask(model, mask):
        print(generate(model, args.question, max_new_tokens=args.max_new_tokens, seed=args.seed))
    return 0


def cmd_export(args) -> int:
    from ._io import check_parent
    from .export import export_model

    if not 0.0 <= args.gamma <= 1.0:
        raise PersonaCircuitsError(f"--gamma must be in [0, 1], got {args.gamma}")
    check_parent(args.out)
    key, mask = _pick_mask(args.mask, args.pole)
    model = _load(args)
    mask.check_model(model)
    export_model(model, mask, args.out, overwrite=args.overwrite, gamma=args.gamma)
    print(f"wrote the {key} persona model ({mask.config.method}, sparsity {mask.config.sparsity:g}, "
          f"density {mask.density():.3f}) to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"personas": cmd_personas, "signatures": cmd_signatures, "mask": cmd_mask,
                "evaluate": cmd_evaluate, "generate": cmd_generate, "export": cmd_export}
    try:
        _check_overwrite(args)
        if args.command == "reproduce":
            from .study import cmd_reproduce

            return cmd_reproduce(args)
        return handlers[args.command](args)
    except PersonaCircuitsError as exc:
        print(f"persona-circuits: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("persona-circuits: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
