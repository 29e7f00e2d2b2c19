"""REPORT.md from ``results.json``: tables, figure references and data-driven conclusions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._io import atomic_write_text
from .study.plan import MAIN_METHODS

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


def in_study_order(results: dict) -> dict:
    """``results`` with its sets in the study's order (MBTI axes, then the AI tasks as the paper lists them):
    ``results.json`` is written with sorted keys, which would otherwise order the tables and panels
    alphabetically."""
    from .study.plan import AI_TASKS

    names = list(results.get("sets", {}))
    rank = {t: i for i, t in enumerate(AI_TASKS)}
    order = sorted(names, key=lambda n: (n in rank, rank.get(n, 0), n))
    return {**results, "sets": {n: results["sets"][n] for n in order}}


def build_report(results: dict) -> str:
    results = in_study_order(results)
    meta = results.get("meta", {})
    sets = results["sets"]
    L = []
    L.append("# persona_circuits: study report\n")
    L.append(f"Regenerate with `{meta.get('command') or 'persona-circuits reproduce'}` "
             f"({'quick' if meta.get('quick') else 'full'} run, model `{meta.get('model')}`, "
             f"{meta.get('cpu_count')} CPU cores, torch {meta.get('torch')}, weights and forward passes in "
             f"{meta.get('dtype', 'float32')} (statistics accumulated in float64), {meta.get('seconds')} s, finished {meta.get('finished')}). "
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
                            ("random-mask", "random mask"),
                            ("wanda", "Wanda persona mask"), ("contrastive-wanda", "contrastive Wanda"),
                            ("contrastive-sparse", "contrastive sparse"),
                            ("sft", "LoRA fine-tuning (upper bound)")]:
            cells = []
            for t in ai:
                r = _row(sets[t], cond, "matching")
                p = paper.get(t, {}).get(cond)
                cells.append(f"{p:.1f}" if p is not None else "-")
                if t in LENGTH_DECIDED:
                    cells.append("(not reported: length decides it)")
                else:
                    cells.append(f"{_pct(r['accuracy'])} {_ci(r['accuracy_ci95'])}" if r else "-")
                cells.append(f"{_pct(r['accuracy_length_normalized'])} {_ci(r['accuracy_length_normalized_ci95'])}" if r else "-")
            L.append(f"| {label} | " + " | ".join(cells) + " |")
        L.append("\nSteering appears in the matched-damage table below (its coefficient is set by a damage target). "
                 "Sparsity of the masks here: the paper's setting, which does the damage shown in the per-set contrast tables.")
        L.extend(_length_note(sets))
        L.append("")

    # ---- headline: effect against damage
    L += effect_damage_section(sets)

    # ---- per-set tables
    L.append("## Alignment per persona set\n")
    L.append("![main accuracy](figures/main_accuracy.png)\n")
    for name, s in sets.items():
        poles = s["poles"]
        L.append(f"### {name} ({' / '.join(poles)}; {s['n_calibration']} calibration texts per pole, {s['n_test']} held-out items)\n")
        summed = name not in LENGTH_DECIDED
        L.append("| condition | " + " | ".join((f"{p}: acc sum | " if summed else "") + f"{p}: acc per token | {p}: margin"
                                            for p in poles) + " |")
        L.append("|---" * (1 + (3 if summed else 2) * len(poles)) + "|")
        conds = []
        for r in s["conditions"]:
            if r["condition"] not in conds:
                conds.append(r["condition"])
        for c in conds:
            cells = []
            for p in poles:
                r = _row(s, c, p)
                cell = ([f"{_pct(r['accuracy'])} {_ci(r['accuracy_ci95'])}",
                         f"{_pct(r['accuracy_length_normalized'])} {_ci(r['accuracy_length_normalized_ci95'])}",
                         f"{r['mean_margin']:+.3f}"] if r else ["-", "-", "-"])
                cells += cell if summed else cell[1:]
            L.append(f"| {c} | " + " | ".join(cells) + " |")
        L.append("")
        L.append("Pole contrast (same items, pole-A condition vs pole-B condition; shift of the per-token preference for "
                 f"`{poles[0]}`'s answer, nats/token, and share of items that moved towards it):\n")
        L.append("| method | shift | 95 % CI | items moved | 95 % CI | damage (KL, nats/token) |")
        L.append("|---|---|---|---|---|---|")
        for c in s["contrasts"]:
            dmg = f"{c['damage_kl']:.3f}" if c.get("damage_kl") is not None else "-"
            L.append(f"| {c['condition']} | {c['shift']:+.3f} | {_iv(c['shift_ci95'])} | "
                     f"{_pct(c['accuracy'])} | {_ci(c['accuracy_ci95'])} | {dmg} |")
        L.append("\nMasks here are at the study's sparsity; their nulls, and every method at matched damage, are in the "
                 "headline section.")
        if s.get("steering"):
            st = s["steering"]
            L.append(f"\nSteering layer {st['layer']} (chosen on calibration items); its coefficients come from the damage targets.")
        if s.get("sft"):
            costs = "; ".join(
                f"{p}: {c['steps']} steps over {c['epochs']} epoch(s) (at most {c.get('max_epochs', c['epochs'])}), "
                f"{c['tokens']} tokens, {c['seconds']:.0f} s, {c['trainable_parameters']} trainable parameters, held-out "
                f"calibration loss {' → '.join(f'{v:.3f}' for v in c.get('val_losses') or [])}"
                + (" (stopped falling)" if c.get("converged") else " (still falling at the maximum)" if c.get("converged") is False else "")
                for p, c in s["sft"].items())
            L.append(f"\nLoRA fine-tuning, trained until its held-out calibration loss stops falling: {costs}.")
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
        L.extend(_ablation_section(a))
    L.append("\n### 4. Linear probes against lexical baselines\n\n![probes](figures/probes.png)\n")
    L.extend(_probe_section(sets))
    L.append("\n### 5. Does the pole difference replicate? Split-half reliability\n\n![similarity](figures/similarity.png)\n")
    L.extend(_similarity_section(sets))
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


def _iv(ci, fmt="{:+.3f}") -> str:
    return "[" + fmt.format(ci[0]) + ", " + fmt.format(ci[1]) + "]"


def _layer_list(layers: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2, 5, 7-8`` (``none`` when empty)."""
    if not layers:
        return "none"
    out, start = [], layers[0]
    for prev, cur in zip(layers, layers[1:] + [None]):
        if cur != prev + 1:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = cur
    return ", ".join(out)


def _ablation_section(a: dict) -> list[str]:
    L = []
    r = a.get("restore") or {}
    if "full_contrast" not in r:
        return ["(These results predate the two-mask restore and the matched-count removal; rerun the study.)"]
    fc = r["full_contrast"]
    L.append(f"**Restore.** Pole contrast of both {r['method']} masks ({' vs '.join(r['poles'])}): {fc['shift']:+.3f} nats/token "
             f"{_iv(fc['shift_ci95'])}, {_pct(fc['accuracy'])} % of items moved. Gate ({r['gate']['test']}): "
             f"{'passed' if r['gate']['passed'] else 'not passed'}.\n")
    if r["rows"]:
        L.append("| restored to dense (both masks) | layers | pole contrast | 95 % CI | fraction of the full contrast | 95 % CI |")
        L.append("|---|---|---|---|---|---|")
        for row in r["rows"]:
            c = row["contrast"]
            L.append(f"| {row['restored']} | {row['n_layers']} | {c['shift']:+.3f} | {_iv(c['shift_ci95'])} | "
                     f"{row['fraction_of_full']:.2f} | {_iv(row['fraction_ci95'], '{:.2f}')} |")
    else:
        L.append(f"Restore rows not computed: {r['skipped']}; a fraction of a contrast that may be noise would mean nothing.")
    rem = a["removal"]
    L.append(f"\n**Removal** from the dense model, the same number of weights in every row for every kind "
             f"(condition {rem['poles'][0]}: remove the weights pole {rem['poles'][1]} relies on most, and vice versa). "
             "Contrast: preference for the first pole's answer under the first condition minus under the second; "
             "shift: against the dense model.\n")
    L.append("| removed per row | weights removed | top contrastive: contrast | two random removals: contrast | "
             "difference (paired 95 % CI) | top pooled Wanda: shift | random: shift |")
    L.append("|---|---|---|---|---|---|---|")
    for row in rem["rows"]:
        c, rp, sv = row["contrastive_contrast"], row["random_pair_contrast"], row["shift_vs_dense"]
        L.append(f"| {100 * row['fraction']:g} % | {row['removed_total']} | {c['shift']:+.3f} {_iv(c['shift_ci95'])} | "
                 f"{rp['shift']:+.3f} {_iv(rp['shift_ci95'])} | {row['contrastive_minus_random_pair']:+.3f} "
                 f"{_iv(row['contrastive_minus_random_pair_ci95'])} | {sv['wanda-pooled']['shift']:+.3f} "
                 f"{_iv(sv['wanda-pooled']['shift_ci95'])} | {sv['random-0']['shift']:+.3f} {_iv(sv['random-0']['shift_ci95'])} |")
    return L


def _probe_section(sets: dict) -> list[str]:
    if not all(isinstance(s.get("probes"), dict) for s in sets.values()):
        return ["(These results predate the probes with lexical baselines; rerun the study.)"]
    L = ["Probes are trained on the calibration texts of both poles and tested on both answers of every held-out "
         "item; the bag-of-words classifier (TF-IDF of the answers + logistic regression) and the embedding probe "
         "(mean token embedding of the same answer tokens) use the same split. A layer is *informative* only where "
         "the paired bootstrap 95 % interval (over held-out items) of its accuracy minus each baseline's lies above 0.\n"]
    L.append("| set | bag of words | embedding probe | best layer (CV) | its held-out accuracy | minus the better baseline | "
             "shuffled-label control | informative layers |")
    L.append("|---|---|---|---|---|---|---|---|")
    for name, s in sets.items():
        pr = s["probes"]
        best = max(pr["layers"], key=lambda r: (np.nan_to_num(r["cv_accuracy"], nan=-1), -r["layer"]))
        key = "minus_bag_of_words" if pr["better_baseline"] == "bag_of_words" else "minus_embedding"
        inf = [r["layer"] for r in pr["layers"] if r["informative"]]
        L.append(f"| {name} | {_pct(pr['bag_of_words']['test_accuracy'])} % {_ci(pr['bag_of_words']['test_accuracy_ci95'])} | "
                 f"{_pct(pr['embedding']['test_accuracy'])} % {_ci(pr['embedding']['test_accuracy_ci95'])} | {best['layer']} | "
                 f"{_pct(best['test_accuracy'])} % {_ci(best['test_accuracy_ci95'])} | {100 * best[key]:+.1f} points "
                 f"{_ci(best[key + '_ci95'])} | {_pct(best['shuffled_test_accuracy'])} % | "
                 f"{len(inf)} of {pr['n_comparisons']}: {_layer_list(inf)} |")
    L.append("\n(The best layer is chosen by calibration CV accuracy, not by held-out accuracy; "
             f"{sum(s['probes']['n_comparisons'] for s in sets.values())} layer-vs-baseline decisions in all, uncorrected.)\n")
    if all("neutral_decoding" in s for s in sets.values()):
        L.append("**Which pole's intervention is active, decoded from neutral text** (cannot be lexical: the same texts under "
                 "both interventions; cross-validation folds split by text; control: labels swapped for half the texts of "
                 "every fold). Two masks that damage the model differently are told apart whatever they encode, so the "
                 "poles' masks are shown next to two random masks of the same sparsity.\n\n"
                 "![neutral decoding](figures/neutral_decoding.png)\n")
        L.append("| set | intervention | neutral texts (first tokens) | decodable layers (95 % CI above 50 %) | best layer | accuracy there | control there |")
        L.append("|---|---|---|---|---|---|---|")
        for name, s in sets.items():
            for label, d in s["neutral_decoding"].items():
                best = max(d["layers"], key=lambda r: (r["accuracy"], -r["layer"]))
                dec = [r["layer"] for r in d["layers"] if r["decodable"]]
                L.append(f"| {name} | {label} | {d['n_texts']} ({d.get('max_tokens', '-')}) | {len(dec)} of {len(d['layers'])}: {_layer_list(dec)} | "
                         f"{best['layer']} | {_pct(best['accuracy'])} % {_ci(best['accuracy_ci95'])} | {_pct(best['shuffled_accuracy'])} % |")
    return L


def _similarity_section(sets: dict) -> list[str]:
    if not all(isinstance(s.get("similarity"), dict) for s in sets.values()):
        return ["(These results predate the split-half reliability; rerun the study.)"]
    any_sim = next(iter(sets.values()))["similarity"]
    L = ["Per layer: split each pole's calibration texts into random halves and take the cosine between the two "
         "halves' estimates of the pole difference, cos(m(A1) - m(B1), m(A2) - m(B2)), averaged over "
         f"{any_sim['n_splits']} splits; null: the same statistic with the pole labels permuted over the pooled texts "
         f"({any_sim['n_permutations']} permutations). The paper's cosine of the two poles' means is shown for comparison "
         "only: it is near 1 for any two sets of texts (a shared component dominates every mean), so it is not evidence.\n"]
    L.append("| set | layers with p < 0.05 | max reliability (layer) | null 95th pct there | p there | last block: reliability / null 95th pct | "
             "paper's cosine of means, last block (not evidence) |")
    L.append("|---|---|---|---|---|---|---|")
    for name, s in sets.items():
        rows = s["similarity"]["layers"]
        sig = [r["layer"] for r in rows if r["p_value"] < 0.05]
        m = max(rows, key=lambda r: r["reliability"])
        last = rows[-1]
        L.append(f"| {name} | {len(sig)} of {len(rows)}: {_layer_list(sig)} | {m['reliability']:.3f} ({m['layer']}) | "
                 f"{m['null_p95']:.3f} | {m['p_value']:.3f} | {last['reliability']:.3f} / {last['null_p95']:.3f} | "
                 f"{last['cosine_of_means']:.3f} |")
    return L


#: Sets where the answers' length decides the summed score (see :func:`_length_note`): only the per-token
#: accuracy and the pole contrast are reported for them.
LENGTH_DECIDED = ("hallucination",)


def _length_note(sets: dict) -> list[str]:
    names = [n for n in sets if n in LENGTH_DECIDED]
    if not names:
        return []
    parts = []
    for n in names:
        s = sets[n]
        t = s.get("answer_tokens") or {}
        d = _row(s, "dense", s["poles"][0])
        parts.append(f"{n}: " + ", ".join(f"{p} {v:.1f}" for p, v in t.items()) + " tokens per answer on average"
                     + (f"; the dense model already prefers the {s['poles'][0]} answer per token on "
                        f"{_pct(d['accuracy_length_normalized'])} % of items" if d else ""))
    return [f"\n**{', '.join(names)}: per-token accuracy and the pole contrast only.** A summed log-likelihood falls "
            "with every token, so when one pole's answers are systematically longer the summed score picks the shorter "
            "answer whatever the persona (" + "; ".join(parts) + "). Dividing by the number of tokens removes that direct "
            "dependence, but answers of different length and style still start from a lopsided preference, so per-token "
            "accuracy mostly reports that starting point (and any damage large enough to overturn it). The pole contrast (the same items under both poles' conditions, "
            "per token) cancels what the two conditions share, answer length included: read these sets by their "
            "contrast, in the matched-damage table."]


def _null_cells(p: dict) -> tuple[str, str, str]:
    sd = f"{p['null_shift_sd']:.3f}" if p.get("null_shift_sd") is not None else "-"
    nm = f"{p['null_shift_mean']:+.3f} ± {sd}" if p.get("null_shift_mean") is not None else "-"
    thr = f"{p['null_threshold']:+.3f}" if p.get("null_threshold") is not None else "-"
    return nm, thr, "yes" if p.get("persona_specific") else "no"


def effect_damage_section(sets: dict) -> list[str]:
    """The headline: the matched-damage table per set, then every curve point (in a folded block)."""
    with_curves = {n: s["effect_damage"] for n, s in sets.items() if s.get("effect_damage")}
    if not with_curves:
        return []
    L = ["## Headline: effect against damage\n",
         "The question: **at equal damage to the model, does a training-free mask move the model towards a persona more "
         "than a null mask, a persona prompt, RAG and steering do?** Damage is the mean KL(dense || intervened) over both "
         "poles' conditions on neutral text (nats/token); the effect is the pole contrast (the same held-out items under "
         "pole A's condition minus under pole B's: the shift of the per-token preference for pole A's answer, nats/token).\n",
         "![effect against damage](figures/effect_damage.png)\n",
         "Each method's contrast over its strength dial, with the same dial built from label-swapped calibration data "
         "(masks) or from random directions of the persona vector's norm at the same layer (steering) at every strength "
         "(hollow markers; dotted: their one-sided 95 % prediction bound). A point is persona-specific (*) only above "
         "that bound, mean + t(0.95, K−1)·sd·sqrt(1 + 1/K), with its own bootstrap interval above 0.\n"]
    n_null_tests, n_paired = 0, 0
    L.append("### Matched-damage table\n")
    L.append("![matched damage](figures/matched_damage.png)\n")
    first = next(iter(with_curves.values()))
    L.append("Each method's strength is interpolated (log strength against log damage) from its measured curve to each "
             "target damage and measured there again: the real pair on **every held-out item** (contrast, interval, share "
             f"of items moved), and the real pair with its {first.get('matched_null_draws', first['null_draws'])} null pairs on the curve's "
             f"{first['n_items_curve']} items (the null test: same items, same strength). `− prompt` and `− steering`: "
             "the paired difference (same items) to the persona prompt (at its own damage) and to steering at the same "
             "target, with a paired bootstrap 95 % interval. A target outside a dial's measured damages is not "
             "extrapolated (\"not reached\").\n")
    for name, ed in with_curves.items():
        L.append(f"#### {name} ({ed['n_items_table']} held-out items; null test on {ed['n_items_curve']} items, "
                 f"{ed.get('matched_null_draws', ed['null_draws'])} null draws; damage on {ed['n_damage_texts']} neutral texts)\n")
        L.append("| method | target KL | strength | damage (KL) | contrast, all items | 95 % CI | moved | null on curve items: mean ± sd | "
                 "contrast on curve items | null 95 % bound | persona-specific | − prompt [95 % CI] | − steering [95 % CI] |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in ed.get("matched", []):
            if not r.get("reached"):
                lo, hi = r.get("curve_damage_range") or r.get("fit_damage_range") or [float("nan")] * 2
                L.append(f"| {r['method']} | {r['target_kl']:g} | not reached (curve damage {lo:.3g} to {hi:.3g}) |"
                         + " - |" * 10)
                continue
            nm, thr, spec = _null_cells(r)
            n_null_tests += 1
            vp = r.get("vs_prompt")
            vs = r.get("vs_steering")
            n_paired += bool(vp) + bool(vs)
            L.append(f"| {r['method']} | {r['target_kl']:g} | {r['strength']:.4g} | {r['damage_kl']:.3f} | {r['shift']:+.3f} | "
                     f"{_iv(r['shift_ci95'])} | {_pct(r['moved'])} | {nm} | {r.get('curve_shift', (r.get('strength_matched_null') or {}).get('shift', float('nan'))):+.3f} | {thr} | {spec} | "
                     + (f"{vp['diff']:+.3f} {_iv(vp['ci95'])} |" if vp else "- |")
                     + (f" {vs['diff']:+.3f} {_iv(vs['ci95'])} |" if vs else " - |"))
        for cond, label in (("prompt", "persona prompt"), ("rag", "RAG"), ("sft", "LoRA (upper bound)")):
            pr = (ed.get("points") or {}).get(cond)
            if pr:
                dmg = f"{pr['damage_kl']:.3f}" if pr.get("damage_kl") is not None else "-"
                L.append(f"| {label} | - | - | {dmg} | {pr['shift']:+.3f} | {_iv(pr['shift_ci95'])} | {_pct(pr['moved'])} | "
                         "no null | - | - | untested | - | - |")
        L.append("")
    L.append(f"Comparisons in these tables: {n_null_tests} null tests and {n_paired} paired differences, each at the 95 % "
             "level with no correction for their number: expect about one in twenty of the null tests to pass by chance "
             "where there is no effect.\n")
    L.append("### Every curve point\n")
    for name, ed in with_curves.items():
        L.append(f"<details><summary>{name}: {sum(len(v) for v in ed['curves'].values())} points "
                 f"({ed['n_items_curve']} held-out items each)</summary>\n")
        L.append("| method | strength | damage (KL) | contrast | 95 % CI | moved | null: mean ± sd | null damage | null 95 % bound | persona-specific |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for method, pts in ed["curves"].items():
            for p in pts:
                nm, thr, spec = _null_cells(p)
                nd = f"{sum(p['null_damage_kl']) / len(p['null_damage_kl']):.3f}" if p["null_damage_kl"] else "-"
                tag = f" (matched to {p['matched_target']:g})" if p.get("matched_target") else ""
                L.append(f"| {method} | {p['strength']:.4g}{tag} | {p['damage_kl']:.3f} | {p['shift']:+.3f} | "
                         f"{_iv(p['shift_ci95'])} | {_pct(p['moved'])} | {nm} | {nd} | {thr} | {spec} |")
        L.append("\n</details>\n")
    return L


def headline_conclusions(sets: dict) -> list[str]:
    """Counts over every set's matched-damage rows and curve points (nothing here is a fixed sentence)."""
    eds = {n: s["effect_damage"] for n, s in sets.items() if s.get("effect_damage")}
    if not eds:
        return []
    out = []
    rows = [(n, r) for n, ed in eds.items() for r in ed.get("matched", [])]
    methods = list(dict.fromkeys(r["method"] for _, r in rows))
    mask_specific = []
    for m in methods:
        rr = [(n, r) for n, r in rows if r["method"] == m]
        reached = [(n, r) for n, r in rr if r.get("reached")]
        spec = [f"{n} at KL {r['target_kl']:g}" for n, r in reached if r.get("persona_specific")]
        if m != "steering":
            mask_specific += [f"{m}: {x}" for x in spec]

        def tally(key, reached=reached):
            v = [r[key]["verdict"] for _, r in reached if r.get(key)]
            return (f"higher in {v.count('higher')}, lower in {v.count('lower')}, not distinguishable in "
                    f"{v.count('not distinguishable')} of {len(v)}") if v else None
        parts = [f"reached in {len(reached)} of {len(rr)} (set, target) rows",
                 f"beats its null in {len(spec)}" + (f" ({'; '.join(spec)})" if spec else "")]
        if tally("vs_prompt"):
            parts.append("paired against the persona prompt: " + tally("vs_prompt"))
        if tally("vs_steering"):
            parts.append("against steering at the same damage: " + tally("vs_steering"))
        out.append(f"- **Matched damage, {m}**: " + "; ".join(parts) + ".")
    mask_rows = [r for _, r in rows if r["method"] != "steering" and r.get("reached")]
    if mask_rows:
        above_steer = [r for r in mask_rows if (r.get("vs_steering") or {}).get("verdict") == "higher"]
        out.append(f"- Over {len(mask_rows)} matched mask rows, {len(mask_specific)} beat their label-swapped null"
                   + (f" ({'; '.join(mask_specific)})" if mask_specific else "")
                   + f" and {len(above_steer)} move the model more than steering at the same damage.")
    for m in dict.fromkeys(k for ed in eds.values() for k in ed["curves"]):
        pts = [(n, p) for n, ed in eds.items() for p in ed["curves"].get(m, [])]
        spec = [(n, p) for n, p in pts if p["persona_specific"]]
        lo = min((p["damage_kl"] for _, p in spec), default=None)
        out.append(f"- **Curves, {m}**: {len(spec)} of {len(pts)} points over {len({n for n, _ in pts})} sets beat their null"
                   + (f" (lowest damage among them {lo:.3g} nats/token)" if spec else "") + ".")
    return out


def conclusions(results: dict) -> list[str]:
    sets = results["sets"]
    out = headline_conclusions(sets)
    rho = (results.get("meta", {}).get("config") or {}).get("sparsity")
    methods = ["wanda", "contrastive-wanda", "contrastive-sparse", "prompt", "rag", "sft"]
    for m in methods:
        sig = [(n, _significant(c)) for n, s in sets.items() for c in s["contrasts"] if c["condition"] == m]
        if not sig:
            continue
        pos = [n for n, v in sig if v > 0]
        neg = [n for n, v in sig if v < 0]
        dmg = [c["damage_kl"] for s in sets.values() for c in s["contrasts"] if c["condition"] == m and c.get("damage_kl") is not None]
        where = f" at sparsity {rho}" if m in MAIN_METHODS else ""
        dtxt = f" (damage {min(dmg):.3g} to {max(dmg):.3g} nats/token)" if dmg else ""
        out.append(f"- **{m}**{where}{dtxt}: the pole contrast on every held-out item is positive with a 95 % interval "
                   f"above zero in {len(pos)} of {len(sig)} sets{' (' + ', '.join(pos) + ')' if pos else ''}"
                   + (f"; reversed in {', '.join(neg)}" if neg else "") + ".")
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
    pap = results.get("paper", {}).get("mbti_difference_rate", {})
    wd = [(n, s["overlap"]["wanda"]["overall"]["difference_rate"], s["overlap"]["random"]["overall"]["difference_rate"])
          for n, s in sets.items()]
    cmp = [f"{n} {100 * d:.2f} %" + (f" (paper {pap[n]} %)" if n in pap else "") for n, d, _ in wd]
    both = [(100 * d, pap[n]) for n, d, _ in wd if n in pap]
    rel = ("" if not both else
           f"; on the {len(both)} set(s) the paper reports, ours are {'all below' if all(x < y for x, y in both) else 'all above' if all(x > y for x, y in both) else 'on both sides of'} its values")
    out.append("- Opposite-pole Wanda masks differ in " + ", ".join(cmp) +
               f" of entries, against {100 * wd[0][2]:.0f} % for two random masks of the same sparsity{rel}.")
    if all(isinstance(s.get("probes"), dict) for s in sets.values()):
        parts = []
        for n, s in sets.items():
            pr = s["probes"]
            bb = pr["better_baseline"].replace("_", " ")
            parts.append(f"{n} {pr['n_informative']} of {pr['n_comparisons']} layers (better baseline: {bb}, "
                         f"{100 * pr[pr['better_baseline']]['test_accuracy']:.0f} %)")
        n_inf = sum(s["probes"]["n_informative"] for s in sets.values())
        out.append("- Probes beat both lexical baselines (bag of words and embedding probe) at " + "; ".join(parts) + ". "
                   + ("No layer decodes the pole better than the words of the answers do, so the probes give no evidence of "
                      "a persona representation beyond the lexical content." if n_inf == 0 else
                      "Only those layers carry pole information beyond the answers' words (uncorrected for the number of layers)."))
    if all("neutral_decoding" in s for s in sets.values()):
        ref = "two random masks (reference)"
        parts = [f"{n} / {label}: {d['n_decodable']} of {len(d['layers'])} layers"
                 for n, s in sets.items() for label, d in s["neutral_decoding"].items() if label != ref]
        line = ("- Which pole's intervention is active is decodable from neutral text (95 % interval above chance) at: "
                + "; ".join(parts) + ".")
        refs = [s["neutral_decoding"][ref] for s in sets.values() if ref in s["neutral_decoding"]]
        cw = [s["neutral_decoding"].get("contrastive-wanda masks") for s in sets.values()]
        if refs and all(cw):
            r = refs[0]
            n_ref, mean_ref = r["n_decodable"], float(np.mean([x["accuracy"] for x in r["layers"]]))
            mean_cw = [float(np.mean([x["accuracy"] for x in d["layers"]])) for d in cw]
            above = sum(m > mean_ref for m in mean_cw)
            line += (f" Two random masks of the same sparsity are decodable at {n_ref} of {len(r['layers'])} layers "
                     f"(mean accuracy over layers {100 * mean_ref:.0f} %); the poles' contrastive-Wanda masks have a higher mean "
                     f"accuracy in {above} of {len(cw)} sets" + (", so their decodability alone is no evidence of persona structure."
                                                                    if above == 0 else "."))
        out.append(line)
    if all(isinstance(s.get("similarity"), dict) for s in sets.values()):
        parts = [f"{n} {sum(r['p_value'] < 0.05 for r in s['similarity']['layers'])} of {len(s['similarity']['layers'])}"
                 for n, s in sets.items()]
        lo = min(r["cosine_of_means"] for s in sets.values() for r in s["similarity"]["layers"][len(s["similarity"]["layers"]) // 2:])
        out.append("- The pole-difference direction replicates across split halves beyond the permutation null "
                   "(p < 0.05) at " + ", ".join(parts) + f" layers. The paper's cosine of the means is at least {lo:.3f} "
                   "in the later half of the layers of every set, as it would be for any texts.")
    a = results.get("analysis")
    if a and "full_contrast" in (a.get("restore") or {}):
        r = a["restore"]
        if r["rows"]:
            lo = min(r["rows"], key=lambda x: x["fraction_of_full"])
            out.append(f"- Restoring {lo['restored']} to dense in both masks leaves {lo['fraction_of_full']:.2f} of the full pole "
                       f"contrast (95 % CI {_iv(lo['fraction_ci95'], '{:.2f}')}), the lowest of {len(r['rows'])} groups.")
        else:
            out.append(f"- Restore ablation not computed: {r['skipped']}.")
        for row in a["removal"]["rows"]:
            lo_, hi_ = row["contrastive_minus_random_pair_ci95"]
            verdict = ("larger than" if lo_ > 0 else "smaller than" if hi_ < 0 else "not distinguishable from")
            out.append(f"- Removing {100 * row['fraction']:g} % of each row: the top-contrastive removals' pole contrast "
                       f"({row['contrastive_contrast']['shift']:+.3f}) is {verdict} that of two random removals of the same count "
                       f"({row['random_pair_contrast']['shift']:+.3f}; paired difference {_iv(row['contrastive_minus_random_pair_ci95'])}); "
                       f"the same count of top pooled-Wanda weights shifts the preference by {row['shift_vs_dense']['wanda-pooled']['shift']:+.3f}.")
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
