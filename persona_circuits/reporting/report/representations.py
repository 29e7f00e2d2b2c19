"""Analyses 4 and 5: linear probes against lexical baselines, neutral-text decoding of the active intervention,
and the split-half reliability of the pole difference."""

from __future__ import annotations

import math

from ...results import SetResults, StudyResults
from .text import ci, layer_list, pct, table


def probe_section(res: StudyResults) -> list[str]:
    """Probes next to the bag-of-words and embedding baselines, then the neutral-text decoding."""
    sets = res.sets
    L = ["\n### 4. Linear probes against lexical baselines\n\n![probes](figures/probes.png)\n"]
    if not all(s.probes for s in sets.values()):
        return L + ["(These results predate the probes with lexical baselines; rerun the study.)"]
    L.append("Probes are trained on the calibration texts of both poles and tested on both answers of every held-out "
             "item; the bag-of-words classifier (TF-IDF of the answers + logistic regression) and the embedding probe "
             "(mean token embedding of the same answer tokens) use the same split. A layer is *informative* only where "
             "the paired bootstrap 95 % interval (over held-out items) of its accuracy minus each baseline's lies above 0.\n")
    rows = []
    for name, s in sets.items():
        pr = s.probes
        best = max(pr.layers, key=lambda r: (-1 if math.isnan(r.cv_accuracy) else r.cv_accuracy, -r.layer))
        key = "minus_bag_of_words" if pr.better_baseline == "bag_of_words" else "minus_embedding"
        inf = [r.layer for r in pr.layers if r.informative]
        rows.append([name, f"{pct(pr.bag_of_words.test_accuracy)} % {ci(pr.bag_of_words.test_accuracy_ci95)}",
                     f"{pct(pr.embedding.test_accuracy)} % {ci(pr.embedding.test_accuracy_ci95)}", str(best.layer),
                     f"{pct(best.test_accuracy)} % {ci(best.test_accuracy_ci95)}",
                     f"{100 * getattr(best, key):+.1f} points {ci(getattr(best, key + '_ci95'))}",
                     f"{pct(best.shuffled_test_accuracy)} %", f"{len(inf)} of {pr.n_comparisons}: {layer_list(inf)}"])
    L += table(["set", "bag of words", "embedding probe", "best layer (CV)", "its held-out accuracy",
                "minus the better baseline", "shuffled-label control", "informative layers"], rows)
    L.append("\n(The best layer is chosen by calibration CV accuracy, not by held-out accuracy; "
             f"{sum(s.probes.n_comparisons for s in sets.values())} layer-vs-baseline decisions in all, uncorrected.)\n")
    return L + decoding_block(sets)


def decoding_block(sets: dict[str, SetResults]) -> list[str]:
    """Which pole's intervention is active, decoded from neutral text, next to two random masks."""
    if not all(s.neutral_decoding for s in sets.values()):
        return []
    L = ["**Which pole's intervention is active, decoded from neutral text** (cannot be lexical: the same texts under "
         "both interventions; cross-validation folds split by text; control: labels swapped for half the texts of "
         "every fold). Two masks that damage the model differently are told apart whatever they encode, so the "
         "poles' masks are shown next to two random masks of the same sparsity.\n\n"
         "![neutral decoding](figures/neutral_decoding.png)\n"]
    rows = []
    for name, s in sets.items():
        for label, d in s.neutral_decoding.items():
            best = max(d.layers, key=lambda r: (r.accuracy, -r.layer))
            dec = [r.layer for r in d.layers if r.decodable]
            rows.append([name, label, f"{d.n_texts} ({d.max_tokens if d.max_tokens is not None else '-'})",
                         f"{len(dec)} of {len(d.layers)}: {layer_list(dec)}", str(best.layer),
                         f"{pct(best.accuracy)} % {ci(best.accuracy_ci95)}", f"{pct(best.shuffled_accuracy)} %"])
    return L + table(["set", "intervention", "neutral texts (first tokens)", "decodable layers (95 % CI above 50 %)",
                      "best layer", "accuracy there", "control there"], rows)


def similarity_section(res: StudyResults) -> list[str]:
    """Split-half reliability per set against its permutation null; the paper's cosine for comparison."""
    sets = res.sets
    L = ["\n### 5. Does the pole difference replicate? Split-half reliability\n\n![similarity](figures/similarity.png)\n"]
    if not all(s.similarity for s in sets.values()):
        return L + ["(These results predate the split-half reliability; rerun the study.)"]
    any_sim = next(iter(sets.values())).similarity
    L.append("Per layer: split each pole's calibration texts into random halves and take the cosine between the two "
             "halves' estimates of the pole difference, cos(m(A1) - m(B1), m(A2) - m(B2)), averaged over "
             f"{any_sim.n_splits} splits; null: the same statistic with the pole labels permuted over the pooled texts "
             f"({any_sim.n_permutations} permutations). The paper's cosine of the two poles' means is shown for comparison "
             "only: a component shared by every text enters both means, so a high cosine alone does not show a persona "
             "difference, and no control texts were measured here to size that component.\n")
    rows = []
    for name, s in sets.items():
        layers = s.similarity.layers
        sig = [r.layer for r in layers if r.p_value < 0.05]
        m = max(layers, key=lambda r: r.reliability)
        last = layers[-1]
        rows.append([name, f"{len(sig)} of {len(layers)}: {layer_list(sig)}", f"{m.reliability:.3f} ({m.layer})",
                     f"{m.null_p95:.3f}", f"{m.p_value:.3f}", f"{last.reliability:.3f} / {last.null_p95:.3f}",
                     f"{last.cosine_of_means:.3f}"])
    return L + table(["set", "layers with p < 0.05", "max reliability (layer)", "null 95th pct there", "p there",
                      "last block: reliability / null 95th pct", "paper's cosine of means, last block (not evidence)"], rows)
