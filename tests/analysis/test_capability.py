import numpy as np

from persona_circuits.analysis.capability import general_choice_items, neutral_texts, perplexity


def test_capability_sets_and_perplexity(tiny_llama):
    assert len(neutral_texts()) >= 120 and len(general_choice_items()) >= 150
    p = perplexity(tiny_llama, neutral_texts(3))
    assert p.n_texts == 3 and p.perplexity > 1 and np.isclose(np.log(p.perplexity), p.mean_nll)
