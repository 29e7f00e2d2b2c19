"""Analysis 3: restoring layer groups inside both masks, and removal at a matched count per row."""

from __future__ import annotations

from ...results import AnalysisSet
from .text import iv, pct, table


def ablation_section(a: AnalysisSet | None) -> list[str]:
    """The restore ablation (or why it was not computed) and the removal table."""
    if a is None:
        return []
    L = [f"\n### 3. Ablation ({a.set}, {a.n_items} held-out items)\n\n![ablation](figures/ablation.png)\n"]
    r = a.restore
    if r is None or a.removal is None:
        return L + ["(These results predate the two-mask restore and the matched-count removal; rerun the study.)"]
    fc = r.full_contrast
    L.append(f"**Restore.** Pole contrast of both {r.method} masks ({' vs '.join(r.poles)}): {fc.shift:+.3f} nats/token "
             f"{iv(fc.shift_ci95)}, {pct(fc.moved)} % of items moved. Gate ({r.gate.test}): "
             f"{'passed' if r.gate.passed else 'not passed'}.\n")
    if r.rows:
        L += table(["restored to dense (both masks)", "layers", "pole contrast", "95 % CI", "fraction of the full contrast",
                    "95 % CI"],
                   [[row.restored, str(row.n_layers), f"{row.contrast.shift:+.3f}", iv(row.contrast.shift_ci95),
                     f"{row.fraction_of_full:.2f}", iv(row.fraction_ci95, "{:.2f}")] for row in r.rows])
    else:
        L.append(f"Restore rows not computed: {r.skipped}; a fraction of a contrast that may be noise would mean nothing. "
                 "The figure shows the removal panel only.")
    rem = a.removal
    L.append(f"\n**Removal** from the dense model, the same number of weights in every row for every kind "
             f"(condition {rem.poles[0]}: remove the weights pole {rem.poles[1]} relies on most, and vice versa). "
             "Contrast: preference for the first pole's answer under the first condition minus under the second; "
             "shift: against the dense model.\n")
    rows = []
    for row in rem.rows:
        c, rp, sv = row.contrastive_contrast, row.random_pair_contrast, row.shift_vs_dense
        rows.append([f"{100 * row.fraction:g} %", str(row.removed_total), f"{c.shift:+.3f} {iv(c.shift_ci95)}",
                     f"{rp.shift:+.3f} {iv(rp.shift_ci95)}",
                     f"{row.contrastive_minus_random_pair:+.3f} {iv(row.contrastive_minus_random_pair_ci95)}",
                     f"{sv['wanda-pooled'].shift:+.3f} {iv(sv['wanda-pooled'].shift_ci95)}",
                     f"{sv['random-0'].shift:+.3f} {iv(sv['random-0'].shift_ci95)}"])
    return L + table(["removed per row", "weights removed", "top contrastive: contrast", "two random removals: contrast",
                      "difference (paired 95 % CI)", "top pooled Wanda: shift", "random: shift"], rows)
