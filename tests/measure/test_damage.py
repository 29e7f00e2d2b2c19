import math

import pytest
import torch

from persona_circuits.measure.damage import (DamageError, find_strength, kl_damage, mask_dial, measure_damage,
                                     neutral_reference, pair_damage, steering_dial)
from persona_circuits.model.interventions import Intervention
from persona_circuits.masks.build import random_mask
from persona_circuits.masks.statistics import record_signature

from ..masks.test_masks import A, B

TEXTS = ["The river flows north through the valley and reaches the sea after many miles.",
         "Bread rises because yeast turns sugar into gas, which the dough traps in small pockets.",
         "A triangle has three sides, and its angles add up to one hundred and eighty degrees.",
         "Trains leave the station every hour, and the last one departs just before midnight."]


@pytest.fixture(scope="module")
def ref(tiny_llama):
    return neutral_reference(tiny_llama, TEXTS, batch_size=3)


@pytest.fixture(scope="module")
def sigs(tiny_llama):
    return {"a": record_signature(tiny_llama, A, pole="a"), "b": record_signature(tiny_llama, B, pole="b")}


def test_kl_is_zero_for_the_empty_intervention(tiny_llama, ref):
    for iv in (None, Intervention(), Intervention(system="")):
        kl, ci, ppl, per_text = kl_damage(tiny_llama, iv, ref)
        assert kl < 1e-4 and abs(ci[1]) < 1e-4
        assert abs(ppl - ref.dense_perplexity) / ref.dense_perplexity < 1e-4


def test_kl_grows_with_sparsity(tiny_llama, ref):
    kls = [kl_damage(tiny_llama, random_mask(tiny_llama, sparsity=s, seed=0), ref)[0] for s in (0.05, 0.3, 0.7)]
    assert 0 < kls[0] < kls[1] < kls[2], kls


@torch.no_grad()
def test_kl_matches_a_direct_computation(tiny_llama, ref):
    m = random_mask(tiny_llama, sparsity=0.4, seed=2)
    kl, _, _, per_text = kl_damage(tiny_llama, m, ref)
    tok = tiny_llama.tokenizer
    tot = n = 0.0
    for t in TEXTS:
        ids = torch.tensor([tok(t).input_ids])
        p = torch.log_softmax(tiny_llama(ids)[0, :-1].float(), -1)
        from persona_circuits.model.interventions import apply_mask

        with apply_mask(tiny_llama, m):
            q = torch.log_softmax(tiny_llama(ids)[0, :-1].float(), -1)
        tot += float((p.exp() * (p - q)).sum())
        n += ids.shape[1] - 1
    assert math.isclose(kl, tot / n, rel_tol=2e-3)


def test_a_system_prompt_is_charged_on_the_texts_own_tokens(tiny_llama, ref):
    kl, _, ppl, per_text = kl_damage(tiny_llama, Intervention(system="You are a pirate. Speak like one."), ref)
    assert kl > 0 and len(per_text) == len(TEXTS)


def test_measure_damage_reports_all_three(tiny_llama, ref):
    from persona_circuits.analysis.capability import general_choice_items

    d = measure_damage(tiny_llama, random_mask(tiny_llama, sparsity=0.5), reference=ref, general=general_choice_items(4))
    assert d.kl > 0 and d.kl_ci95[0] <= d.kl <= d.kl_ci95[1]
    assert d.general_n == 4 and 0 <= d.general_accuracy <= 1 and 0 <= d.general_accuracy_dense <= 1
    assert d.perplexity_dense == pytest.approx(ref.dense_perplexity)
    assert set(d.to_dict()) >= {"kl", "kl_ci95", "perplexity", "general_accuracy"}


@pytest.mark.parametrize("method", ["contrastive-wanda", "contrastive-removal"])
def test_strength_search_reaches_its_target(tiny_llama, ref, sigs, method):
    dial = mask_dial(tiny_llama, method, sigs, lo=0.01, hi=0.6)
    d_lo, d_hi = pair_damage(tiny_llama, dial.make(0.01), ref), pair_damage(tiny_llama, dial.make(0.6), ref)
    assert d_lo < d_hi
    target = math.sqrt(d_lo * d_hi)
    res = find_strength(tiny_llama, dial, target, ref, rel_tol=0.1)
    assert res.reached and abs(res.kl - target) <= 0.1 * target
    assert 0.01 < res.strength < 0.6
    assert pair_damage(tiny_llama, dial.make(res.strength), ref) == pytest.approx(res.kl, rel=1e-6)
    out = find_strength(tiny_llama, dial, 100 * d_hi, ref)  # beyond the dial's range
    assert not out.reached and out.strength == 0.6


def test_steering_dial_damage_grows_with_the_coefficient(tiny_llama, ref):
    dial = steering_dial(torch.randn(tiny_llama.cfg.d_model, generator=torch.Generator().manual_seed(0)), 0)
    d = [pair_damage(tiny_llama, dial.make(c), ref) for c in (0.1, 1.0, 10.0)]
    assert d[0] < d[1] < d[2]


def test_bad_targets_and_texts_are_errors(tiny_llama, ref, sigs):
    with pytest.raises(DamageError):
        find_strength(tiny_llama, mask_dial(tiny_llama, "wanda", sigs), 0.0, ref)
    with pytest.raises(DamageError):
        neutral_reference(tiny_llama, [])


def test_lora_and_soft_mask_interventions(tiny_llama, ref):
    from persona_circuits.measure.baselines import LoRA
    from persona_circuits.measure.dials import soft_mask_dial

    lora = LoRA(tiny_llama, rank=2, seed=0)
    assert kl_damage(tiny_llama, Intervention(lora=lora), ref)[0] < 1e-4  # B = 0: the adapted model is the base model
    with torch.no_grad():
        for _, b in lora.params.values():
            b.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    assert kl_damage(tiny_llama, Intervention(lora=lora), ref)[0] > 1e-3
    m = random_mask(tiny_llama, sparsity=0.6, seed=3)
    dial = soft_mask_dial([m])
    d = [pair_damage(tiny_llama, dial.make(s), ref) for s in (0.01, 0.3, 1.0)]  # strength 1 - gamma
    assert d[0] < d[1] < d[2]
    assert d[2] == pytest.approx(kl_damage(tiny_llama, m, ref)[0], rel=1e-6)


def test_the_dense_models_own_kl_is_a_rounding_error(tiny_llama):
    """The stored (bfloat16, renormalised) reference makes the dense model's KL a second-order rounding error."""
    ref = neutral_reference(tiny_llama, n_texts=6)
    assert kl_damage(tiny_llama, None, ref, n_boot=1)[0] < 1e-5


@pytest.mark.parametrize("max_tokens", [66, 129])
def test_kl_rows_shared_across_texts_give_the_same_sums_bit_for_bit(tiny_llama, monkeypatch, max_tokens):
    """Logits of several texts per unembedding call (``KL_ROWS``) against one call per text's group of 64 rows:
    the same per-text KL sums and perplexity, bit for bit, with groups of one row (65 and 128 scored tokens)."""
    import numpy as np

    from persona_circuits.measure import damage

    long = [" ".join([t] * 8) for t in TEXTS]  # over 128 tokens each before the cut
    ref = neutral_reference(tiny_llama, long + TEXTS, max_tokens=max_tokens, batch_size=3)
    assert max(len(i) for i in ref.ids) == max_tokens
    ivs = (None, random_mask(tiny_llama, sparsity=0.4, seed=2), Intervention(system="You are a pirate."))

    def run(rows):
        monkeypatch.setattr(damage, "KL_ROWS", rows)
        return [kl_damage(tiny_llama, iv, ref, n_boot=1) for iv in ivs]

    one, shared, odd = run(damage.LOGIT_CHUNK), run(256), run(100)
    for a, b, c in zip(one, shared, odd):
        assert np.array_equal(a[3], b[3]) and np.array_equal(a[3], c[3])
        assert a[2] == b[2] == c[2] and a[0] == b[0] == c[0]


@torch.no_grad()
def test_kl_rows_keep_each_groups_reductions_at_a_large_vocabulary():
    """At a 49k vocabulary, texts of 91, 65, 27, 130, 1 and 64 scored rows (groups of one and two rows included)
    added in the batches' order: sharing the unembedding between texts changes no bit of the sums. (On the real
    models, where reducing a whole call's rows at once did change the last bits, the same identity is checked by
    ``benchmarks/bench_kl_rows.py``.)"""
    from types import SimpleNamespace

    import numpy as np

    from persona_circuits.measure.damage import LOGIT_CHUNK, KLRows

    g = torch.Generator().manual_seed(0)
    vocab, d = 49152, 16
    head = torch.nn.Linear(d, vocab, bias=False)
    head.weight.copy_(torch.randn(vocab, d, generator=g))
    lengths = (91, 65, 27, 130, 1, 64)
    hidden = [torch.randn(n, d, generator=g) for n in lengths]
    targets = [torch.randint(0, vocab, (n,), generator=g) for n in lengths]
    p = [torch.softmax(head(h * 1.1) + torch.randn(n, vocab, generator=g), -1).to(torch.bfloat16) for h, n in zip(hidden, lengths)]
    ref = SimpleNamespace(dense_p=p, dense_mass=[x.float().sum(-1).double() for x in p],
                          dense_plogp=[torch.xlogy(x.float(), x.float()).sum(-1).double() for x in p])

    def sums(rows):
        kl, nll = np.zeros(len(lengths)), np.zeros(len(lengths))
        acc = KLRows(ref, kl, nll, rows)
        for i in (2, 0, 4, 1, 5, 3):  # the batches' order (by length), not the texts'
            acc.add(i, hidden[i], targets[i], head)
        acc.flush()
        return kl, nll

    one = sums(LOGIT_CHUNK)
    for rows in (100, 256, 1000):
        kl, nll = sums(rows)
        assert np.array_equal(kl, one[0]) and np.array_equal(nll, one[1]), rows


def test_damage_and_scoring_leave_no_reference_cycle(tiny_llama, ref):
    """A call's buffers (the float32 logits, 256 rows of the vocabulary) are freed when it returns: nothing it made
    is left in a reference cycle, which only the garbage collector's rare full passes would free (a Gemma study grew
    by a logits buffer per call until it ran out of memory)."""
    import gc

    from persona_circuits.measure.curves import pair_item_shifts
    from persona_circuits.measure.logits import GroupedLogits

    from .test_evaluation import ITEMS

    pair = [Intervention(mask=random_mask(tiny_llama, sparsity=0.3, seed=0)), Intervention()]

    def calls():
        kl_damage(tiny_llama, pair[0], ref)
        pair_item_shifts(tiny_llama, pair, ITEMS)

    calls()  # first calls: lazily built state is not garbage
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        calls()
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, (torch.Tensor, GroupedLogits))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left, left
