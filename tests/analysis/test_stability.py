
from persona_circuits.analysis.ablation import (group_layers, layer_groups, top_contrastive_removal)
from persona_circuits.analysis.stability import bootstrap_stability
from persona_circuits.masks.build import keep_count


def record_calibration(model, pairs, **kw):
    from persona_circuits.masks.statistics import record_pairs

    return record_pairs(model, pairs, residuals=True, **kw)


def test_stability_and_removal(tiny_llama):
    pa = [("Q1", "Loud party!"), ("Q2", "Big group."), ("Q3", "Everyone!")]
    pb = [("Q1", "Quiet book."), ("Q2", "Alone."), ("Q3", "Home.")]
    ra, rb = record_calibration(tiny_llama, pa), record_calibration(tiny_llama, pb)
    st = bootstrap_stability(tiny_llama, ra, rb, ["a", "b"], method="contrastive-wanda", sparsity=0.5, n_boot=3)
    assert len(st.pairwise_jaccard) == 3 and 0 <= st.mean_jaccard <= 1
    m = top_contrastive_removal(tiny_llama, ra.signature(pole="a"), rb.signature(pole="b"), 0.1)
    for mm in m.masks.values():
        d_in = mm.shape[1]
        assert ((~mm).sum(1) == d_in - keep_count(d_in, 0.1)).all()  # 10 % removed, not 90 %
    assert layer_groups(30, 6)[0] == [0, 1, 2, 3, 4] and sum(map(len, layer_groups(30, 4))) == 30
    assert group_layers(m, kind="mlp") == {n for n in m.masks if ".mlp." in n}
