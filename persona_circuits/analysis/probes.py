"""Linear probes: decode the pole from hidden states at every layer.

Features are the mean residual stream over the answer tokens after each block. A logistic
regression (scikit-learn, standardised features) is cross-validated on the calibration texts and
scored on held-out texts; the control trains the same probe on shuffled calibration labels.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _probe(C: float, seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))


def layer_probes(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                 folds: int = 5, C: float = 0.1, seed: int = 0) -> list[dict]:
    """Per layer: CV accuracy on calibration, held-out accuracy, held-out accuracy of a shuffled-label probe.

    ``train_x``: ``[n, layer, d]``; ``train_y``: 0/1 pole labels.
    """
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(train_y)
    n_splits = int(min(folds, np.bincount(train_y).min()))
    out = []
    for layer in range(train_x.shape[1]):
        xtr, xte = train_x[:, layer], test_x[:, layer]
        cv = (float(cross_val_score(_probe(C, seed), xtr, train_y, cv=StratifiedKFold(n_splits, shuffle=True, random_state=seed)).mean())
              if n_splits >= 2 else float("nan"))
        test_acc = float(_probe(C, seed).fit(xtr, train_y).score(xte, test_y))
        ctrl = float(_probe(C, seed).fit(xtr, shuffled).score(xte, test_y))
        out.append({"layer": layer, "cv_accuracy": cv, "test_accuracy": test_acc, "shuffled_test_accuracy": ctrl,
                    "n_train": int(len(train_y)), "n_test": int(len(test_y))})
    return out
