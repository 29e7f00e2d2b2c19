import numpy as np
import pytest
import torch

from persona_circuits.analysis.gate import (GateSelections, cross_overlap, gate_layout, gate_overlap, gate_summary,
                                            jaccard, packed_selection)
from persona_circuits.masks.gate import projection_gate_masks
from persona_circuits.results import GateAnalysis, GateCrossPair
from persona_circuits.masks.statistics import record_signature


def bits(*idx, n=16):
    v = np.zeros(n, dtype=bool)
    v[list(idx)] = True
    return np.packbits(v)


def test_jaccard_by_hand():
    assert jaccard(bits(0, 1, 2), bits(1, 2, 3)) == pytest.approx(2 / 4)
    assert jaccard(bits(0), bits(9)) == 0.0 and jaccard(bits(), bits()) == 0.0


def test_overlap_takes_each_draws_better_pseudo_pole():
    real = {"a": bits(0, 1, 2, 3), "b": bits(8, 9)}
    nulls = [{"a": bits(8, 9), "b": bits(0, 1)}, {"a": bits(0, 1, 2, 3), "b": bits(10)}]
    out = gate_overlap(real, nulls)
    assert out.poles == 0.0
    assert out.real_vs_null["a"] == [pytest.approx(0.5), 1.0] and out.real_vs_null["b"] == [1.0, 0.0]
    assert out.null_vs_null == [pytest.approx(0.5)]  # draw 0's b against draw 1's a
    cross = cross_overlap({"x": GateSelections(real, nulls), "y": GateSelections({"a": bits(0, 1), "b": bits(9)}, nulls)})
    assert cross[0].sets == ["x", "y"] and cross[0].same == pytest.approx((0.5 + 0.5) / 2)
    assert cross[0].crossed == 0.0 and cross[0].null == [1.0, 1.0]
    assert GateCrossPair.from_dict(cross[0].to_dict()) == cross[0]


def test_layout_summary_and_record_on_a_tiny_model(tiny_llama):
    A = [("Free evening?", "Out with friends.")]
    B = [("Free evening?", "Home with a book.")]
    sa, sb = record_signature(tiny_llama, A, pole="a"), record_signature(tiny_llama, B, pole="b")
    dirs = torch.randn(tiny_llama.cfg.n_layers, tiny_llama.cfg.d_model, generator=torch.Generator().manual_seed(1))
    masks = dict(zip("ab", projection_gate_masks(tiny_llama, sa, sb, dirs)))
    rows = gate_layout(masks)
    assert {r.kind for r in rows} == {"attn", "mlp"} and [r.block for r in rows] == [0, 0, 1, 1]
    assert sum(r.selected["a"] for r in rows) == masks["a"].config.extra["selected"]
    summ = gate_summary(masks)
    assert sum(summ["a"].by_kind.values()) == summ["a"].selected
    packed = {p: packed_selection(m) for p, m in masks.items()}
    assert int(np.bitwise_count(packed["a"]).sum()) == summ["a"].selected
    rec = GateAnalysis(null_draws=1, layout=rows, poles=summ, overlap=gate_overlap(packed, [packed]))
    assert rec.overlap.poles == 0.0 and rec.overlap.real_vs_null["a"] == [1.0]
    assert GateAnalysis.from_dict(rec.to_dict()) == rec
