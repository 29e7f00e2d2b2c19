"""``persona-circuits mask mbti --type INTJ``: an MBTI type's mask composed from the four axis masks."""

from __future__ import annotations

from pathlib import Path

from ..errors import PersonaCircuitsError


def cmd_mask_type(args) -> int:
    """Build the four bundled axes' masks (one method and strength), compose the type's mask and its opposite
    type's (:func:`~persona_circuits.masks.compose.compose_type`), measure each one's KL damage on neutral text and
    write ``OUT/<TYPE>/`` and ``OUT/<OPPOSITE>/`` (mask folders; ``load_masks(OUT)`` reads the pair) with the
    damage in each mask's ``config.extra``, and ``OUT/composition.json``."""
    from .._io import atomic_directory, atomic_write_json, check_parent
    from .common import load_model_from_args
    from ..masks.compose import build_axis_masks, check_type, compose_type, infer_rule, opposite_type
    from ..measure.damage import kl_damage, neutral_reference
    from ..masks.build import check_sparsity

    if args.dataset != "mbti":
        raise PersonaCircuitsError(f"--type composes the bundled MBTI axes: give the dataset mbti, not {args.dataset!r}")
    if args.type is None:
        raise PersonaCircuitsError("mask mbti needs --type (one of the 16 MBTI types, e.g. INTJ)")
    if args.null_draws or args.signatures:
        raise PersonaCircuitsError("--null-draws and --signatures are not available with --type")
    t = check_type(args.type)
    check_sparsity(args.sparsity)
    for opt, v in (("--calib-size", args.calib_size), ("--batch-size", args.batch_size),
                   ("--damage-texts", args.damage_texts)):
        if v is not None and v < 1:
            raise PersonaCircuitsError(f"{opt} must be >= 1, got {v}")
    check_parent(Path(args.out))
    model = load_model_from_args(args)
    axes = build_axis_masks(model, args.method, sparsity=args.sparsity, calib_size=args.calib_size, tokens=args.tokens,
                            batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress,
                            statistic=args.statistic, modules=args.modules, phi=args.phi, tau=args.tau,
                            text_stat=args.text_stat)
    rule = infer_rule(axes["mbti-ei"])
    reference = neutral_reference(model, n_texts=args.damage_texts, batch_size=min(args.batch_size, 8))
    masks, summary = {}, {"type": t, "method": args.method, "sparsity": args.sparsity, "rule": rule, "masks": {}}
    for name in (t, opposite_type(t)):
        m = compose_type(axes, name, rule=rule)
        kl, ci, _, _ = kl_damage(model, m, reference, seed=args.seed)
        m.config.extra.update(damage_kl=kl, damage_kl_ci95=list(ci), damage_texts=len(reference.ids))
        masks[name] = m
        summary["masks"][name] = {"density": m.density(), "damage_kl": kl, "damage_kl_ci95": list(ci),
                                  "parts": m.config.extra["composed"]["parts"]}
    with atomic_directory(args.out) as tmp:
        for name, m in masks.items():
            m.save(tmp / name)
        atomic_write_json(tmp / "composition.json", summary)
    for name in masks:
        s = summary["masks"][name]
        print(f"{name}: {args.method} (sparsity {args.sparsity}, rule {rule}), density {s['density']:.4f}, "
              f"damage {s['damage_kl']:.4f} nats/token KL on {len(reference.ids)} neutral texts")
    print(f"wrote the masks of {t} and {opposite_type(t)} to {args.out}")
    return 0
