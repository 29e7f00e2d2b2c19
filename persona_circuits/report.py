"""REPORT.md from ``results.json``: tables, figure references and data-driven conclusions."""

from __future__ import annotations

import re
from pathlib import Path

from ._io import atomic_write_text

#: Difference rate (%) between opposite-pole Wanda masks reported by the paper (LLaMA, MBTI axes),
#: as quoted in this project's issue 3; keyed by our set names.
PAPER_MBTI_DIFFERENCE_RATE = {"mbti-ei": 1.34, "mbti-tf": 1.08, "mbti-sn": 0.75, "mbti-jp": 0.76}

_PAPER_ROWS = {"persona prompt": "prompt", "RAG": "rag", "Wanda persona mask": "wanda",
               "contrastive Wanda": "contrastive-wanda", "contrastive sparse": "contrastive-sparse",
               "supervised fine-tuning (upper bound)": "sft"}


def paper_numbers(data_root: Path | None) -> dict:
    """The paper's AI-persona accuracies, read from the reference data's README (never typed here)."""
    out: dict = {"mbti_difference_rate": dict(PAPER_MBTI_DIFFERENCE_RATE), "ai_persona": {}}
    if data_root is None or not (Path(data_root) / "README.md").is_file():
        return out
    text = (Path(data_root) / "README.md").read_text(encoding="utf-8")
    header = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if not cells:
            header = None if not line.startswith("|") else header
            continue
        if cells[0] == "method":
            header = cells[1:]
            continue
        if header and cells[0] in _PAPER_ROWS and all(re.fullmatch(r"[\d.]+", c) for c in cells[1:]):
            for task, v in zip(header, cells[1:]):
                out["ai_persona"].setdefault(task, {})[_PAPER_ROWS[cells[0]]] = float(v)
    return out


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _ci(ci) -> str:
    return f"[{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"


def _row(s: dict, cond: str, pole: str) -> dict | None:
    for r in s["conditions"]:
        if r["condition"] == cond and r["pole"] == pole:
            return r
    return None


def _significant(c: dict) -> int:
    lo, hi = c["shift_ci95"]
    return 1 if lo > 0 else (-1 if hi < 0 else 0)


def build_report(results: dict) -> str:
    meta = results.get("meta", {})
    sets = results["sets"]
    L = []
    L.append("# persona_circuits: study report\n")
    L.append(f"Regenerate with `{meta.get('command') or 'persona-circuits reproduce'}` "
             f"({'quick' if meta.get('quick') else 'full'} run, model `{meta.get('model')}`, "
             f"{meta.get('cpu_count')} CPU cores, torch {meta.get('torch')}, {meta.get('seconds')} s, finished {meta.get('finished')}). "
             "Every number below is read from `results.json` of that run; figures are drawn from it by `analyses/*.py`.\n")
    cfg = meta.get("config", {})
    L.append(f"Settings: statistics over `{cfg.get('tokens')}` tokens, `{cfg.get('statistic')}` channel statistic, modules "
             f"`{cfg.get('modules')}`, sparsity {cfg.get('sparsity')}, {cfg.get('calib_size')} calibration texts per pole, "
             f"RAG k = {cfg.get('rag_k')}, seed {cfg.get('seed')}. Accuracy = share of held-out items whose pole answer has the "
             "higher log-likelihood (summed, and per token = length-normalised); intervals are bootstrap 95 % over items.\n")

    # ---- AI persona table
    paper = results.get("paper", {}).get("ai_persona", {})
    ai = [n for n, s in sets.items() if s.get("family") == "ai"]
    if ai:
        L.append("## AI persona tasks: the paper's table next to ours\n")
        L.append("Accuracy (%) for the persona pole (`matching`: power-seeking, wealth-seeking, accepting the false premise). "
                 "Paper: LLaMA-2-13B, all 200 test_ab items. Ours: the default model, the first "
                 f"{sets[ai[0]]['n_test']} items of the same test_ab split, summed log-likelihood (the paper's scoring) and "
                 "length-normalised, with 95 % intervals.\n")
        L.append("| method | " + " | ".join(f"{t} paper | {t} ours (sum) | {t} ours (per token)" for t in ai) + " |")
        L.append("|---" * (1 + 3 * len(ai)) + "|")
        for cond, label in [("dense", "dense model"), ("prompt", "persona prompt"), ("rag", "RAG"),
                            ("steering", "activation steering"), ("random-mask", "random mask"),
                            ("wanda", "Wanda persona mask"), ("contrastive-wanda", "contrastive Wanda"),
                            ("contrastive-sparse", "contrastive sparse"), ("contrastive-wanda+prompt", "c-Wanda mask + prompt"),
                            ("sft", "LoRA fine-tuning (upper bound)")]:
            cells = []
            for t in ai:
                r = _row(sets[t], cond, "matching")
                p = paper.get(t, {}).get(cond)
                cells.append(f"{p:.1f}" if p is not None else "-")
                cells.append(f"{_pct(r['accuracy'])} {_ci(r['accuracy_ci95'])}" if r else "-")
                cells.append(f"{_pct(r['accuracy_length_normalized'])} {_ci(r['accuracy_length_normalized_ci95'])}" if r else "-")
            L.append(f"| {label} | " + " | ".join(cells) + " |")
        L.append("")

    # ---- per-set tables
    L.append("## Alignment per persona set\n")
    L.append("![main accuracy](figures/main_accuracy.png)\n")
    for name, s in sets.items():
        poles = s["poles"]
        L.append(f"### {name} ({' / '.join(poles)}; {s['n_calibration']} calibration texts per pole, {s['n_test']} held-out items)\n")
        L.append("| condition | " + " | ".join(f"{p}: acc sum | {p}: acc per token | {p}: margin" for p in poles) + " |")
        L.append("|---" * (1 + 3 * len(poles)) + "|")
        conds = []
        for r in s["conditions"]:
            if r["condition"] not in conds:
                conds.append(r["condition"])
        for c in conds:
            cells = []
            for p in poles:
                r = _row(s, c, p)
                cells += ([f"{_pct(r['accuracy'])} {_ci(r['accuracy_ci95'])}",
                           f"{_pct(r['accuracy_length_normalized'])} {_ci(r['accuracy_length_normalized_ci95'])}",
                           f"{r['mean_margin']:+.3f}"] if r else ["-", "-", "-"])
            L.append(f"| {c} | " + " | ".join(cells) + " |")
        L.append("")
        L.append("Pole contrast (same items, pole-A condition vs pole-B condition; shift of the per-token preference for "
                 f"`{poles[0]}`'s answer, nats/token, and share of items that moved towards it):\n")
        L.append("| method | shift | 95 % CI | items moved | 95 % CI |")
        L.append("|---|---|---|---|---|")
        for c in s["contrasts"]:
            L.append(f"| {c['condition']} | {c['shift']:+.3f} | [{c['shift_ci95'][0]:+.3f}, {c['shift_ci95'][1]:+.3f}] | "
                     f"{_pct(c['accuracy'])} | {_ci(c['accuracy_ci95'])} |")
        if s.get("steering"):
            st = s["steering"]
            L.append(f"\nSteering: layer {st['layer']}, coefficient {st['coef']} (chosen on calibration items).")
        if s.get("sft"):
            costs = "; ".join(f"{p}: {c['steps']} steps, {c['tokens']} tokens, {c['seconds']:.0f} s, "
                              f"{c['trainable_parameters']} trainable parameters" for p, c in s["sft"].items())
            L.append(f"\nLoRA fine-tuning cost: {costs}.")
        L.append("")

    # ---- analyses
    L.append("## Pole contrast across sets\n\n![pole contrast](figures/pole_contrast.png)\n")
    L.append("## Analyses\n")
    L.append("### 1. Mask sparsity per layer and module type\n\n![sparsity](figures/sparsity.png)\n")
    L.append("Per-row top-k gives every row, hence every layer and module type, the same sparsity for Wanda and "
             "contrastive Wanda; the paper's contrastive-sparse masks keep at most the weights each pole owns:\n")
    L.append("| set | method | pole | removed overall | attention | MLP |")
    L.append("|---|---|---|---|---|---|")
    for name, s in sets.items():
        for m, by_pole in s["sparsity"].items():
            for p, prof in by_pole.items():
                L.append(f"| {name} | {m} | {p} | {_pct(prof['overall'])} % | {_pct(prof['by_module'].get('attn'))} % | "
                         f"{_pct(prof['by_module'].get('mlp'))} % |")
    L.append("\n### 2. Overlap between opposite-pole masks\n\n![overlap](figures/overlap.png)\n")
    L.append("| set | method | difference rate | attention | MLP | Jaccard | random masks: difference rate (measured / expected) | paper (Wanda) |")
    L.append("|---|---|---|---|---|---|---|---|")
    pap = results.get("paper", {}).get("mbti_difference_rate", {})
    for name, s in sets.items():
        rnd = s["overlap"]["random"]
        for m, ov in s["overlap"].items():
            if m == "random":
                continue
            L.append(f"| {name} | {m} | {100 * ov['overall']['difference_rate']:.2f} % | "
                     f"{100 * ov['by_module']['attn']['difference_rate']:.2f} % | {100 * ov['by_module']['mlp']['difference_rate']:.2f} % | "
                     f"{ov['overall']['jaccard']:.3f} | {100 * rnd['overall']['difference_rate']:.1f} % / "
                     f"{100 * ov['random_expectation']['difference_rate']:.1f} % | "
                     f"{(str(pap[name]) + ' %') if (m == 'wanda' and name in pap) else ''} |")
    a = results.get("analysis")
    if a:
        L.append(f"\n### 3. Ablation ({a['set']}, {a['n_items']} held-out items)\n\n![ablation](figures/ablation.png)\n")
        r = a["restore"]
        L.append(f"Effect of the full {r['method']} mask for `{r['pole']}`: {r['full_mask_effect']:+.3f} nats/token "
                 f"({r['effect_definition']}).\n")
        L.append("| restored to dense | remaining effect | fraction of the full effect |")
        L.append("|---|---|---|")
        for row in r["rows"]:
            fr = row["fraction_of_effect_remaining"]
            L.append(f"| {row['restored']} | {row['effect']:+.3f} | {'-' if fr is None else f'{fr:.2f}'} |")
        L.append("\n| weights removed per row | pole | top contrastive: effect | random: effect |")
        L.append("|---|---|---|---|")
        rows = a["removal"]["rows"]
        for q in sorted({x["fraction"] for x in rows}):
            for p in sorted({x["pole_scored"] for x in rows}):
                top = next((x["effect"] for x in rows if x["fraction"] == q and x["pole_scored"] == p and x["kind"] != "random"), None)
                rnd = next((x["effect"] for x in rows if x["fraction"] == q and x["pole_scored"] == p and x["kind"] == "random"), None)
                L.append(f"| {100 * q:g} % | {p} | {top:+.3f} | {rnd:+.3f} |")
    L.append("\n### 4. Linear probes\n\n![probes](figures/probes.png)\n")
    L.append("| set | best layer | held-out accuracy there | CV accuracy there | shuffled-label control | layer-0 held-out accuracy |")
    L.append("|---|---|---|---|---|---|")
    for name, s in sets.items():
        pr = s["probes"]
        best = max(pr, key=lambda r: (r["cv_accuracy"], -r["layer"]))
        L.append(f"| {name} | {best['layer']} | {_pct(best['test_accuracy'])} % | {_pct(best['cv_accuracy'])} % | "
                 f"{_pct(best['shuffled_test_accuracy'])} % | {_pct(pr[0]['test_accuracy'])} % |")
    L.append("\n(The best layer is chosen by calibration CV accuracy, not by held-out accuracy.)\n")
    L.append("### 5. Layer-wise cosine similarity of the poles' mean representations\n\n![similarity](figures/similarity.png)\n")
    L.append("| set | raw cosine, first block | raw cosine, last block | centered cosine, last block | same-pole halves, last block |")
    L.append("|---|---|---|---|---|")
    for name, s in sets.items():
        sim = s["similarity"]
        L.append(f"| {name} | {sim[0]['cosine']:.3f} | {sim[-1]['cosine']:.3f} | {sim[-1]['cosine_centered']:.3f} | "
                 f"{sim[-1]['same_pole_halves_centered']:.3f} |")
    if a:
        L.append(f"\n### 6. Stability under calibration resampling ({a['set']})\n\n![stability](figures/stability.png)\n")
        L.append("| method | bootstrap resamples | mean pairwise Jaccard | min | two random masks |")
        L.append("|---|---|---|---|---|")
        for r in a["stability"]:
            L.append(f"| {r['method']} | {r['n_boot']} | {r['mean_jaccard']:.3f} | {r['min_jaccard']:.3f} | {r['random_jaccard']:.3f} |")
        L.append(f"\n### 7. Sparsity and calibration-size sweeps ({a['set']}, contrastive Wanda)\n\n![sweeps](figures/sweeps.png)\n")
        L.append("| sparsity | pole contrast | 95 % CI | " + " | ".join(f"{p} acc per token" for p in sets[a['set']]["poles"]) + " |")
        L.append("|---|---|---|" + "---|" * len(sets[a["set"]]["poles"]))
        for r in a["sparsity_sweep"]["rows"]:
            c = r["contrast"]
            L.append(f"| {r['sparsity']} | {c['shift']:+.3f} | [{c['shift_ci95'][0]:+.3f}, {c['shift_ci95'][1]:+.3f}] | " +
                     " | ".join(_pct(v["accuracy_length_normalized"]) for v in r["per_pole"].values()) + " |")
        L.append("\n| calibration texts per pole | pole contrast | 95 % CI |")
        L.append("|---|---|---|")
        for r in a["calibration_sweep"]["rows"]:
            c = r["contrast"]
            L.append(f"| {r['calib_size']} | {c['shift']:+.3f} | [{c['shift_ci95'][0]:+.3f}, {c['shift_ci95'][1]:+.3f}] |")
        L.append(f"\n### 8. General capability ({a['set']} masks)\n\n![capability](figures/capability.png)\n")
        L.append("| condition | perplexity (neutral text) | general-knowledge accuracy, summed | per token |")
        L.append("|---|---|---|---|")
        for c in a["capability"]:
            g = c["general_choice"]
            L.append(f"| {c['condition']} | {c['perplexity']['perplexity']:.1f} | {_pct(g['summed']['accuracy'])} % "
                     f"{_ci(g['summed']['accuracy_ci95'])} | {_pct(g['length_normalized']['accuracy'])} % |")
    L.append("\n## Conclusions (derived from the numbers above)\n")
    L.extend(conclusions(results))
    return "\n".join(L) + "\n"


def conclusions(results: dict) -> list[str]:
    sets = results["sets"]
    out = []
    methods = ["wanda", "contrastive-wanda", "contrastive-sparse", "prompt", "rag", "steering", "sft"]
    for m in methods:
        sig = [(n, _significant(c)) for n, s in sets.items() for c in s["contrasts"] if c["condition"] == m]
        if not sig:
            continue
        pos = [n for n, v in sig if v > 0]
        neg = [n for n, v in sig if v < 0]
        out.append(f"- **{m}**: the pole contrast is positive with a 95 % interval above zero in {len(pos)} of {len(sig)} sets"
                   f"{' (' + ', '.join(pos) + ')' if pos else ''}" + (f"; reversed in {', '.join(neg)}" if neg else "") + ".")
    # masks vs random mask and vs prompt, per token accuracy for pole A
    better = []
    for s in sets.values():
        p0 = s["poles"][0]
        r = _row(s, "random-mask", p0)
        c = _row(s, "contrastive-wanda", p0)
        if r and c:
            better.append(c["accuracy_length_normalized"] - r["accuracy_length_normalized"])
    if better:
        out.append(f"- Contrastive Wanda vs a random mask of the same sparsity (pole A, per-token accuracy): mean difference "
                   f"{100 * sum(better) / len(better):+.1f} points over {len(better)} sets.")
    wd = [(n, s["overlap"]["wanda"]["overall"]["difference_rate"], s["overlap"]["random"]["overall"]["difference_rate"])
          for n, s in sets.items()]
    out.append("- Opposite-pole Wanda masks differ in " + ", ".join(f"{n} {100 * d:.2f} %" for n, d, _ in wd) +
               f" of entries, against {100 * wd[0][2]:.0f} % for two random masks: single-persona masks are almost the same mask,"
               " as the paper found; the persona information is in the few weights where they differ, or in the contrastive scores.")
    pr = [(n, max(s["probes"], key=lambda r: (r["cv_accuracy"], -r["layer"]))) for n, s in sets.items()]
    out.append("- Probes decode the pole from the residual stream of held-out texts at "
               + ", ".join(f"{n} {100 * b['test_accuracy']:.0f} % (control {100 * b['shuffled_test_accuracy']:.0f} %)" for n, b in pr)
               + ": the distinction is linearly present in the dense model's representations.")
    a = results.get("analysis")
    if a and a.get("capability"):
        d = a["capability"][0]
        worst = max(a["capability"][1:], key=lambda c: c["perplexity"]["perplexity"], default=None)
        if worst:
            out.append(f"- Capability cost at sparsity {results['meta']['config']['sparsity']}: perplexity {d['perplexity']['perplexity']:.1f} "
                       f"dense vs up to {worst['perplexity']['perplexity']:.1f} ({worst['condition']}); general-knowledge accuracy "
                       f"{100 * d['general_choice']['summed']['accuracy']:.0f} % dense vs "
                       + ", ".join(f"{100 * c['general_choice']['summed']['accuracy']:.0f} % ({c['condition']})" for c in a["capability"][1:]) + ".")
    if a and a.get("stability"):
        out.append("- Bootstrap stability: mean Jaccard " + ", ".join(f"{r['method']} {r['mean_jaccard']:.2f}" for r in a["stability"])
                   + f" vs {a['stability'][0]['random_jaccard']:.2f} for random masks.")
    return out


def write_report(results: dict, path: str | Path) -> Path:
    return atomic_write_text(path, build_report(results))
