"""Optional sections: the 16 MBTI types built by composing axis masks, and the atlas of overlaps between
persona sets. Each is left out when ``results.json`` has no such results."""

from __future__ import annotations

import numpy as np

from ...results import Atlas, TypesResult
from .text import iv, opt, table


def types_section(t: TypesResult | None) -> list[str]:
    """A 16 x 4 table of pole contrasts (``*``: beats its null) and each axis's interference."""
    if t is None:
        return []
    L = ["\n### 9. The 16 types: axis masks composed\n\n![types](figures/types.png)\n",
         f"Each type composes the masks of its poles on the {len(t.axes)} axes"
         + (f" ({t.method})" if t.method else "") + "; each cell is that axis's pole contrast (nats/token) with the "
         "composed masks" + (f", on {t.n_items} items" if t.n_items else "")
         + (f", against {t.null_draws} null draws" if t.null_draws else "") + " (`*`: persona-specific).\n"]
    rows = []
    for r in t.rows:
        by_axis = {c.axis: c for c in r.contrasts}
        rows.append([r.type] + [f"{by_axis[a].shift:+.3f}{'*' if by_axis[a].persona_specific else ''}"
                                if a in by_axis else "-" for a in t.axes] + [opt(r.damage_kl, "{:.3f}")])
    L += table(["type"] + t.axes + ["damage (KL)"], rows)
    if t.interference:
        L.append("\n**Interference** (an axis's contrast with the other axes' masks composed, minus alone):\n")
        L += table(["axis", "alone", "composed (mean over types)", "change", "95 % CI"],
                   [[i.axis, f"{i.alone_shift:+.3f}", f"{i.composed_shift:+.3f}", f"{i.change:+.3f}",
                     iv(i.change_ci95) if i.change_ci95 else "-"] for i in t.interference])
    return L


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


def atlas_section(a: Atlas | None) -> list[str]:
    """Per module type / layer: how many set pairs overlap beyond random density and the label-swapped null."""
    if a is None:
        return []
    L = ["\n### 10. Atlas: overlap between persona sets\n\n![atlas](figures/atlas.png)\n",
         "Jaccard overlap of the kept weights between every pair of persona sets' masks"
         + (f" ({a.method})" if a.method else "") + ", next to the expectation for random masks of the same density "
         "and the label-swapped null's 95th percentile where the study drew it.\n"]
    rows = []
    for m in a.overlaps:
        j = np.asarray(m.jaccard, dtype=float)
        iu = _pairs(len(m.sets))
        rnd = np.asarray(m.random_expectation, dtype=float)[iu] if m.random_expectation else None
        null = np.asarray(m.null_p95, dtype=float)[iu] if m.null_p95 else None
        rows.append([m.by, f"{len(iu[0])}", f"{j[iu].mean():.3f}" if len(iu[0]) else "-",
                     f"{rnd.mean():.3f}" if rnd is not None else "not measured",
                     f"{int((j[iu] > null).sum())}" if null is not None else "not measured"])
    L += table(["module type / layer", "set pairs", "mean Jaccard", "random-density expectation (mean)",
                "pairs above the label-swapped null"], rows)
    if a.steering:
        c = np.asarray(a.steering.cosine, dtype=float)[_pairs(len(a.steering.sets))]
        above = (f"{int((c > a.steering.random_p95).sum())} of {len(c)} pairs above random directions' 95th percentile "
                 f"({a.steering.random_p95:.3f})" if a.steering.random_p95 is not None else "random directions not measured")
        L.append(f"\nSteering directions: mean cosine between sets {c.mean():.3f}; {above}.")
    return L
