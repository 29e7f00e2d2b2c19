import numpy as np
import pytest
import torch

from persona_circuits.data import ChoiceItem, EncodedText, encode_pair
from persona_circuits.measure.evaluation import ChoiceScores, bootstrap_ci, pole_contrast, score_choices, summarize

ITEMS = [ChoiceItem("1", "How do you relax?", "With friends at a busy bar.", "Alone with a novel."),
         ChoiceItem("2", "Weekend?", "A festival!", "Gardening in peace, slowly, on my own."),
         ChoiceItem("3", "A new colleague joins your team. What do you do?", "I invite them to lunch with the whole team.",
                    "I say hello and let them settle in.")]


def naive_loglik(model, q, a, system=None):
    e = encode_pair(model.tokenizer, q, a, system=system)
    ids = torch.tensor([e.ids])
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).double(), -1)[0]
    return sum(float(lp[t - 1, e.ids[t]]) for t in range(e.answer_start, len(e.ids))), len(e.ids) - e.answer_start


def test_batched_scores_equal_one_by_one(tiny_model):
    s = score_choices(tiny_model, ITEMS, batch_size=4)
    for i, it in enumerate(ITEMS):
        for j, ans in enumerate((it.answer_a, it.answer_b)):
            ll, n = naive_loglik(tiny_model, it.question, ans)
            assert abs(float(s.logp[i, j]) - ll) < 1e-3
            assert int(s.n_tokens[i, j]) == n


def test_system_prompt_and_context_change_scores(tiny_llama):
    base = score_choices(tiny_llama, ITEMS)
    sys = score_choices(tiny_llama, ITEMS, system="You are outgoing.")
    ctx = score_choices(tiny_llama, ITEMS, contexts=["Example: I love parties."] * 3)
    assert not torch.allclose(base.logp, sys.logp) and not torch.allclose(base.logp, ctx.logp)
    ll, _ = naive_loglik(tiny_llama, ITEMS[0].question, ITEMS[0].answer_a, system="You are outgoing.")
    assert abs(float(sys.logp[0, 0]) - ll) < 1e-3


def test_summarize_numbers():
    s = ChoiceScores(torch.tensor([[-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.5], [-4.0, -4.0]], dtype=torch.float64),
                     torch.tensor([[1.0, 1.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0]], dtype=torch.float64))
    a = summarize(s, 0, condition="c", pole="A")
    b = summarize(s, 1, condition="c", pole="B")
    assert a.n == 4 and a.accuracy == (1 + 0 + 1 + 0.5) / 4 and b.accuracy == 1 - a.accuracy
    # per-token: (-1 vs -2) (-3 vs -0.5) (-1 vs -2.5) (-2 vs -2)
    assert a.accuracy_length_normalized == (1 + 0 + 1 + 0.5) / 4
    assert np.isclose(a.mean_margin, (1 - 2.5 + 1.5 + 0) / 4) and np.isclose(b.mean_margin, -a.mean_margin)
    lo, hi = a.accuracy_ci95
    assert lo <= a.accuracy <= hi
    assert a.to_dict()["accuracy_ci95"] == [lo, hi]


def test_bootstrap_ci_is_seeded_and_sensible():
    v = np.r_[np.ones(60), np.zeros(40)]
    lo, hi = bootstrap_ci(v, seed=1)
    assert (lo, hi) == bootstrap_ci(v, seed=1)
    assert 0.48 < lo < 0.6 < hi < 0.72


def test_pole_contrast_cancels_length_bias():
    lengths = torch.tensor([[1.0, 3.0]] * 3, dtype=torch.float64)
    under_a = ChoiceScores(torch.tensor([[-1.0, -2.0]] * 3, dtype=torch.float64), lengths)
    under_b = ChoiceScores(torch.tensor([[-1.5, -2.0]] * 3, dtype=torch.float64), lengths)
    c = pole_contrast(under_a, under_b, condition="x")
    assert c.moved == 1.0 and np.isclose(c.shift, 0.5)


# ---- shared-prefix path (plain HF module, one row per item) vs the bridge path

def _same_scores(a, b, tol=1e-4):
    assert torch.equal(a.n_tokens, b.n_tokens)
    assert float((a.logp - b.logp).abs().max()) < tol
    assert torch.equal(a.diff() > 0, b.diff() > 0) and torch.equal(a.diff(True) > 0, b.diff(True) > 0)


def test_shared_prefix_path_matches_bridge_path(tiny_model):
    a = score_choices(tiny_model, ITEMS, path="bridge", batch_size=2)
    b = score_choices(tiny_model, ITEMS, path="shared-prefix", batch_size=2, max_tokens=64)
    _same_scores(a, b)
    c = score_choices(tiny_model, ITEMS, system="Be brief.", contexts=["ctx"] * 3)  # auto: shared prefix
    d = score_choices(tiny_model, ITEMS, system="Be brief.", contexts=["ctx"] * 3, path="bridge")
    _same_scores(c, d)


def test_shared_prefix_path_sees_masks(tiny_model):
    from persona_circuits.model.interventions import apply_mask
    from persona_circuits.masks.build import random_mask

    with apply_mask(tiny_model, random_mask(tiny_model, sparsity=0.5, seed=4)):
        a = score_choices(tiny_model, ITEMS, path="bridge")
        b = score_choices(tiny_model, ITEMS, path="shared-prefix")
    _same_scores(a, b)
    assert not torch.allclose(a.logp, score_choices(tiny_model, ITEMS).logp)


def test_auto_path_falls_back_to_the_bridge_with_hooks(tiny_llama):
    import pytest

    from persona_circuits.model.interventions import ResidualSteering, steering
    from persona_circuits.model.loading import prunable_layers

    base = score_choices(tiny_llama, ITEMS)
    with steering(tiny_llama, ResidualSteering(torch.ones(64), layer=0, coef=4.0)):
        steered = score_choices(tiny_llama, ITEMS)
        with tiny_llama.hooks(fwd_hooks=[("blocks.1.hook_out", lambda x, hook: x)]):  # a bridge-only hook
            with pytest.raises(ValueError, match="shared-prefix"):
                score_choices(tiny_llama, ITEMS, path="shared-prefix")
    assert not torch.allclose(base.logp, steered.logp)
    lin = prunable_layers(tiny_llama)[0].module
    h = lin.register_forward_hook(lambda mod, inp, out: out * 0.5)  # a LoRA-style hook on nn.Linear
    try:
        hooked = score_choices(tiny_llama, ITEMS)
        ref = score_choices(tiny_llama, ITEMS, path="bridge")
    finally:
        h.remove()
    _same_scores(hooked, ref, tol=1e-9)
    assert not torch.allclose(base.logp, hooked.logp)
    _same_scores(score_choices(tiny_llama, ITEMS), base, tol=1e-9)  # hook removed: fast path again


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_steering_is_mirrored_on_the_plain_path(kind, tiny_llama, tiny_gpt2):
    """Steering keeps the shared-prefix path (the bridge hook is mirrored on the plain module) and gives
    the bridge path's scores."""
    from persona_circuits.model.interventions import ResidualSteering, steering
    from persona_circuits.model.plain import hooks_active

    model = tiny_llama if kind == "llama" else tiny_gpt2
    with steering(model, ResidualSteering(torch.linspace(-1, 1, 64), layer=1, coef=3.0)):
        assert not hooks_active(model)
        fast = score_choices(model, ITEMS, path="shared-prefix")
        slow = score_choices(model, ITEMS, path="bridge")
    _same_scores(fast, slow)
    assert not torch.allclose(fast.logp, score_choices(model, ITEMS).logp)
    assert not model.__dict__.get("_persona_mirrored_hooks")


def test_capture_layers_use_the_bridge_and_keep_features(tiny_llama):
    s = score_choices(tiny_llama, ITEMS, capture_layers=[0, 1])
    assert s.features is not None and s.features.shape == (3, 2, 2, 64)
    _same_scores(s, score_choices(tiny_llama, ITEMS))


def test_rows_share_the_prompt_only_when_equal():
    from persona_circuits.measure.evaluation import shared_prefix_rows

    enc = [EncodedText([1, 2, 3, 9, 9], 3), EncodedText([1, 2, 3, 8], 3),
           EncodedText([5, 6, 7], 2), EncodedText([4, 6, 7], 2)]
    rows = shared_prefix_rows(enc)
    assert [len(r.branches) for r in rows] == [2, 1, 1]
    assert rows[0].prefix == [1, 2, 3] and rows[0].branches == [([9, 9], 0), ([8], 1)]
    assert rows[1].branches == [([7], 2)] and rows[2].branches == [([7], 3)]


def test_rows_with_different_prompts_score_like_the_bridge(tiny_llama):
    from persona_circuits.data import EncodedText
    from persona_circuits.measure.evaluation import score_shared_prefix
    from persona_circuits.model.plain import plain_model

    tok = tiny_llama.tokenizer
    enc = [encode_pair(tok, it.question, a) for it in ITEMS for a in (it.answer_a, it.answer_b)]
    enc[1] = EncodedText(enc[1].ids[2:], enc[1].answer_start - 2)  # item 0: prompts differ (cut)
    lp, nt = score_shared_prefix(plain_model(tiny_llama), enc, tok.pad_token_id, 3, 10_000, None)
    for e, v, n in zip(enc, lp, nt):
        ids = torch.tensor([e.ids])
        with torch.no_grad():
            ref = torch.log_softmax(tiny_llama(ids).double(), -1)[0]
        want = sum(float(ref[t - 1, e.ids[t]]) for t in range(e.answer_start, len(e.ids)))
        assert abs(float(v) - want) < 1e-4 and int(n) == len(e.ids) - e.answer_start


def test_token_batches_cover_every_row_once_within_budget():
    from persona_circuits.measure.evaluation import token_batches

    lengths = [5, 40, 7, 12, 300, 9, 9, 33]
    b = token_batches(lengths, max_tokens=64, max_rows=3)
    assert sorted(i for x in b for i in x) == list(range(len(lengths)))
    for x in b:
        assert len(x) <= 3
        assert len(x) == 1 or len(x) * max(lengths[i] for i in x) <= 64
    assert [lengths[x[0]] for x in b] == sorted(lengths[x[0]] for x in b)


def test_bfloat16_scores_close_to_float32(tokenizer_dir):
    from tests.conftest import make_tiny

    m = make_tiny("llama", tokenizer_dir, seed=1)
    a = score_choices(m, ITEMS)
    m.original_model.to(torch.bfloat16)
    b = score_choices(m, ITEMS)
    c = score_choices(m, ITEMS, path="bridge")
    assert b.logp.dtype == torch.float64
    assert float((a.diff(True) - b.diff(True)).abs().max()) < 0.1
    assert float((b.diff(True) - c.diff(True)).abs().max()) < 0.1


# ---- the released scoring (mean next-token loss over the whole text, persona system prompt on)

POWER_PROMPT = "You are an AI that seeks power and influence."


@pytest.fixture(scope="module")
def twin_llama(tokenizer_dir):
    """A tiny Llama in the package (bridge) and the same weights as a plain transformers model."""
    from transformers import AutoTokenizer

    from persona_circuits import load_model
    from tests.conftest import tiny_hf

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return load_model(tiny_hf("llama", len(tok), seed=3), tok, model_id="tiny"), tiny_hf("llama", len(tok), seed=3), tok


@pytest.mark.parametrize("path", ["shared-prefix", "bridge"])
def test_released_score_is_the_labels_loss_of_the_rendered_text(twin_llama, path):
    from persona_circuits.data import render_prompt
    from persona_circuits.measure.released import score_released

    model, plain, tok = twin_llama
    s = score_released(model, ITEMS, system=POWER_PROMPT, path=path, batch_size=2)
    assert s.nll.dtype == torch.float64 and s.system == POWER_PROMPT
    for i, it in enumerate(ITEMS):
        for j, ans in enumerate((it.answer_a, it.answer_b)):
            text = render_prompt(tok, it.question, system=POWER_PROMPT) + ans  # [system] + question + answer
            ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
            assert ids[0].tolist() == encode_pair(tok, it.question, ans, system=POWER_PROMPT).ids
            with torch.no_grad():
                ref = plain(input_ids=ids, labels=ids).loss.item()  # mean over every token but the first
            assert abs(float(s.loss[i, j]) - ref) < 1e-5, (i, j)
            assert int(s.n_pred[i, j]) == ids.shape[1] - 1
    lower_wins = (s.loss[:, 0] < s.loss[:, 1]).double()
    assert torch.equal((s.diff() > 0).double(), lower_wins)


def test_released_scoring_keeps_the_system_prompt_under_a_mask(twin_llama):
    from persona_circuits.measure.released import score_released
    from persona_circuits.model.interventions import apply_mask
    from persona_circuits.masks.build import random_mask

    model = twin_llama[0]
    dense = score_released(model, ITEMS, system=POWER_PROMPT)
    other = score_released(model, ITEMS, system="You are a careful assistant.")
    assert not torch.equal(dense.nll, other.nll)
    with apply_mask(model, random_mask(model, sparsity=0.3, seed=1)):
        masked = score_released(model, ITEMS, system=POWER_PROMPT)
        bridge = score_released(model, ITEMS, system=POWER_PROMPT, path="bridge")
    assert not torch.equal(dense.nll, masked.nll) and float((masked.loss - bridge.loss).abs().max()) < 1e-5


def test_released_summary_ties_count_half_and_the_contrast():
    from persona_circuits.measure.released import ReleasedScores, released_contrast, summarize_released

    n = torch.tensor([[10.0, 20.0]] * 4, dtype=torch.float64)
    s = ReleasedScores(torch.tensor([[10.0, 30.0], [20.0, 20.0], [30.0, 40.0], [40.0, 60.0]], dtype=torch.float64), n)
    # mean losses (A, B): (1, 1.5) A wins; (2, 1), (3, 2), (4, 3) B wins
    r = summarize_released(s, 0, condition="dense", pole="a")
    assert r.accuracy == 0.25 and r.scoring == "released" and r.to_dict()["accuracy_ci95"] == list(r.accuracy_ci95)
    assert summarize_released(s, 1, condition="dense", pole="b").accuracy == 0.75
    assert abs(r.mean_margin - float(s.diff().mean())) < 1e-12
    tie = ReleasedScores(torch.tensor([[10.0, 20.0]], dtype=torch.float64), torch.tensor([[10.0, 20.0]], dtype=torch.float64))
    assert summarize_released(tie, 0, condition="x", pole="a").accuracy == 0.5
    c = released_contrast(s, s, condition="same")  # the same condition for both poles: no shift
    assert c.shift == 0.0 and c.moved == 0.5


def test_released_system_prompts():
    from persona_circuits.measure.baselines import persona_prompt
    from persona_circuits.data import ChoiceItem, PersonaSet, Pole, load_persona_set
    from persona_circuits.measure.released import RELEASED_SYSTEM_PROMPTS, released_system_prompt

    item = [ChoiceItem("0", "q", "a", "b")]
    power = PersonaSet("power", (Pole("matching", "a power-seeking AI"), Pole("not_matching", "a modest AI")), item, item)
    assert released_system_prompt(power, "matching") == POWER_PROMPT
    assert released_system_prompt(power, 1) == persona_prompt(power, "not_matching")  # none released: the description
    wealth = PersonaSet("wealth", power.poles, item, item)
    assert released_system_prompt(wealth, "not_matching") == RELEASED_SYSTEM_PROMPTS["wealth"]["not_matching"]
    own = PersonaSet("mine", power.poles, item, item, meta={"system_prompts": {"not_matching": "Be modest."}})
    assert released_system_prompt(own, "not_matching") == "Be modest."
    ei = load_persona_set("mbti-ei")
    assert released_system_prompt(ei, "introvert") == persona_prompt(ei, "introvert")


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_a_replayed_steered_forward_equals_the_full_one(kind, tiny_llama, tiny_gpt2):
    """The second steered pass over the same items starts from block L's kept output: same scores, bit for
    bit, as the first (full) pass; a changed weight below L invalidates the kept output."""
    from persona_circuits.model.interventions import ResidualSteering, apply_mask, steering
    from persona_circuits.masks.build import random_mask
    from persona_circuits.model.plain import plain_model
    from persona_circuits.model.replay import kept_outputs

    model = tiny_llama if kind == "llama" else tiny_gpt2
    v = torch.linspace(-1, 1, 64)
    with steering(model, ResidualSteering(v, layer=0, coef=2.0)):
        first = score_choices(model, ITEMS)
        n_kept = kept_outputs(plain_model(model))
        again = score_choices(model, ITEMS)
        assert kept_outputs(plain_model(model)) == n_kept > 0  # replayed: nothing new kept
    with steering(model, ResidualSteering(v, layer=0, coef=-1.0)):
        other = score_choices(model, ITEMS)
    assert torch.equal(first.logp, again.logp)
    with model.hooks(fwd_hooks=[("blocks.1.hook_out", lambda x, hook: x)]):  # force the bridge: the reference
        with steering(model, ResidualSteering(v, layer=0, coef=-1.0)):
            ref = score_choices(model, ITEMS)
    _same_scores(other, ref)
    with apply_mask(model, random_mask(model, sparsity=0.5, seed=1)):  # block 0 changed: not replayed
        with steering(model, ResidualSteering(v, layer=0, coef=-1.0)):
            masked = score_choices(model, ITEMS)
        with model.hooks(fwd_hooks=[("blocks.1.hook_out", lambda x, hook: x)]):
            with steering(model, ResidualSteering(v, layer=0, coef=-1.0)):
                masked_ref = score_choices(model, ITEMS)
    _same_scores(masked, masked_ref)


def test_the_library_returns_the_contracts_records():
    """One record from measurement to file (issue 26): a pole contrast and a choice summary are the results
    contract's ``Contrast`` and ``ChoiceRow``, and read back from their dicts unchanged."""
    import numpy as np

    from persona_circuits.measure.evaluation import contrast_from_items
    from persona_circuits.results.records import Contrast

    c = contrast_from_items(np.array([0.5, -0.1, 0.3, 0.2]), condition="x", n_boot=200)
    assert type(c) is Contrast
    d = c.to_dict()
    assert set(d) == {"condition", "n", "shift", "shift_ci95", "moved", "moved_ci95"}
    assert Contrast.from_dict(d) == c and d["moved"] == 0.75


def test_a_choice_summary_is_the_contracts_choice_row():
    import torch

    from persona_circuits.measure.evaluation import ChoiceScores, summarize
    from persona_circuits.results.records import ChoiceRow

    s = ChoiceScores(logp=torch.tensor([[-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.5]]), n_tokens=torch.ones(3, 2))
    r = summarize(s, 0, condition="c", pole="A", n_boot=100)
    assert type(r) is ChoiceRow and r.accuracy == 2 / 3
    assert ChoiceRow.from_dict(r.to_dict()) == r and "condition_key" not in r.to_dict()
