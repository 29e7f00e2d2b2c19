"""Analyses of the projection gate (:mod:`persona_circuits.masks.gate`) that can fail.

* **Where the selected weights sit** (:func:`gate_layout`): per block and writer kind (attention ``o``, MLP
  down), how many weights each pole's set holds and the fraction of that matrix. A persona edit spread over
  every block reads differently from one that lives in two late MLPs.
* **Overlap against the null** (:func:`gate_overlap`): the Jaccard index ``|S ∩ T| / |S ∪ T|`` of selected
  sets. The two poles' sets are disjoint by construction (pole B takes ``−p``), so their Jaccard is 0 and is
  recorded only as a check. What can fail is specificity: the real pole-A set is compared with the sets selected
  from balanced label-swapped draws (each draw's own pseudo-pole moments and directions), and the same is done
  between draws. If the real set overlaps the null sets as much as the null sets overlap one another, the
  selection is carried by what every direction picks (large weights of channels with a large mean), not by the
  persona. A draw's pseudo-poles have no natural orientation, so each comparison takes the larger Jaccard of
  the two pseudo-poles.
* **Across personas** (:func:`cross_overlap`): the real sets of two persona sets (same pole with same pole,
  and crossed) against the overlap of their null draws' sets.

Sets are handled as bit-packed flat vectors over the writer weights in :func:`~persona_circuits.masks.gate.writer_layers`
order (``np.packbits``: 4.6 MB per set on the default model), so a study can keep a few per persona set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch

from ..masks.build import Mask
from ..results import GateCrossPair, GateLayoutRow, GateOverlap, GatePole


@dataclass
class GateSelections:
    """One persona set's packed selected sets: the real pair's ``{pole: packed}`` and, per label-swapped draw,
    ``{pseudo-pole: packed}`` (:func:`packed_selection`)."""

    real: dict[str, np.ndarray]
    null: list[dict[str, np.ndarray]]


def packed_selection(mask: Mask) -> np.ndarray:
    """The gated weights of ``mask`` (``False`` entries), every layer in order, bit-packed (uint8)."""
    return np.packbits(np.concatenate([(~mask.masks[n]).cpu().numpy().reshape(-1) for n in mask.masks]))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """``|a ∩ b| / |a ∪ b|`` of two packed sets (0 when both are empty)."""
    union = int(np.bitwise_count(a | b).sum())
    return int(np.bitwise_count(a & b).sum()) / union if union else 0.0


def _best(a: np.ndarray, pair: Sequence[np.ndarray]) -> float:
    return max(jaccard(a, b) for b in pair)


def gate_layout(masks: Mapping[str, Mask]) -> list[GateLayoutRow]:
    """Per writer matrix: ``block``, ``kind`` (``attn``/``mlp``), ``n_weights`` and each pole's selected count."""
    first = next(iter(masks.values()))
    rows = []
    for name in first.masks:
        _, block, kind, _ = name.split(".")
        rows.append(GateLayoutRow(layer=name, block=int(block), kind=kind, n_weights=int(first.masks[name].numel()),
                                  selected={p: int((~m.masks[name]).sum()) for p, m in masks.items()}))
    return rows


def gate_overlap(real: Mapping[str, np.ndarray], nulls: Sequence[Mapping[str, np.ndarray]]) -> GateOverlap:
    """Jaccard of the real poles' sets, of each real set with the null draws' sets, and between null draws.

    Args:
        real: ``{pole: packed set}`` of the real pair.
        nulls: one ``{pole: packed set}`` per label-swapped draw.

    Returns:
        ``poles``: J(A, B); ``real_vs_null``: ``{pole: [per draw]}``; ``null_vs_null``: per pair of draws (each
        draw's larger Jaccard over its two pseudo-poles).
    """
    poles = list(real)
    return GateOverlap(poles=jaccard(real[poles[0]], real[poles[1]]),
                       real_vs_null={p: [_best(real[p], list(n.values())) for n in nulls] for p in poles},
                       null_vs_null=[max(_best(a, list(nulls[j].values())) for a in nulls[i].values())
                                     for i, j in combinations(range(len(nulls)), 2)])


def cross_overlap(sets: Mapping[str, GateSelections]) -> list[GateCrossPair]:
    """Every pair of persona sets: Jaccard of their real sets (``same``: pole 1 with pole 1 and pole 2 with pole 2;
    ``crossed``: pole 1 with pole 2 and back; the mean of the two of each) against the larger of the two Jaccards
    of their null draws' sets, draw ``k`` of one set with draw ``k`` of the other.

    Args:
        sets: ``{set name: its selections}``; sets of different models or writer sizes are not compared (skipped).
    """
    out = []
    for x, y in combinations(list(sets), 2):
        rx, ry = list(sets[x].real.values()), list(sets[y].real.values())
        if rx[0].shape != ry[0].shape:
            continue
        nulls = [max(_best(a, list(ny.values())) for a in nx.values()) for nx, ny in zip(sets[x].null, sets[y].null)]
        out.append(GateCrossPair(sets=[x, y], same=(jaccard(rx[0], ry[0]) + jaccard(rx[1], ry[1])) / 2,
                                 crossed=(jaccard(rx[0], ry[1]) + jaccard(rx[1], ry[0])) / 2, null=nulls))
    return out


def gate_summary(masks: Mapping[str, Mask]) -> dict[str, GatePole]:
    """Per pole: selected count and fraction, the efficiency ratio of its set, and the gated share by kind."""
    out = {}
    for p, m in masks.items():
        e = m.config.extra
        by_kind: dict[str, int] = {}
        for name, keep in m.masks.items():
            kind = name.split(".")[2]
            by_kind[kind] = by_kind.get(kind, 0) + int((~keep).sum())
        out[p] = GatePole(selected=int(e["selected"]), fraction=float(e["selected_fraction"]), ratio=float(e["ratio"]),
                          by_kind=by_kind)
    return out


def as_bits(x: np.ndarray) -> torch.Tensor:
    """A packed set as a tensor (for a study stage stored with ``torch.save``)."""
    return torch.from_numpy(np.ascontiguousarray(x))
