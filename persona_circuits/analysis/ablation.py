"""Ablations: which parts of a mask carry the persona effect, and is a removal more than damage?

Both ablations are measured with the **pole contrast** (:func:`..evaluation.pole_contrast`): the same
held-out items under the pole-A condition vs the pole-B condition; per item
``d = pref_A(condition A) − pref_A(condition B)`` with ``pref_A = LL_A/n_A − LL_B/n_B`` (nats/token),
which cancels answer-length bias and every effect the two conditions share (damage included).

* **Restore** (:func:`restore_ablation`): leave one group of layers (a range of blocks, or a module
  type) dense inside *both* poles' masks and measure the contrast that remains, as a fraction of the
  full masks' contrast, ``f = mean(d_restored) / mean(d_full)`` with a paired bootstrap interval over
  items. A fraction of a contrast that is itself noise means nothing, so the rows are computed only
  when the full contrast passes a test (``gate``): a test made by the caller (the study passes
  :func:`persona_circuits.measure.nulls.null_test` against label-swapped mask pairs on the same items, as a dict
  with ``test`` and ``passed``), a bare decision, a threshold, or, with no gate, the weaker test "its
  95 % bootstrap interval lies above 0" (which ignores the null and says so in the output).
* **Removal** (:func:`removal_comparison`): in the dense model, remove per row the ``q`` fraction of
  weights with the largest contrastive-Wanda score of the *other* pole (condition A removes what
  pole B relies on, condition B what pole A relies on; pole contrast between the two), against two
  pole-agnostic removals of exactly the same number of weights in every row: the top pooled Wanda
  weights ``|W| · a`` with ``a`` from the union of both poles' calibration texts (the most important
  weights; a damage control), and random weights (two seeds, whose contrast with each other is the
  contrast two pole-agnostic removals of that size produce by chance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from ..masks import scoring
from ..masks.build import Mask, MaskConfig, keep_count, random_mask, topk_rows
from ..masks.statistics import DEFAULT_STATISTIC, ActivationSignature
from ..measure.evaluation import ChoiceScores, bootstrap_ci, item_shifts, pole_contrast, score_choices
from ..model.interventions import apply_mask
from ..model.loading import Model, architecture_fingerprint, get_model_id, prunable_layers
from ..results import Contrast, NullGate, Removal, RemovalRow, Restore, RestoreRow

#: ``scorer(label, mask, dense_layers)``: the items' choice scores with ``mask`` applied except on
#: ``dense_layers``; ``label`` names the condition uniquely (callers use it as a cache key).
Scorer = Callable[[str, "Mask | None", frozenset], ChoiceScores]


def layer_groups(n_blocks: int, n_groups: int) -> list[list[int]]:
    edges = [round(i * n_blocks / n_groups) for i in range(n_groups + 1)]
    return [list(range(edges[i], edges[i + 1])) for i in range(n_groups) if edges[i] < edges[i + 1]]


def group_layers(mask: Mask, blocks: list[int] | None = None, kind: str | None = None) -> set[str]:
    out = set()
    for name in mask.masks:
        _, b, k, _ = name.split(".")
        if (blocks is None or int(b) in blocks) and (kind is None or k == kind):
            out.add(name)
    return out


def removal_count(d_in: int, fraction: float) -> int:
    """Weights removed per row at removal fraction ``q``: ``d_in − floor((1 − q) · d_in)``, the same
    count a random mask of sparsity ``q`` removes (so every removal kind is matched row by row)."""
    return d_in - keep_count(d_in, fraction) if fraction > 0 else 0


def _removal_mask(model, fraction: float, modules: str, method: str, score: Callable, pole: str | None = None) -> Mask:
    """Keep-mask removing, per row, the :func:`removal_count` weights with the largest ``score(layer)``
    (ties: larger ``|W|``, then lower index)."""
    out = {}
    for l in prunable_layers(model, modules):
        w = l.weight
        out[l.name] = ~topk_rows(score(l), removal_count(w.shape[1], fraction), tiebreak=w.detach()).cpu()
    cfg = MaskConfig(method, fraction, get_model_id(model), architecture_fingerprint(model), modules=modules, pole=pole)
    return Mask(out, cfg)


@torch.no_grad()
def top_contrastive_removal(model: Model, sig_a: ActivationSignature, sig_b: ActivationSignature, fraction: float,
                            *, modules: str = "all", phi: str = "relu") -> Mask:
    """Keep-mask that removes, per row, the ``fraction`` of weights with the largest pole-A
    contrastive-Wanda score ``|W| φ(z_A)`` (the weights pole A relies on more than pole B)."""
    return _removal_mask(model, fraction, modules, "top-contrastive-removal",
                         lambda l: scoring.contrastive_wanda_scores(l.weight, sig_a, sig_b, l.name, phi)[0], sig_a.pole)


@torch.no_grad()
def top_wanda_removal(model: Model, sig_a: ActivationSignature, sig_b: ActivationSignature, fraction: float, *,
                      modules: str = "all", statistic: str = DEFAULT_STATISTIC) -> Mask:
    """Pole-agnostic control: removes, per row, the ``fraction`` of weights with the largest Wanda
    score ``|W| · a`` where ``a`` is the channel statistic of both poles' texts pooled."""
    pooled = sig_a.merge(sig_b)
    return _removal_mask(model, fraction, modules, "top-wanda-removal",
                         lambda l: scoring.wanda_scores(l.weight, pooled.statistic(l.name, statistic)))


def random_removal(model: Model, fraction: float, *, modules: str = "all", seed: int = 0) -> Mask:
    """Removes :func:`removal_count` uniformly random weights per row."""
    return random_mask(model, sparsity=fraction, modules=modules, seed=seed)


def removed_per_row(mask: Mask) -> dict[str, Int[Tensor, " d_out"]]:
    """Number of removed weights in every row of every layer."""
    return {n: (~m).sum(1) for n, m in mask.masks.items()}


def _default_scorer(model, items, batch_size: int) -> Scorer:

    def fn(label, mask, dense_layers=frozenset()):
        with apply_mask(model, mask, dense_layers=set(dense_layers)):
            return score_choices(model, items, batch_size=batch_size)
    return fn


def restore_gate(full: Contrast, gate: bool | float | NullGate | dict | None) -> NullGate:
    """The gate of the restore ablation: a test made by the caller (a :class:`~persona_circuits.results.NullGate`,
    or its plain dict with ``test`` and ``passed``), the caller's verdict (``bool``), a threshold the full contrast
    must exceed (``float``), or, with ``None``, the interim rule that the full contrast's interval lies above 0."""
    if isinstance(gate, NullGate):
        return gate
    if isinstance(gate, dict):  # e.g. from nulls.null_test: {"test", "passed", ...}
        if "passed" not in gate or "test" not in gate:
            raise ValueError("a gate given as a dict needs the keys 'test' and 'passed'")
        return NullGate.from_dict(gate, "gate")
    if isinstance(gate, bool):
        return NullGate(test="the caller's own test passes", passed=gate)
    if gate is not None:
        return NullGate(test=f"the full contrast exceeds the threshold {gate:+.4f} (e.g. the null's 95th percentile)",
                        threshold=float(gate), passed=bool(full.shift > gate))
    return NullGate(test="interim: the full contrast's 95 % bootstrap interval lies above 0 (no null yet)",
                    passed=bool(full.shift_ci95[0] > 0))


def restore_ablation(model: Model, items, mask_a: Mask, mask_b: Mask, groups: Sequence[tuple[str, set[str]]], *,
                     gate: bool | float | NullGate | dict | None = None, scorer: Scorer | None = None,
                     batch_size: int = 16, seed: int = 0, n_boot: int = 2000, method: str = "given masks",
                     poles: Sequence[str] = ("a", "b")) -> Restore:
    """Restore each layer group to dense inside both poles' masks; the remaining pole contrast as a
    fraction of the full masks' contrast (only when the full contrast passes ``gate``, :func:`restore_gate`; see
    the module docstring). ``groups``: ``(label, layer names)`` pairs; ``method`` and ``poles`` name the masks in
    the record."""
    score = scorer or _default_scorer(model, items, batch_size)
    fa, fb = score("full:a", mask_a, frozenset()), score("full:b", mask_b, frozenset())
    full = pole_contrast(fa, fb, condition="full masks", seed=seed, n_boot=n_boot)
    g = restore_gate(full, gate)
    out = Restore(method=method, poles=list(poles), full_contrast=full, gate=g, rows=[],
                  definition="pole contrast (nats/token) with the group restored to dense in both masks, as a fraction "
                             "of the full masks' pole contrast; interval: paired bootstrap over items")
    if not g.passed:
        out.skipped = (f"the full contrast ({full.shift:+.3f} nats/token) did not pass its gate, which asks that "
                       f"{g.test.split(': ', 1)[-1]}")
        return out
    d_full = item_shifts(fa, fb)
    idx = np.random.default_rng(seed).integers(0, len(d_full), size=(n_boot, len(d_full)))
    den = d_full[idx].mean(1)
    for label, names in groups:
        ra = score(f"restore:{label}:a", mask_a, frozenset(names))
        rb = score(f"restore:{label}:b", mask_b, frozenset(names))
        c = pole_contrast(ra, rb, condition=f"restore {label}", seed=seed, n_boot=n_boot)
        d = item_shifts(ra, rb)
        ratio = d[idx].mean(1) / np.where(den == 0, np.nan, den)
        lo, hi = np.nanpercentile(ratio, [2.5, 97.5])
        out.rows.append(RestoreRow(restored=label, n_layers=len(names), contrast=c, fraction_of_full=c.shift / full.shift,
                                   fraction_ci95=(float(lo), float(hi))))
    return out


def removal_comparison(model: Model, items, sig_a: ActivationSignature, sig_b: ActivationSignature,
                       fractions: Sequence[float], *, modules: str = "all", statistic: str = DEFAULT_STATISTIC,
                       phi: str = "relu", seed: int = 0, scorer: Scorer | None = None, batch_size: int = 16,
                       n_boot: int = 2000, poles: Sequence[str] = ("a", "b")) -> Removal:
    """Top contrastive removal vs top pooled-Wanda and random removal at matched count per row
    (see the module docstring; ``poles`` names ``sig_a``'s and ``sig_b``'s poles in the record). Raises if the
    counts per row are not identical."""
    score = scorer or _default_scorer(model, items, batch_size)
    dense = score("dense", None, frozenset())
    rows = []
    for q in fractions:
        masks = {"remove-b-top": top_contrastive_removal(model, sig_b, sig_a, q, modules=modules, phi=phi),
                 "remove-a-top": top_contrastive_removal(model, sig_a, sig_b, q, modules=modules, phi=phi),
                 "wanda-pooled": top_wanda_removal(model, sig_a, sig_b, q, modules=modules, statistic=statistic),
                 "random-0": random_removal(model, q, modules=modules, seed=seed),
                 "random-1": random_removal(model, q, modules=modules, seed=seed + 1)}
        counts = {k: removed_per_row(m) for k, m in masks.items()}
        ref = counts["random-0"]
        for k, c in counts.items():
            if set(c) != set(ref) or any(not torch.equal(c[n], ref[n]) for n in ref):
                raise AssertionError(f"removal {k} does not remove the same number of weights per row as random")
        s = {k: score(f"{k}:{q}", m, frozenset()) for k, m in masks.items()}
        con = pole_contrast(s["remove-b-top"], s["remove-a-top"], condition="top contrastive", seed=seed, n_boot=n_boot)
        rnd_pair = pole_contrast(s["random-0"], s["random-1"], condition="random pair", seed=seed, n_boot=n_boot)
        d_con = item_shifts(s["remove-b-top"], s["remove-a-top"])
        d_rnd = item_shifts(s["random-0"], s["random-1"])
        vs_dense = {k: pole_contrast(s[k], dense, condition=k, seed=seed, n_boot=n_boot) for k in s}
        rows.append(RemovalRow(
            fraction=q, removed_per_layer={n: int(c.sum()) for n, c in ref.items()},
            removed_total=int(sum(int(c.sum()) for c in ref.values())), contrastive_contrast=con,
            random_pair_contrast=rnd_pair, contrastive_minus_random_pair=float((d_con - d_rnd).mean()),
            contrastive_minus_random_pair_ci95=bootstrap_ci(d_con - d_rnd, n_boot=n_boot, seed=seed),
            shift_vs_dense=vs_dense))
    return Removal(poles=list(poles), rows=rows, matched_count_per_row=True,
                   definition="contrastive_contrast: pole contrast (nats/token) between removing pole B's top contrastive "
                              "weights (towards A) and removing pole A's; random_pair_contrast: the same between two random "
                              "removals of the same count; shift_vs_dense: mean change of the preference for pole A's "
                              "answer against the dense model (wanda-pooled and random are pole-agnostic: a shift there is "
                              "damage that happens to favour one answer)")
