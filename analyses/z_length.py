"""Is the contrastive z-score length-driven? Per-text L2 vs per-text RMS, with a label-swap control.

    python analyses/z_length.py --data-root ../shared/data --out figures [--calib-size 64] [--draws 32]

Records per-text statistics of both poles (answer tokens) on the default model for mbti-ei and the
hallucination and power tasks, and writes ``OUT/z_length.json`` and ``OUT/z_length.png``: per layer the
share of channels with z > 0 for each per-text statistic, and, over label-swapped draws, the
correlation of the mean z with the pseudo-poles' token-count difference
(:func:`persona_circuits.analysis.zlength.z_length_diagnostic`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from persona_circuits._io import atomic_write_bytes, atomic_write_json  # noqa: E402

SETS = ("mbti-ei", "ai_persona/hallucination", "ai_persona/power")


def run(args) -> dict:
    from persona_circuits import load_model, load_persona_set
    from persona_circuits.analysis.zlength import z_length_diagnostic
    from persona_circuits.masks.statistics import record_persona_per_text

    model = load_model(dtype=args.dtype)
    out = {"model": "smollm2-135m-instruct", "dtype": args.dtype, "calib_size": args.calib_size, "tokens": "answer",
           "sets": {}}
    for name in SETS:
        src = name if "/" not in name else Path(args.data_root) / name
        ps = load_persona_set(str(src))
        st = record_persona_per_text(model, ps, calib_size=args.calib_size, tokens="answer", batch_size=16)
        a, b = ps.pole_names
        out["sets"][ps.name] = {"poles": [a, b], **z_length_diagnostic(st[a], st[b], draws=args.draws, seed=args.seed)}
        d = out["sets"][ps.name]
        print(f"{ps.name}: length difference {d['length_difference']:+.1f} tokens ({100 * d['share_items_a_longer']:.0f} % of "
              f"items {a} longer); share z>0 l2 {d['l2']['share_positive']:.2f}, rms {d['rms']['share_positive']:.2f}; "
              f"corr(mean z, length diff) over {args.draws} label-swapped draws: l2 {d['l2']['corr_with_length_difference']:+.2f}, "
              f"rms {d['rms']['corr_with_length_difference']:+.2f}", file=sys.stderr)
    return out


def figure(res: dict):
    sets = list(res["sets"])
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.4), sharey=True)
    for ax, name in zip(axes, sets):
        d = res["sets"][name]
        for kind, style in (("l2", "-"), ("rms", "--")):
            ax.plot(range(len(d[kind]["share_positive_per_layer"])), d[kind]["share_positive_per_layer"], style,
                    label=f"{kind} (corr with length {d[kind]['corr_with_length_difference']:+.2f})")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_title(f"{name}: {d['poles'][0]} longer in {100 * d['share_items_a_longer']:.0f} %", fontsize=9)
        ax.set_xlabel("prunable layer (forward order)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("share of channels with z > 0")
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default="../shared/data")
    p.add_argument("--out", default="figures")
    p.add_argument("--calib-size", type=int, default=64)
    p.add_argument("--draws", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--from-json", default=None, help="redraw the figure from an existing z_length.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    res = json.loads(Path(args.from_json).read_text()) if args.from_json else run(args)
    if not args.from_json:
        atomic_write_json(out / "z_length.json", res)
    import io

    buf = io.BytesIO()
    figure(res).savefig(buf, format="png", dpi=110, metadata={"Software": None})
    atomic_write_bytes(out / "z_length.png", buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
