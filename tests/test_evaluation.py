import numpy as np
import torch

from persona_circuits.data import ChoiceItem, encode_pair
from persona_circuits.evaluation import ChoiceScores, bootstrap_ci, pole_contrast, score_choices, summarize

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
    assert c.accuracy == 1.0 and np.isclose(c.shift, 0.5)
