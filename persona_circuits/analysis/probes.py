"""Linear probes: decode the pole from hidden states, against baselines that a probe must beat.

**Layer probes.** Features are the mean residual stream over the answer tokens after each block.
A logistic regression (scikit-learn, standardised features, fixed ``C``) is cross-validated on the
calibration texts and scored on held-out texts; the control trains the same probe on shuffled
calibration labels.

A high probe accuracy alone says little: the two poles' answers use different words, and any
representation that keeps the words decodes the pole. So every layer's probe is reported next to
two baselines trained and tested on the *same* texts with the same split:

* bag of words: TF-IDF of the answer text (unigrams and bigrams) + logistic regression, ``C`` chosen
  by cross-validation on the training texts (so the baseline is not handicapped);
* embedding probe: the same probe as the layers' on the mean token embedding ``W_E`` over the same
  answer tokens (what the residual stream holds before any block has mixed in context).

A layer is called **informative** only where it beats both: the paired bootstrap 95 % interval of
``acc(layer) − acc(baseline)`` (resampling held-out items, both texts of an item together) lies
above zero for each baseline. One such comparison is made per layer; the report says how many.

**Neutral-text decoding** (:func:`decode_intervention`) cannot be lexical: the same neutral texts
are run under two interventions (two poles' masks, or two persona prompts put before the text), and
a probe decodes which intervention was active from the mean residual over the text's tokens. Cross-
validation folds split by text, so a text never sits in both training and test folds; the control
swaps the two labels of half the texts in every fold (a label permutation that respects the pairing
and leaves every training set balanced, so a real effect cannot leak into the control).
Two identical interventions give bit-identical features for each text, hence exactly 50 %.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import numpy as np
import torch
from jaxtyping import Float, Int
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..results import Decoding, DecodingLayer, LayerProbe, Probes
from .features import text_features

if TYPE_CHECKING:
    from ..model.loading import Model

#: An intervention for :func:`decode_intervention`: a callable returning a context manager (e.g.
#: ``lambda: apply_mask(model, mask)``), a plain-text prefix (e.g. a persona prompt), or ``None`` (dense).
Intervention = Callable[[], AbstractContextManager] | str | None

#: Regularisation strengths tried for the bag-of-words baseline (chosen by CV on the training texts).
BOW_CS = (0.1, 1.0, 10.0, 100.0)


def _probe(C: float, seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))


def _n_splits(y: np.ndarray, folds: int) -> int:
    return int(min(folds, np.bincount(y, minlength=2).min()))


def _cv(make, x, y, folds: int, seed: int) -> float:
    k = _n_splits(y, folds)
    if k < 2:
        return float("nan")
    return float(cross_val_score(make(), x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed)).mean())


def _layer_probes(train_x, train_y, test_x, test_y, *, folds, C, seed) -> tuple[list[dict], np.ndarray]:
    shuffled = np.random.default_rng(seed).permutation(train_y)
    rows, correct = [], []
    for layer in range(train_x.shape[1]):
        xtr, xte = train_x[:, layer], test_x[:, layer]
        pred = _probe(C, seed).fit(xtr, train_y).predict(xte)
        ctrl = float(_probe(C, seed).fit(xtr, shuffled).score(xte, test_y))
        correct.append(pred == test_y)
        rows.append({"layer": layer, "cv_accuracy": _cv(lambda: _probe(C, seed), xtr, train_y, folds, seed),
                     "test_accuracy": float(correct[-1].mean()), "shuffled_test_accuracy": ctrl,
                     "n_train": int(len(train_y)), "n_test": int(len(test_y))})
    return rows, np.array(correct)


def layer_probes(train_x: Float[np.ndarray, "n layer d"], train_y: Int[np.ndarray, " n"],
                 test_x: Float[np.ndarray, "m layer d"], test_y: Int[np.ndarray, " m"], *,
                 folds: int = 5, C: float = 0.1, seed: int = 0) -> list[LayerProbe]:
    """Per layer: CV accuracy on calibration, held-out accuracy, held-out accuracy of a shuffled-label probe
    (one :class:`~persona_circuits.results.LayerProbe` per layer; :func:`probes_with_baselines` adds the baselines)."""
    rows = _layer_probes(train_x, train_y, test_x, test_y, folds=folds, C=C, seed=seed)[0]
    return [LayerProbe.from_dict(r, f"layer_probes[{i}]") for i, r in enumerate(rows)]


def bag_of_words(train_texts: Sequence[str], train_y: np.ndarray, test_texts: Sequence[str], test_y: np.ndarray, *,
                 folds: int = 5, seed: int = 0) -> tuple[dict, np.ndarray]:
    """TF-IDF (word uni- and bigrams, sublinear tf) + logistic regression with ``C`` chosen by CV on
    the training texts. Returns the summary and the per-test-text correctness."""
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, token_pattern=r"(?u)\b\w+\b")
    try:
        xtr, xte = vec.fit_transform(train_texts), vec.transform(test_texts)
    except ValueError:  # no word at all in the training texts: the best a bag of words can do is the majority class
        major = int(np.bincount(train_y, minlength=2).argmax())
        correct = np.asarray(test_y) == major
        return {"test_accuracy": float(correct.mean()), "cv_accuracy": float("nan"), "C": None, "n_features": 0}, correct
    make = lambda C: LogisticRegression(C=C, max_iter=2000, random_state=seed)  # noqa: E731
    cvs = {C: _cv(lambda C=C: make(C), xtr, train_y, folds, seed) for C in BOW_CS}
    C = max(BOW_CS, key=lambda c: (np.nan_to_num(cvs[c], nan=-1.0), -abs(np.log10(c))))  # ties: closest to C = 1
    cv = cvs[C]
    clf = make(C).fit(xtr, train_y)
    correct = clf.predict(xte) == test_y
    return {"test_accuracy": float(correct.mean()), "cv_accuracy": cv, "C": C, "n_features": int(xtr.shape[1])}, correct


def _group_bootstrap(correct: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap accuracies ``[M, n_boot]`` of ``M`` classifiers' correctness ``[M, n]``, resampling
    groups (items) with replacement, the same resamples for every classifier (paired)."""
    _, g = np.unique(groups, return_inverse=True)
    G = int(g.max()) + 1
    sums = np.zeros((correct.shape[0], G))
    np.add.at(sums.T, g, correct.T.astype(float))
    counts = np.bincount(g, minlength=G).astype(float)
    idx = np.random.default_rng(seed).integers(0, G, size=(n_boot, G))
    return sums[:, idx].sum(-1) / counts[idx].sum(-1)


def _ci(b: np.ndarray) -> list[float]:
    lo, hi = np.percentile(b, [2.5, 97.5], axis=-1)
    return [float(lo), float(hi)]


def probes_with_baselines(train_x: Float[np.ndarray, "n layer d"], train_y: Int[np.ndarray, " n"],
                          test_x: Float[np.ndarray, "m layer d"], test_y: Int[np.ndarray, " m"], *,
                          train_texts: Sequence[str], test_texts: Sequence[str],
                          train_embed: Float[np.ndarray, "n d"], test_embed: Float[np.ndarray, "m d"],
                          test_groups: Sequence | None = None, folds: int = 5, C: float = 0.1, seed: int = 0,
                          n_boot: int = 2000) -> Probes:
    """Layer probes next to the bag-of-words and embedding baselines on the same split.

    ``*_texts`` are the texts whose answer tokens the features average over (the answers);
    ``*_embed`` their mean token embeddings; ``test_groups`` the item of each held-out text (texts
    of one item are resampled together; default: each text its own item). A layer is
    ``informative`` where the paired 95 % interval of its accuracy minus each baseline's is above 0.
    """
    groups = np.arange(len(test_y)) if test_groups is None else np.asarray(test_groups)
    rows, correct = _layer_probes(train_x, train_y, test_x, test_y, folds=folds, C=C, seed=seed)
    bow, bow_correct = bag_of_words(train_texts, train_y, test_texts, test_y, folds=folds, seed=seed)
    emb_pred = _probe(C, seed).fit(train_embed, train_y).predict(test_embed)
    emb_correct = emb_pred == test_y
    emb = {"test_accuracy": float(emb_correct.mean()), "cv_accuracy": _cv(lambda: _probe(C, seed), train_embed, train_y, folds, seed),
           "C": C}
    boots = _group_bootstrap(np.vstack([correct, bow_correct[None], emb_correct[None]]), groups, n_boot, seed)
    layer_b, bow_b, emb_b = boots[:-2], boots[-2], boots[-1]
    bow["test_accuracy_ci95"], emb["test_accuracy_ci95"] = _ci(bow_b), _ci(emb_b)
    for r, b in zip(rows, layer_b):
        r["test_accuracy_ci95"] = _ci(b)
        r["minus_bag_of_words"] = r["test_accuracy"] - bow["test_accuracy"]
        r["minus_bag_of_words_ci95"] = _ci(b - bow_b)
        r["minus_embedding"] = r["test_accuracy"] - emb["test_accuracy"]
        r["minus_embedding_ci95"] = _ci(b - emb_b)
        r["informative"] = bool(r["minus_bag_of_words_ci95"][0] > 0 and r["minus_embedding_ci95"][0] > 0)
    out = {"layers": rows, "bag_of_words": bow, "embedding": emb,
           "better_baseline": "bag_of_words" if bow["test_accuracy"] >= emb["test_accuracy"] else "embedding",
           "n_train": int(len(train_y)), "n_test": int(len(test_y)), "n_items": int(len(np.unique(groups))),
           "n_comparisons": len(rows), "n_informative": sum(r["informative"] for r in rows),
           "criterion": "informative = paired bootstrap 95 % interval (over held-out items) of the layer's accuracy "
                        "minus each baseline's lies above 0, for both baselines; one comparison per layer, uncorrected"}
    return Probes.from_dict(out, "probes")


# --------------------------------------------------------------------------------------------
# Which intervention is active? (neutral text)


def intervention_features(model: Model, intervention: Intervention, texts: Sequence[str], *, batch_size: int = 16,
                          max_tokens: int = 256, progress: bool | str = False) -> Float[torch.Tensor, "n layer d_model"]:
    """Mean residuals after every block over each neutral text's first ``max_tokens`` tokens under
    ``intervention``."""

    kw = dict(batch_size=batch_size, max_tokens=max_tokens, progress=progress)
    if isinstance(intervention, str):
        return text_features(model, texts, prefix=intervention, **kw)
    with (contextlib.nullcontext() if intervention is None else intervention()):
        return text_features(model, texts, **kw)


def decode_conditions(feats_a: Float[np.ndarray, "n layer d"], feats_b: Float[np.ndarray, "n layer d"], *,
                      folds: int = 5, C: float = 0.1, seed: int = 0, n_boot: int = 2000) -> Decoding:
    """Per layer, cross-validated accuracy of a probe telling condition A from B on the same texts
    (row ``t`` of both arrays is text ``t``); folds split by text. See the module docstring."""
    n, L = feats_a.shape[:2]
    k = min(folds, n)
    if k < 2:
        raise ValueError(f"need at least 2 texts to cross-validate, got {n}")
    rng = np.random.default_rng(seed)
    pos = np.empty(n, int)
    pos[rng.permutation(n)] = np.arange(n)  # random position of every text
    fold = pos % k
    # control: exchange the two labels of half the texts of every fold (a checkerboard over position
    # in fold and fold, so that every training set is balanced too and no consistent direction is left)
    swap = ((pos // k) + fold) % 2 == 1
    x = np.concatenate([feats_a, feats_b])  # [2n, L, d]: condition A rows, then condition B rows
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    y_ctrl = np.where(np.r_[swap, swap], 1 - y, y)
    f2 = np.r_[fold, fold]
    correct = np.zeros((2, L, 2 * n), bool)  # [real / control, layer, sample]
    for layer in range(L):
        for f in range(k):
            tr, te = f2 != f, f2 == f
            for c, lab in enumerate((y, y_ctrl)):
                pred = _probe(C, seed).fit(x[tr, layer], lab[tr]).predict(x[te, layer])
                correct[c, layer, te] = pred == lab[te]
    per_text = correct.reshape(2, L, 2, n).mean(2)  # [2, L, n]: both samples of a text together
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = per_text[0][:, idx].mean(-1)  # [L, n_boot]
    rows = []
    for layer in range(L):
        ci = _ci(boots[layer])
        rows.append(DecodingLayer(layer=layer, accuracy=float(per_text[0, layer].mean()), accuracy_ci95=ci,
                                  shuffled_accuracy=float(per_text[1, layer].mean()), decodable=bool(ci[0] > 0.5)))
    return Decoding(layers=rows, n_texts=int(n), folds=int(k), n_decodable=sum(r.decodable for r in rows),
                    criterion="decodable = bootstrap 95 % interval over texts of the cross-validated accuracy lies above 0.5")


def decode_intervention(model: Model, intervention_a: Intervention, intervention_b: Intervention, texts: Sequence[str], *,
                        folds: int = 5, C: float = 0.1, seed: int = 0, batch_size: int = 16, n_boot: int = 2000,
                        max_tokens: int = 256, progress: bool | str = False) -> Decoding:
    """Decode which of two interventions is active from hidden states of neutral ``texts``.

    ``intervention_*``: a callable returning a context manager (``lambda: apply_mask(model, m)``,
    ``lambda: steering(model, s)``), a plain-text prefix such as a persona prompt, or ``None``.
    Returns per-layer cross-validated accuracy (folds split by text) with a label-swap control.
    """
    kw = dict(batch_size=batch_size, max_tokens=max_tokens, progress=progress)
    fa = intervention_features(model, intervention_a, texts, **kw)
    fb = intervention_features(model, intervention_b, texts, **kw)
    return decode_conditions(fa.numpy(), fb.numpy(), folds=folds, C=C, seed=seed, n_boot=n_boot).update(max_tokens=max_tokens)
