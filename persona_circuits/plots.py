"""Figures of the study, each drawn from ``results.json`` (never from typed numbers).

Every function takes the results dict and returns a matplotlib Figure (it never calls ``plt.show``);
:func:`write_figures` saves them all as PNG files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

COND_ORDER = ["dense", "prompt", "rag", "steering", "random-mask", "wanda", "contrastive-wanda",
              "contrastive-sparse", "contrastive-wanda+prompt", "sft"]
COND_LABEL = {"dense": "dense", "prompt": "persona prompt", "rag": "RAG", "steering": "steering",
              "random-mask": "random mask", "wanda": "Wanda mask", "contrastive-wanda": "contrastive Wanda",
              "contrastive-sparse": "contrastive sparse", "contrastive-wanda+prompt": "c-Wanda + prompt",
              "sft": "LoRA SFT"}


def _err(v, ci):
    return [[max(0.0, v - ci[0])], [max(0.0, ci[1] - v)]]


def _grid(n: int, w: float = 4.2, h: float = 3.4, max_cols: int = 4):
    cols = min(max_cols, max(1, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def fig_main_accuracy(results: dict) -> Figure:
    """Length-normalised two-way-choice accuracy per condition and pole, with bootstrap 95 % intervals."""
    sets = list(results["sets"])
    fig, axes = _grid(len(sets), 5.0, 3.6)
    for ax, name in zip(axes, sets):
        s = results["sets"][name]
        poles = s["poles"]
        rows = {(r["condition"], r["pole"]): r for r in s["conditions"]}
        conds = [c for c in COND_ORDER if any((c, p) in rows for p in poles)]
        x = np.arange(len(conds))
        for j, p in enumerate(poles):
            for i, c in enumerate(conds):
                r = rows.get((c, p))
                if r is None:
                    continue
                v = r["accuracy_length_normalized"]
                ax.bar(i + (j - 0.5) * 0.4, v, 0.4, color=f"C{j}", label=p if i == 0 else None,
                       yerr=_err(v, r["accuracy_length_normalized_ci95"]), capsize=2)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(x, [COND_LABEL[c] for c in conds], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy (length-normalised)")
        ax.set_title(f"{name} (n={s['n_test']})", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Persona alignment: share of held-out items where the pole's answer is preferred (95 % CI)")
    fig.tight_layout()
    return fig


def fig_pole_contrast(results: dict) -> Figure:
    """Pole contrast per method: change of per-token preference for pole A between the pole-A and
    pole-B conditions (cancels answer-length bias), with bootstrap 95 % intervals."""
    sets = list(results["sets"])
    fig, axes = _grid(len(sets), 4.2, 3.4)
    for ax, name in zip(axes, sets):
        cs = results["sets"][name]["contrasts"]
        for i, c in enumerate(cs):
            ax.bar(i, c["shift"], color="C2", yerr=_err(c["shift"], c["shift_ci95"]), capsize=2)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(cs)), [COND_LABEL.get(c["condition"], c["condition"]) for c in cs], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("shift (nats / token)")
        ax.set_title(name, fontsize=9)
    fig.suptitle("Pole contrast: same items under the pole-A vs the pole-B condition")
    fig.tight_layout()
    return fig


def fig_sparsity(results: dict) -> Figure:
    """Fraction of weights removed per block, attention vs MLP, for each mask method (pole A)."""
    name = _analysis_name(results)
    s = results["sets"][name]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (meth, by_pole) in enumerate(s["sparsity"].items()):
        prof = by_pole[s["poles"][0]]["per_block"]
        b = [r["block"] for r in prof]
        ax.plot(b, [r["attn"] for r in prof], color=f"C{i}", ls="-", marker=".", label=f"{meth} attention")
        ax.plot(b, [r["mlp"] for r in prof], color=f"C{i}", ls="--", marker=".", label=f"{meth} MLP")
    ax.set_xlabel("block")
    ax.set_ylabel("fraction of weights removed")
    ax.set_ylim(0, 1)
    ax.set_title(f"Mask sparsity per block and module type ({name}, pole {s['poles'][0]})")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def fig_overlap(results: dict) -> Figure:
    """Difference rate between the two poles' masks per set and method, next to two random masks."""
    sets = list(results["sets"])
    meths = list(results["sets"][sets[0]]["overlap"])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    w = 0.8 / len(meths)
    for j, m in enumerate(meths):
        vals = [100 * results["sets"][n]["overlap"][m]["overall"]["difference_rate"] for n in sets]
        ax.bar(np.arange(len(sets)) + (j - len(meths) / 2 + 0.5) * w, vals, w, label=m, color=f"C{j}")
    paper = results.get("paper", {}).get("mbti_difference_rate", {})
    for i, n in enumerate(sets):
        if n in paper:
            ax.plot([i - 0.4, i + 0.4], [paper[n], paper[n]], color="k", lw=2, label="paper (Wanda, LLaMA)" if i == 0 else None)
    ax.set_xticks(range(len(sets)), sets, rotation=30)
    ax.set_ylabel("mask entries that differ (%)")
    ax.set_yscale("log")
    ax.set_title("Opposite-pole masks: difference rate")
    ax.legend(fontsize=7)
    name = _analysis_name(results)
    ov = results["sets"][name]["overlap"]
    for j, m in enumerate(meths):
        pb = ov[m]["per_block"]
        ax2.plot([r["block"] for r in pb], [100 * r["difference_rate"] for r in pb], marker=".", color=f"C{j}", label=m)
    ax2.set_xlabel("block")
    ax2.set_ylabel("difference rate (%)")
    ax2.set_yscale("log")
    ax2.set_title(f"Per block ({name})")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


class FigureDataMissing(Exception):
    """``results.json`` lacks what a figure needs (e.g. written by an older study): skip the figure."""


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise FigureDataMissing(f"results.json has no {what} (written by an older study?); rerun the study "
                                "(`make reproduce-full`) to draw this figure")


def _band(ax, x, ci, color, alpha=0.2):
    ax.fill_between(x, [c[0] for c in ci], [c[1] for c in ci], color=color, alpha=alpha, lw=0)


def fig_ablation(results: dict) -> Figure:
    """Restoring layer groups inside both poles' masks (fraction of the full pole contrast), and removal of
    top contrastive vs top pooled-Wanda vs random weights at matched count per row."""
    a = results.get("analysis") or {}
    _need(not a or ("full_contrast" in a.get("restore", {}) and "rows" in a.get("removal", {})
                    and all("contrastive_contrast" in r for r in a["removal"]["rows"])),
          "two-mask restore / matched-count removal ablation")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    if "restore" in a:
        r = a["restore"]
        rows = r["rows"]
        if rows:
            fr = [x["fraction_of_full"] for x in rows]
            ax.barh(range(len(rows)), fr, color="C0",
                    xerr=[[max(0.0, f - x["fraction_ci95"][0]) for f, x in zip(fr, rows)],
                          [max(0.0, x["fraction_ci95"][1] - f) for f, x in zip(fr, rows)]], capsize=2)
            ax.axvline(1.0, color="C3", ls="--", label="full masks")
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_yticks(range(len(rows)), [f"restore {x['restored']}" for x in rows], fontsize=8)
            ax.set_xlabel("pole contrast remaining (fraction of the full masks')")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not computed:\n" + (r.get("skipped") or "").replace(": ", ":\n", 1), ha="center",
                    va="center", wrap=True, fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
        ax.set_title(f"Restore to dense inside both {r.get('method', '')} masks "
                     f"(full contrast {r['full_contrast']['shift']:+.3f})", fontsize=9)
    if "removal" in a:
        rows = a["removal"]["rows"]
        kinds = [("contrastive_contrast", "top contrastive: contrast (B-top removed vs A-top removed)", "C3"),
                 ("random_pair_contrast", "two random removals: contrast", "grey")]
        shifts = [("wanda-pooled", "top pooled Wanda: shift vs dense", "C1"), ("random-0", "random: shift vs dense", "C4")]
        w = 0.8 / (len(kinds) + len(shifts))
        for i, row in enumerate(rows):
            vals = [(row[k], lab, c) for k, lab, c in kinds] + [(row["shift_vs_dense"][k], lab, c) for k, lab, c in shifts]
            for j, (v, lab, c) in enumerate(vals):
                ax2.bar(i + (j - len(vals) / 2 + 0.5) * w, v["shift"], w, color=c, yerr=_err(v["shift"], v["shift_ci95"]),
                        capsize=2, label=lab if i == 0 else None)
        ax2.axhline(0, color="grey", lw=0.8)
        ax2.set_xticks(range(len(rows)), [f"{100 * r['fraction']:g} % per row" for r in rows])
        ax2.set_ylabel("nats / token (preference for pole A)")
        ax2.set_title("Removal at matched count per row (dense model)", fontsize=9)
        ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig


def fig_probes(results: dict) -> Figure:
    """Layer probes (held-out accuracy, 95 % CI) next to the bag-of-words and embedding baselines;
    filled markers: informative layers (beat both baselines)."""
    sets = list(results["sets"])
    _need(all(isinstance(results["sets"][n].get("probes"), dict) for n in sets), "probes with lexical baselines")
    fig, axes = _grid(len(sets), 4.2, 3.2)
    for ax, name in zip(axes, sets):
        pr = results["sets"][name]["probes"]
        rows = pr["layers"]
        L = [r["layer"] for r in rows]
        acc = [r["test_accuracy"] for r in rows]
        ax.plot(L, acc, color="C0", label="layer probe (held-out)")
        _band(ax, L, [r["test_accuracy_ci95"] for r in rows], "C0")
        inf = [r for r in rows if r["informative"]]
        ax.scatter([r["layer"] for r in inf], [r["test_accuracy"] for r in inf], color="C0", zorder=3, s=14,
                   label="informative (beats both)")
        ax.axhline(pr["bag_of_words"]["test_accuracy"], color="C3", ls="--", label="bag of words (TF-IDF)")
        ax.axhline(pr["embedding"]["test_accuracy"], color="C2", ls="-.", label="embedding probe")
        ax.plot(L, [r["shuffled_test_accuracy"] for r in rows], color="grey", lw=0.8, label="shuffled labels")
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_ylim(0.3, 1.02)
        ax.set_xlabel("block")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name} (train {pr['n_train']}, test {pr['n_test']}; {pr['n_informative']}/{pr['n_comparisons']} informative)",
                     fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle("Linear probes decoding the pole, against lexical baselines on the same split")
    fig.tight_layout()
    return fig


def fig_neutral_decoding(results: dict) -> Figure:
    """Which pole's mask / persona prompt is active, decoded from hidden states of neutral text
    (cross-validated by text, 95 % CI over texts; dotted: label-swap control)."""
    sets = list(results["sets"])
    _need(all("neutral_decoding" in results["sets"][n] for n in sets), "neutral-text decoding")
    fig, axes = _grid(len(sets), 4.2, 3.2)
    for ax, name in zip(axes, sets):
        for i, (label, d) in enumerate(results["sets"][name]["neutral_decoding"].items()):
            rows = d["layers"]
            L = [r["layer"] for r in rows]
            ref = "reference" in label
            c = "grey" if ref else f"C{i}"
            ax.plot(L, [r["accuracy"] for r in rows], color=c, lw=4 if ref else 1.5, alpha=0.45 if ref else 1.0,
                    zorder=1 if ref else 2, label=f"{label} ({d['n_decodable']}/{len(rows)} layers)")
            _band(ax, L, [r["accuracy_ci95"] for r in rows], c)
            ax.plot(L, [r["shuffled_accuracy"] for r in rows], color=c, ls=":", lw=0.8)
        ax.axhline(0.5, color="grey", lw=0.6, ls="--")
        ax.set_ylim(0.3, 1.02)
        ax.set_xlabel("block")
        ax.set_ylabel("accuracy (CV by text)")
        n = next(iter(results["sets"][name]["neutral_decoding"].values()))["n_texts"]
        ax.set_title(f"{name} ({n} neutral texts)", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("Which pole's intervention is active? Decoded from neutral text (not lexical)")
    fig.tight_layout()
    return fig


def fig_similarity(results: dict) -> Figure:
    """Split-half reliability of the pole-difference direction per layer against its label-permutation
    null (band: null mean to 95th percentile); right: the paper's cosine of the means, not evidence."""
    sets = results["sets"]
    _need(all(isinstance(s.get("similarity"), dict) for s in sets.values()), "split-half reliability")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for i, (name, s) in enumerate(sets.items()):
        rows = s["similarity"]["layers"]
        L = [r["layer"] for r in rows]
        ax.plot(L, [r["reliability"] for r in rows], color=f"C{i}", label=name)
        _band(ax, L, [(r["null_mean"], r["null_p95"]) for r in rows], f"C{i}", alpha=0.15)
        sig = [r for r in rows if r["p_value"] < 0.05]
        ax.scatter([r["layer"] for r in sig], [r["reliability"] for r in sig], color=f"C{i}", s=10, zorder=3)
        ax2.plot(L, [r["cosine_of_means"] for r in rows], color=f"C{i}", label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title("split-half reliability of the difference direction\n(band: permutation null, mean to 95th pct; dots: p < 0.05)",
                 fontsize=9)
    ax.set_ylabel("cos(m(A1) - m(B1), m(A2) - m(B2))")
    ax2.set_title("paper's measure: cos(m_A, m_B) - near 1 for any texts, not evidence", fontsize=9)
    ax2.set_ylabel("cosine of the poles' means")
    for a in (ax, ax2):
        a.set_xlabel("block")
        a.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_stability(results: dict) -> Figure:
    """Jaccard agreement of masks from bootstrap resamples of the calibration set, vs random masks."""
    a = results.get("analysis") or {}
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    st = a.get("stability", [])
    for i, r in enumerate(st):
        ax.scatter([i] * len(r["pairwise_jaccard"]), r["pairwise_jaccard"], color=f"C{i}", alpha=0.6)
        ax.bar(i, r["mean_jaccard"], 0.5, color=f"C{i}", alpha=0.3, label=f"{r['method']} (mean)")
    if st:
        ax.axhline(st[0]["random_jaccard"], color="grey", ls="--", label="two random masks")
    ax.set_xticks(range(len(st)), [r["method"] for r in st])
    ax.set_ylabel("pairwise Jaccard")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Mask stability under calibration resampling ({a.get('set', '')})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_sweeps(results: dict) -> Figure:
    """Pole contrast vs sparsity and vs calibration size (contrastive Wanda), 95 % intervals."""
    a = results.get("analysis") or {}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for axis, key, xk, xl in ((ax, "sparsity_sweep", "sparsity", "sparsity rho"),
                              (ax2, "calibration_sweep", "calib_size", "calibration texts per pole")):
        rows = (a.get(key) or {}).get("rows", [])
        x = [r[xk] for r in rows]
        y = [r["contrast"]["shift"] for r in rows]
        lo = [r["contrast"]["shift"] - r["contrast"]["shift_ci95"][0] for r in rows]
        hi = [r["contrast"]["shift_ci95"][1] - r["contrast"]["shift"] for r in rows]
        axis.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3)
        axis.axhline(0, color="grey", lw=0.8)
        axis.set_xlabel(xl)
        axis.set_ylabel("pole contrast (nats / token)")
        if key == "calibration_sweep" and x:
            axis.set_xscale("log")
    ax.set_title("Sparsity sweep")
    ax2.set_title("Calibration-size sweep")
    fig.tight_layout()
    return fig


def fig_capability(results: dict) -> Figure:
    """Perplexity on neutral text and general-knowledge accuracy, dense vs masked."""
    a = results.get("analysis") or {}
    cap = a.get("capability", [])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    labels = [c["condition"] for c in cap]
    ppl = [c["perplexity"]["perplexity"] for c in cap]
    ci = [np.exp(c["perplexity"]["mean_nll_ci95"]) for c in cap]
    ax.bar(range(len(cap)), ppl, yerr=[[p - c[0] for p, c in zip(ppl, ci)], [c[1] - p for p, c in zip(ppl, ci)]], capsize=3)
    ax.set_yscale("log")
    ax.set_ylabel("perplexity (neutral text, log scale)")
    acc = [c["general_choice"]["length_normalized"]["accuracy"] for c in cap]
    aci = [c["general_choice"]["length_normalized"]["accuracy_ci95"] for c in cap]
    ax2.bar(range(len(cap)), acc, yerr=[[a_ - c[0] for a_, c in zip(acc, aci)], [c[1] - a_ for a_, c in zip(acc, aci)]], capsize=3, color="C1")
    ax2.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("general-knowledge accuracy")
    for axis in (ax, ax2):
        axis.set_xticks(range(len(cap)), labels, rotation=30, ha="right", fontsize=8)
    fig.suptitle(f"General capability, dense vs masked ({a.get('set', '')})")
    fig.tight_layout()
    return fig


CURVE_STYLE = {"contrastive-wanda": ("C0", "contrastive-Wanda keep mask (sparsity)"),
               "contrastive-removal": ("C3", "contrastive removal (fraction)"),
               "wanda": ("C1", "Wanda keep mask (sparsity)"),
               "contrastive-sparse": ("C4", "contrastive-sparse keep mask (sparsity)"),
               "soft-mask": ("C5", "soft contrastive-Wanda mask (1 - gamma)"),
               "steering": ("C2", "steering (coefficient)")}


def fig_effect_damage(results: dict) -> Figure:
    """Pole contrast against damage (KL on neutral text) over each method's strength dial, one panel per set,
    with its null draws at every strength (hollow markers: label-swapped masks, random steering directions)
    and the null's one-sided 95 % prediction bound (dotted, drawn at the nulls' mean damage). Diamonds: the
    strengths matched to the target damages (grey vertical lines). Prompt, RAG and LoRA are single points,
    measured on every held-out item."""
    sets = [n for n, s in results["sets"].items() if s.get("effect_damage")]
    _need(bool(sets), "effect-damage curves")
    fig, axes = _grid(len(sets), 7.5, 5.0, max_cols=2)
    for ax, name in zip(axes, sets):
        ed = results["sets"][name]["effect_damage"]
        for t in ed.get("targets", []):
            ax.axvline(t, color="grey", lw=0.6, ls="--")
        for method, pts in ed["curves"].items():
            color, label = CURVE_STYLE.get(method, ("C7", method))
            x = [max(p["damage_kl"], 1e-5) for p in pts]
            y = [p["shift"] for p in pts]
            lo = [p["shift"] - p["shift_ci95"][0] for p in pts]
            hi = [p["shift_ci95"][1] - p["shift"] for p in pts]
            ax.errorbar(x, y, yerr=[lo, hi], color=color, marker="o", ms=3.5, lw=1.2, capsize=2, label=label)
            for p in pts:
                if p.get("matched_target"):
                    ax.scatter([max(p["damage_kl"], 1e-5)], [p["shift"]], marker="D", s=28, color=color, zorder=3)
                if p["persona_specific"]:
                    ax.annotate("*", (max(p["damage_kl"], 1e-5), p["shift"]), fontsize=9, color=color,
                                xytext=(2, 2), textcoords="offset points")
                nx = [max(d, 1e-5) for d in p["null_damage_kl"]]
                ax.scatter(nx, p["null_shifts"], facecolors="none", edgecolors=color, s=12, lw=0.6, alpha=0.6)
            bound = [(float(np.mean(p["null_damage_kl"])), p["null_threshold"]) for p in pts
                     if p.get("null_threshold") is not None and p["null_damage_kl"]]
            if bound:
                bx, by = zip(*sorted(bound))
                ax.plot([max(v, 1e-5) for v in bx], by, color=color, ls=":", lw=0.9)
        for cond, (marker, label) in {"prompt": ("s", "persona prompt"), "rag": ("^", "RAG"), "sft": ("P", "LoRA")}.items():
            pr = (ed.get("points") or {}).get(cond)
            if pr and pr.get("damage_kl") is not None:
                ax.errorbar([max(pr["damage_kl"], 1e-5)], [pr["shift"]], yerr=[[pr["shift"] - pr["shift_ci95"][0]],
                            [pr["shift_ci95"][1] - pr["shift"]]], color="k", marker=marker, ms=5, capsize=2, ls="none",
                            label=f"{label} (all items)")
        ax.axhline(0, color="grey", lw=0.8)
        # y range from the measured contrasts and null draws (a bound from few draws can be far off-scale)
        ys = [v for pts in ed["curves"].values() for p in pts for v in (*p["shift_ci95"], *p["null_shifts"])]
        ys += [v for pr in (ed.get("points") or {}).values() for v in pr["shift_ci95"]]
        if ys:
            lo_, hi_ = min(ys), max(ys)
            pad = 0.08 * (hi_ - lo_ or 1.0)
            ax.set_ylim(lo_ - pad, hi_ + pad)
        ax.set_xscale("log")
        ax.set_xlabel("damage: KL(dense || intervened) on neutral text, nats/token")
        ax.set_ylabel("pole contrast, nats/token")
        km = ed.get("matched_null_draws", ed["null_draws"])
        ax.set_title(f"{name}: {ed.get('n_items_curve', ed.get('n_items'))} items per point, {ed['null_draws']} null draws "
                     f"({km} at the matched strengths); * beats its null", fontsize=7.5)
        ax.legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    return fig


def fig_matched_damage(results: dict) -> Figure:
    """The matched-damage table as bars: each method's pole contrast on every held-out item at each target
    damage (95 % interval), the null's prediction bound (on the curve items) as a black tick, and the
    persona prompt's contrast (at its own damage) as a dashed line."""
    sets = [n for n, s in results["sets"].items() if (s.get("effect_damage") or {}).get("matched")]
    _need(bool(sets), "matched-damage rows")
    fig, axes = _grid(len(sets), 5.0, 3.8)
    for ax, name in zip(axes, sets):
        ed = results["sets"][name]["effect_damage"]
        rows = [r for r in ed["matched"] if r.get("reached")]
        for i, r in enumerate(rows):
            color, _ = CURVE_STYLE.get(r["method"], ("C7", r["method"]))
            ax.bar(i, r["shift"], color=color, alpha=0.8)
            ax.errorbar(i, r["shift"], yerr=[[r["shift"] - r["shift_ci95"][0]], [r["shift_ci95"][1] - r["shift"]]],
                        color="k", capsize=2)
            if r.get("null_threshold") is not None:
                ax.plot([i - 0.35, i + 0.35], [r["null_threshold"]] * 2, color="k", lw=1.5)
        pr = (ed.get("points") or {}).get("prompt")
        if pr:
            ax.axhline(pr["shift"], color="k", ls="--", lw=0.8, label=f"persona prompt (KL {pr['damage_kl']:.2f})")
            ax.legend(fontsize=6)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(rows)), [f"{r['method']}\nKL {r['target_kl']:g}" for r in rows], fontsize=6, rotation=30)
        ax.set_ylabel("pole contrast, nats/token")
        ax.set_title(f"{name}: matched damage ({ed['n_items_table']} items)", fontsize=8)
    fig.tight_layout()
    return fig


def _analysis_name(results: dict) -> str:
    a = results.get("analysis") or {}
    return a.get("set") or next(iter(results["sets"]))


FIGURES = {"effect_damage": fig_effect_damage, "matched_damage": fig_matched_damage, "main_accuracy": fig_main_accuracy, "pole_contrast": fig_pole_contrast, "sparsity": fig_sparsity,
           "overlap": fig_overlap, "ablation": fig_ablation, "probes": fig_probes,
           "neutral_decoding": fig_neutral_decoding, "similarity": fig_similarity,
           "stability": fig_stability, "sweeps": fig_sweeps, "capability": fig_capability}


def write_figure(results: dict, name: str, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from .report import in_study_order

    fig = FIGURES[name](in_study_order(results))
    path = out / f"{name}.png"
    tmp = out / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_figures(results: dict, out_dir: str | Path) -> list[Path]:
    """Every figure of :data:`FIGURES`; one whose data is missing is skipped with a message on stderr."""
    out = []
    for n in FIGURES:
        try:
            out.append(write_figure(results, n, out_dir))
        except FigureDataMissing as exc:
            print(f"{n}: skipped: {exc}", file=sys.stderr)
    return out


def script_main(name: str, argv: list[str] | None = None) -> int:
    """Entry of the ``analyses/*.py`` scripts: ``python analyses/NAME.py RESULTS.json [--out figures]``."""
    import argparse

    p = argparse.ArgumentParser(description=(FIGURES[name].__doc__ or "").strip().splitlines()[0])
    p.add_argument("results", help="results.json written by `persona-circuits reproduce`")
    p.add_argument("--out", default="figures", help="folder for the PNG (default figures/)")
    a = p.parse_args(argv)
    try:
        results = json.loads(Path(a.results).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"{name}: error: cannot read {a.results}: {exc}", file=sys.stderr)
        return 2
    try:
        print(write_figure(results, name, a.out))
    except FigureDataMissing as exc:
        print(f"{name}: skipped: {exc}", file=sys.stderr)
    return 0
