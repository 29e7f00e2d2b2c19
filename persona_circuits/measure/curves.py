"""Effect against damage: the pole contrast of a method over its strength dial, next to its null band.

For a :class:`~persona_circuits.measure.damage.Dial` (keep-mask sparsity, removal fraction, soft-mask strength,
steering coefficient) and each strength ``s`` on a grid, :func:`dial_curve` measures

* the pole contrast of the dial's two interventions on held-out two-way items (the same items under
  pole A's and pole B's condition; nats/token, share of items moved, bootstrap interval);
* their damage: mean KL(dense ‖ intervened) over the two poles on neutral text;
* the same two numbers for every null dial at the same strength (label-swapped masks, random steering
  directions, random mask pairs...), and the null test of :func:`persona_circuits.measure.nulls.null_test`.

Plotting the contrast against the damage, with the null draws' band on the same axes, answers the
question the study asks: at a given cost to the model, does the persona move it more than a null does?
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from .damage import NeutralReference, kl_damage
from .dials import Dial
from .evaluation import ChoiceScores, bootstrap_ci, item_shifts, pole_contrast, score_choices
from .nulls import null_test
from ..data import ChoiceItem
from ..results import CurvePoint, PairedDiff
from ..model.interventions import Intervention

if TYPE_CHECKING:
    from ..model.loading import Model


def score_intervention(model: Model, iv: Intervention, items: Sequence[ChoiceItem], *, batch_size: int = 16) -> ChoiceScores:
    """Two-way-choice scores of ``items`` with ``iv`` active (its system prompt included)."""
    with iv.active(model):
        return score_choices(model, items, system=iv.system, batch_size=batch_size)


def pair_contrast(model: Model, pair: Sequence[Intervention], items: Sequence[ChoiceItem], reference: NeutralReference, *,
                  batch_size: int = 16, seed: int = 0):
    """``(ContrastResult, mean KL damage)`` of a pair of interventions (pole A's, pole B's)."""
    a, b = pair
    c = pole_contrast(score_intervention(model, a, items, batch_size=batch_size),
                      score_intervention(model, b, items, batch_size=batch_size), condition=a.label, seed=seed)
    dmg = sum(kl_damage(model, iv, reference, n_boot=1)[0] for iv in (a, b)) / 2
    return c, float(dmg)


def dial_curve(model: Model, dial: Dial, strengths: Sequence[float], items: Sequence[ChoiceItem], reference: NeutralReference,
               *, null_dials: Sequence[Dial] = (), batch_size: int = 16, seed: int = 0,
               progress: bool | str = False) -> list[CurvePoint]:
    """Contrast and damage of ``dial`` and of every null dial at each strength (see the module docstring)."""
    out = []
    for s in tqdm(list(strengths), desc=progress if isinstance(progress, str) else dial.name, disable=not progress,
                  leave=False):
        c, dmg = pair_contrast(model, dial.make(s), items, reference, batch_size=batch_size, seed=seed)
        shifts, dmgs = [], []
        for nd in null_dials:
            nc, ndmg = pair_contrast(model, nd.make(s), items, reference, batch_size=batch_size, seed=seed)
            shifts.append(nc.shift)
            dmgs.append(ndmg)
        t = null_test(c.shift, shifts, shift_ci95=c.shift_ci95)
        out.append(CurvePoint(dial=dial.name, strength=float(s), n=c.n, shift=c.shift, shift_ci95=c.shift_ci95,
                              moved=c.moved, damage_kl=dmg, null_shifts=shifts, null_damage_kl=dmgs,
                              null_shift_mean=t.null_shift_mean, null_shift_sd=t.null_shift_sd,
                              null_threshold=t.null_threshold, persona_specific=t.persona_specific))
    return out


# --------------------------------------------------------------------------------------------
# Matched damage: a method's strength at a target damage, and paired comparisons on every item


def pair_item_shifts(model: Model, pair: Sequence[Intervention], items: Sequence[ChoiceItem], *, batch_size: int = 16):
    """:func:`item_shifts` of a pair of interventions (pole A's, pole B's) on ``items``."""
    return item_shifts(score_intervention(model, pair[0], items, batch_size=batch_size),
                       score_intervention(model, pair[1], items, batch_size=batch_size))


def paired_difference(d1, d2, *, n_boot: int = 2000, seed: int = 0) -> PairedDiff:
    """Mean of ``d1 − d2`` over the same items (nats/token) with a paired percentile-bootstrap 95 % interval
    (items are resampled together, so the between-item variance both methods share cancels) and the
    two-sided p-value of a paired t-test (for the study's multiple-comparison adjustment)."""

    d1, d2 = np.asarray(d1, float), np.asarray(d2, float)
    if d1.shape != d2.shape:
        raise ValueError(f"paired difference needs the same items: {d1.shape} vs {d2.shape}")
    diff = d1 - d2
    lo, hi = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
    sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    p = float(2 * stats.t.sf(abs(diff.mean()) / (sd / np.sqrt(len(diff))), len(diff) - 1)) if sd > 0 else (
        1.0 if diff.mean() == 0 else 0.0)
    return PairedDiff(diff=float(diff.mean()), ci95=(lo, hi), n=int(len(diff)), p_value=p,
                      verdict="higher" if lo > 0 else "lower" if hi < 0 else "not distinguishable")
