import numpy as np
import torch

from persona_circuits.analysis.capability import neutral_texts
from persona_circuits.analysis.probes import decode_intervention, layer_probes, probes_with_baselines
from persona_circuits.model.interventions import ResidualSteering, apply_mask, steering
from persona_circuits.masks.build import random_mask
from persona_circuits.results import LayerProbe


def _texts(y, rng, lexical: bool):
    words = np.array(["apple", "banana", "cherry", "river", "stone", "cloud"])
    out = [" ".join(rng.choice(words, 6)) for _ in y]
    return [t + (" loud party" if (lexical and v == 0) else " quiet book" if lexical else "") for t, v in zip(out, y)]


def test_probes_separate_separable_data_and_control_is_chance():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    x = rng.normal(size=(80, 2, 8))
    x[:, 1, 0] += 3 * y  # layer 1 carries the label
    yt = np.r_[np.zeros(30, int), np.ones(30, int)]
    xt = rng.normal(size=(60, 2, 8))
    xt[:, 1, 0] += 3 * yt
    res = layer_probes(x, y, xt, yt)
    assert [r.layer for r in res] == [0, 1] and all(isinstance(r, LayerProbe) for r in res)
    assert res[1].test_accuracy > 0.9 and res[1].cv_accuracy > 0.9
    assert res[0].test_accuracy < 0.75 and res[1].shuffled_test_accuracy < 0.75
    assert (res[1].n_train, res[1].n_test) == (80, 60)


def test_probes_against_baselines():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    yt = np.r_[np.zeros(30, int), np.ones(30, int)]
    x, xt = rng.normal(size=(80, 2, 8)), rng.normal(size=(60, 2, 8))
    x[:, 1, 0] += 3 * y
    xt[:, 1, 0] += 3 * yt
    emb, embt = rng.normal(size=(80, 4)), rng.normal(size=(60, 4))
    groups = np.r_[np.arange(30), np.arange(30)]  # held-out item i holds text i and text 30 + i
    # words carry no label: layer 1 beats both baselines, layer 0 does not
    r = probes_with_baselines(x, y, xt, yt, train_texts=_texts(y, rng, False), test_texts=_texts(yt, rng, False),
                              train_embed=emb, test_embed=embt, test_groups=groups)
    assert [row.informative for row in r.layers] == [False, True]
    assert r.bag_of_words.test_accuracy < 0.75 and r.n_items == 30 and r.n_comparisons == 2
    lo, hi = r.layers[1].test_accuracy_ci95
    assert lo <= r.layers[1].test_accuracy <= hi
    # words carry the label: the same layer is accurate but not informative
    r = probes_with_baselines(x, y, xt, yt, train_texts=_texts(y, rng, True), test_texts=_texts(yt, rng, True),
                              train_embed=emb, test_embed=embt, test_groups=groups)
    assert r.bag_of_words.test_accuracy == 1.0 and r.layers[1].test_accuracy > 0.85
    assert not any(row.informative for row in r.layers) and r.better_baseline == "bag_of_words"


def test_neutral_text_decoding(tiny_llama):
    texts = neutral_texts(16)
    same = decode_intervention(tiny_llama, None, None, texts, n_boot=200)
    assert all(r.accuracy == 0.5 and not r.decodable for r in same.layers)
    m = random_mask(tiny_llama, sparsity=0.3, seed=0)
    same_mask = decode_intervention(tiny_llama, lambda: apply_mask(tiny_llama, m), lambda: apply_mask(tiny_llama, m),
                                    texts, n_boot=200)
    assert all(r.accuracy == 0.5 for r in same_mask.layers)
    v = torch.randn(tiny_llama.cfg.d_model, generator=torch.Generator().manual_seed(0))
    steer = decode_intervention(tiny_llama, None, lambda: steering(tiny_llama, ResidualSteering(v, 0, 10.0)), texts,
                                n_boot=200)
    assert all(r.accuracy > 0.9 and r.decodable for r in steer.layers)
    assert all(0.3 <= r.shuffled_accuracy <= 0.7 for r in steer.layers)  # the control does not leak
    assert steer.n_texts == 16 and steer.folds == 5 and steer.max_tokens == 256
    heavy = random_mask(tiny_llama, sparsity=0.9, seed=1)
    masked = decode_intervention(tiny_llama, None, lambda: apply_mask(tiny_llama, heavy), texts, n_boot=200)
    assert masked.layers[-1].accuracy > 0.8
    prompts = decode_intervention(tiny_llama, "You love parties.", "You love quiet evenings.", texts, n_boot=200)
    assert len(prompts.layers) == tiny_llama.cfg.n_layers
