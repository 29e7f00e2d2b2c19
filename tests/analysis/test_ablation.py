import pytest
import torch

from persona_circuits.analysis.ablation import (group_layers, random_removal, removal_comparison,
                                                removal_count, removed_per_row, restore_ablation,
                                                top_contrastive_removal, top_wanda_removal)
from persona_circuits.data import ChoiceItem
from persona_circuits.masks.build import random_mask


def record_calibration(model, pairs, **kw):
    from persona_circuits.masks.statistics import record_pairs

    return record_pairs(model, pairs, residuals=True, **kw)


def _recs(model):
    pa = [("Q1", "Loud party!"), ("Q2", "Big group of friends."), ("Q3", "Everyone come along!")]
    pb = [("Q1", "Quiet book."), ("Q2", "Alone at home."), ("Q3", "Home, with tea.")]
    return record_calibration(model, pa).signature(pole="a"), record_calibration(model, pb).signature(pole="b")


ITEMS = [ChoiceItem(f"i{i}", q, a, b) for i, (q, a, b) in enumerate([
    ("Friday night?", "A big party with everyone.", "A book at home."),
    ("Lunch?", "With the whole team.", "Alone, in the park."),
    ("Holiday?", "A group tour.", "A quiet cabin."),
    ("Weekend?", "Festival with friends.", "Gardening by myself.")])]


@pytest.mark.parametrize("q", [0.001, 0.05, 0.3])
def test_removals_match_counts_per_row(tiny_llama, q):
    sa, sb = _recs(tiny_llama)
    kinds = [top_contrastive_removal(tiny_llama, sa, sb, q), top_contrastive_removal(tiny_llama, sb, sa, q),
             top_wanda_removal(tiny_llama, sa, sb, q), random_removal(tiny_llama, q, seed=0),
             random_removal(tiny_llama, q, seed=1)]
    counts = [removed_per_row(m) for m in kinds]
    for c in counts[1:]:
        assert set(c) == set(counts[0])
        for name in c:
            assert torch.equal(c[name], counts[0][name])
    for name, c in counts[0].items():
        assert (c == removal_count(kinds[0].masks[name].shape[1], q)).all()
    assert not torch.equal(kinds[0].masks[name], kinds[2].masks[name]) or q < 0.01


def test_removal_comparison_and_restore(tiny_llama):
    sa, sb = _recs(tiny_llama)
    r = removal_comparison(tiny_llama, ITEMS, sa, sb, [0.05], n_boot=200)
    row = r.rows[0]
    assert r.matched_count_per_row and row.removed_total == sum(row.removed_per_layer.values())
    assert set(row.shift_vs_dense) == {"remove-b-top", "remove-a-top", "wanda-pooled", "random-0", "random-1"}
    assert row.contrastive_contrast.n == len(ITEMS) and r.poles == ["a", "b"]
    ma, mb = random_mask(tiny_llama, sparsity=0.5, seed=0), random_mask(tiny_llama, sparsity=0.5, seed=1)
    groups = [("block 0", group_layers(ma, blocks=[0])), ("all MLP", group_layers(ma, kind="mlp"))]
    skipped = restore_ablation(tiny_llama, ITEMS, ma, mb, groups, gate=False, n_boot=200)
    assert skipped.rows == [] and "did not pass" in skipped.skipped
    done = restore_ablation(tiny_llama, ITEMS, ma, mb, groups, gate=True, n_boot=200)
    assert [x.restored for x in done.rows] == ["block 0", "all MLP"] and done.skipped is None
    full = done.full_contrast.shift
    assert done.rows[0].fraction_of_full == pytest.approx(done.rows[0].contrast.shift / full)
    # everything restored: the contrast vanishes
    everything = restore_ablation(tiny_llama, ITEMS, ma, mb, [("all", set(ma.masks))], gate=True, n_boot=200)
    assert everything.rows[0].contrast.shift == 0.0
    thr = restore_ablation(tiny_llama, ITEMS, ma, mb, groups, gate=abs(full) + 1.0, n_boot=200)
    assert not thr.gate.passed and thr.gate.threshold == abs(full) + 1.0


def test_restore_gate_given_as_a_test_result(tiny_llama):
    from persona_circuits.analysis.ablation import restore_gate

    from persona_circuits.results import Contrast, NullGate

    full = Contrast(condition="full masks", n=4, shift=0.5, shift_ci95=(0.1, 0.9))
    g = restore_gate(full, {"test": "null_test", "passed": False, "null_threshold": 0.7})
    assert g.passed is False and g.null_threshold == 0.7  # the caller's null test wins over CI > 0
    assert restore_gate(full, NullGate(test="t", passed=False)).passed is False
    assert restore_gate(full, None).passed is True
    with pytest.raises(ValueError):
        restore_gate(full, {"passed": True})
