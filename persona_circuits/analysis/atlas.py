"""Atlas: which persona sets share contrastive weights and steering directions, beyond chance.

**Top contrastive weights of a set.** For a persona pair with contrastive z-scores ``z_j`` per input channel
(:func:`~persona_circuits.masks.scoring.contrastive_z`), a weight's *pooled* contrastive-Wanda score is the larger of
its two poles' scores, ``max(|W_ij| φ(z_j), |W_ij| φ(−z_j)) = |W_ij| φ(|z_j|)`` (ReLU or softplus φ, both
increasing). A set's top weights are, in every row, the ``n = d_in − floor((1 − f) d_in)`` weights of largest
pooled score (the count a removal mask of fraction ``f`` removes; ties by ``|W|``, then index, as every mask).
Pooling makes the set of weights independent of which pole is called A, which matters because the poles of
two different sets are not aligned (is *extravert* the pole of *power-seeking*?).

**Overlap.** For two such boolean masks ``A``, ``B`` over the same weights, ``J = |A ∩ B| / |A ∪ B|``, summed
over the rows of a layer, a module type or the whole model before dividing. Two independent random masks that
keep ``k_a`` and ``k_b`` of the ``d`` weights of a row (uniformly) share a hypergeometric number of them, of
mean ``k_a k_b / d``; the *random expectation* reported is the ratio of expectations
``E|A ∩ B| / (|A| + |B| − E|A ∩ B|)`` with ``E|A ∩ B| = Σ_rows k_a k_b / d`` (close to ``E[J]`` for large
masks). Real masks of any two sets overlap more than that, because every score carries ``|W|``: the
**label-swapped null** is the reference. For the pair (X, Y) it is the overlap of X's real top weights with
Y's top weights from label-swapped calibration data (:func:`~persona_circuits.measure.nulls.label_swapped_signatures`:
exactly half of each set's items swapped by default, ``swap``; each set's draws from its own seed,
``derive_seed(seed, "atlas", set)``), pooled with the mirror draws (Y real, X swapped):
``2K`` values from ``K`` draws. The pair's p-value is that of :func:`~persona_circuits.measure.nulls.null_test`
(estimated centre: the t reference of the one-sided 95 % prediction bound), with the permutation p-value
``(1 + #{null ≥ J}) / (2K + 1)`` beside it.

**Steering directions.** Per layer, the cosine between two sets' difference-of-means directions
``v = mean(h | A) − mean(h | B)`` (:func:`~persona_circuits.measure.baselines.steering_vectors`). The sign of a cosine
only says how the poles happen to be ordered, so the tests are two-sided. Against random directions, the
cosine of a uniformly random direction in ``d`` dimensions with a fixed one has ``(1 + c) / 2 ~
Beta((d − 1)/2, (d − 1)/2)``: mean 0, sd ``1 / sqrt(d)``, two-sided p ``2 P(C ≥ |c|)``, in closed form. Residual
streams are far from isotropic, so two unrelated sets' directions vary more than that; when per-text residual
features are given, the test uses **label-swapped directions** instead (``K`` draws of each set, pooled in both
directions as above). Their distribution is symmetric about 0 (the complement of a draw negates it), so the
scale is ``σ₀ = sqrt(mean(null²))`` with ``2K`` degrees of freedom and ``p = 2 · t.sf(|c| / σ₀, 2K)``
(:func:`~persona_circuits.measure.nulls.null_test` with ``center="zero"``, made two-sided).

**One test per pair for the directions** (with label-swapped directions): the statistic is the maximum over
layers of ``|cos|``, and its null the same maximum for each of the ``2K`` pooled draws (the real direction of
one set against a draw of the other's). The p-value is that of :func:`~persona_circuits.measure.nulls.null_test`
(estimated centre) on the logarithms (the maximum of ``|cos|`` is right-skewed; its log much less), Holm over
the pairs (``steering_pair_p``, ``steering_pair_p_holm``, ``steering_pair_shared``). The per-(pair, layer) tests
are kept beside it as a description: a family of pairs x layers at ``α / (pairs · layers)`` can hardly be passed by a
cosine against a unit-normalised null, so a "no" there said nothing.

**Verdicts.** Holm's adjustment (:func:`~persona_circuits.measure.nulls.holm`, the study's rule) at ``alpha`` over the
family of set pairs for the overlap (whole model), and over the set pairs for the directions (above). A
pair "shares more than chance" when its adjusted p-value is below ``alpha``.

Everything here is a function of weights, signatures, per-text statistics and residual features: no forward
pass. Counts are exact (float32 matrix products of 0/1 rows, exact below 2**24 weights per layer; float64 above).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Bool, Float
from scipy import stats
from torch import Tensor

from ..errors import PersonaCircuitsError
from ..masks.build import Mask, remove_count, topk_rows
from ..masks.scoring import contrastive_z, phi as phi_fn, wanda_scores
from ..masks.statistics import DEFAULT_TEXT_STAT, ActivationSignature, PerTextStats
from ..measure.nulls import derive_seed, holm, label_swapped_directions, label_swapped_signatures, null_test
from ..model.loading import prunable_layers
from ..results import Atlas, AtlasPair, OverlapMatrix, SteeringCosines, TestFamily, from_plain


class AtlasError(PersonaCircuitsError, ValueError):
    """The atlas cannot be computed from these inputs (one set, sets of different models or layers...)."""


def layer_groups(name: str) -> list[str]:
    """The groups a prunable layer counts in: ``blocks.3.mlp.out`` -> ``["all", "mlp", "mlp.out", "block 3"]``."""
    parts = name.split(".")
    if len(parts) < 4:
        return ["all", name]
    return ["all", parts[2], f"{parts[2]}.{parts[3]}", f"block {parts[1]}"]


def _weights(model_or_weights, modules: str = "all") -> dict[str, Tensor]:
    if isinstance(model_or_weights, Mapping):
        return dict(model_or_weights)

    return {l.name: l.weight for l in prunable_layers(model_or_weights, modules)}


def _pair(sigs) -> tuple:
    pair = tuple(sigs.values()) if isinstance(sigs, Mapping) else tuple(sigs)
    if len(pair) != 2:
        raise AtlasError(f"a persona pair has two poles, got {len(pair)}")
    return pair


def pooled_contrastive_scores(weight: Float[Tensor, "d_out d_in"], sig_a: ActivationSignature, sig_b: ActivationSignature,
                              layer: str, *, phi: str = "relu", tau: float = 2.0,
                              text_stat: str = DEFAULT_TEXT_STAT) -> Float[Tensor, "d_out d_in"]:
    """``|W| φ(|z|)``: the larger of the two poles' contrastive-Wanda scores ``|W| φ(z)`` and ``|W| φ(−z)`` (``φ``
    increasing), computed once (equal to ``torch.maximum`` of :func:`~persona_circuits.masks.scoring.contrastive_wanda_scores`,
    bit for bit)."""
    z = contrastive_z(sig_a, sig_b, layer, text_stat=text_stat)
    return wanda_scores(weight, phi_fn(z.abs(), phi, tau))


def _top(weight: Tensor, pair: tuple, name: str, n: int, phi: str, tau: float, text_stat: str) -> Bool[Tensor, "d_out d_in"]:
    """One layer's top-``n`` weights per row by the pooled contrastive-Wanda score."""
    score = pooled_contrastive_scores(weight, pair[0], pair[1], name, phi=phi, tau=tau, text_stat=text_stat)
    return topk_rows(score, n, tiebreak=weight.detach())


def top_contrastive_weights(model_or_weights, signatures: Mapping[str, ActivationSignature] | Sequence[ActivationSignature],
                            fraction: float, *, phi: str = "relu", tau: float = 2.0, text_stat: str = DEFAULT_TEXT_STAT,
                            modules: str = "all") -> dict[str, Bool[Tensor, "d_out d_in"]]:
    """Per layer, the top ``fraction`` of every row by the pooled contrastive-Wanda score ``|W| φ(|z|)`` (see the
    module docstring). ``model_or_weights``: a model or ``{layer: [d_out, d_in] weight}``; ``signatures``: the
    pair's two poles."""
    pair = _pair(signatures)
    if not 0.0 < fraction < 1.0:
        raise AtlasError(f"fraction must be in (0, 1), got {fraction}")
    out = {}
    for name, w in _weights(model_or_weights, modules).items():
        if name in pair[0].sums:
            out[name] = _top(w, pair, name, remove_count(w.shape[1], fraction), phi, tau, text_stat).cpu()
    return out


def _as_masks(m) -> dict[str, Tensor]:
    return m.masks if isinstance(m, Mask) else dict(m)


def _summary(inter: float, na: float, nb: float, expected: float) -> dict:
    union = na + nb - inter
    e_union = na + nb - expected
    return {"intersection": int(inter), "size_a": int(na), "size_b": int(nb),
            "jaccard": inter / union if union else 1.0, "expected_intersection": expected,
            "expected_jaccard": expected / e_union if e_union else 1.0}


def pair_overlap(mask_a, mask_b) -> dict:
    """Jaccard of two boolean masks (``Mask`` or ``{layer: [d_out, d_in] bool}``) per layer and per group
    (:func:`layer_groups`: whole model, module kind, module type, block), each next to the random expectation
    for masks of the same per-row densities (ratio of expectations, see the module docstring).

    Returns ``{"layers": {layer: summary}, "groups": {group: summary}}``; a summary holds ``intersection``,
    ``size_a``, ``size_b``, ``jaccard``, ``expected_intersection``, ``expected_jaccard``."""
    a, b = _as_masks(mask_a), _as_masks(mask_b)
    if set(a) != set(b):
        raise AtlasError("the two masks cover different layers")
    layers, acc = {}, {}
    for name in a:
        x, y = a[name].bool(), b[name].to(a[name].device).bool()
        if x.shape != y.shape:
            raise AtlasError(f"layer {name}: shapes {tuple(x.shape)} and {tuple(y.shape)} differ")
        c = np.array([float((x & y).sum()), float(x.sum()), float(y.sum()),
                      float((x.sum(1).double() * y.sum(1).double()).sum() / x.shape[1])])
        layers[name] = _summary(*c)
        for g in layer_groups(name):
            acc[g] = acc.get(g, 0) + c
    return {"layers": layers, "groups": {g: _summary(*c) for g, c in acc.items()}}


# --------------------------------------------------------------------------------------------
# Counts of every pair and null draw, one layer at a time


def _stack(masks: Sequence[Tensor]) -> Tensor:
    n = masks[0].numel()
    return torch.stack([m.reshape(-1) for m in masks]).to(torch.float32 if n < 2 ** 24 else torch.float64)


def _np(t: Tensor) -> np.ndarray:
    return t.double().cpu().numpy()


def _overlap_counts(weights: dict[str, Tensor], pairs: list[tuple], nulls: list[list[tuple]], fraction: float,
                    opts: dict) -> dict[str, dict[str, np.ndarray]]:
    """Per group: ``size [S]``, ``inter [S, S]``, ``expected [S, S]`` of the real top weights, and with ``K`` null
    draws ``null_size [S, K]``, ``null_inter [S, S, K]`` (``[x, y, k]``: X real against Y's draw ``k``)."""
    S, K = len(pairs), len(nulls[0]) if nulls else 0
    acc: dict[str, dict[str, np.ndarray]] = {}
    for name, w in weights.items():
        n = remove_count(w.shape[1], fraction)
        real = [_top(w, p, name, n, **opts) for p in pairs]
        R = _stack(real)
        rows = torch.stack([m.sum(1) for m in real]).double()  # [S, d_out]
        c = {"size": _np(R.sum(1)), "inter": _np(R @ R.T), "expected": _np(rows @ rows.T / w.shape[1]),
             "null_size": np.zeros((S, K)), "null_inter": np.zeros((S, S, K))}
        for k in range(K):
            N = _stack([_top(w, nulls[s][k], name, n, **opts) for s in range(S)])
            c["null_size"][:, k] = _np(N.sum(1))
            c["null_inter"][:, :, k] = _np(R @ N.T)
        for g in layer_groups(name):
            if g not in acc:
                acc[g] = {key: np.zeros_like(v) for key, v in c.items()}
            for key, v in c.items():
                acc[g][key] += v
    return acc


def _jaccards(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Real ``[S, S]``, expected ``[S, S]`` and pooled null ``[S, S, 2K]`` Jaccard indices of one group."""
    size, inter = c["size"], c["inter"]
    union = size[:, None] + size[None, :] - inter
    e_union = size[:, None] + size[None, :] - c["expected"]
    out = {"jaccard": np.divide(inter, union, out=np.ones_like(inter), where=union > 0),
           "expected": np.divide(c["expected"], e_union, out=np.ones_like(inter), where=e_union > 0)}
    ni = c["null_inter"]  # [x, y, k]: X real vs Y swapped
    nu = size[:, None, None] + c["null_size"][None, :, :] - ni
    nj = np.divide(ni, nu, out=np.ones_like(ni), where=nu > 0)
    out["null"] = np.concatenate([nj, nj.transpose(1, 0, 2)], axis=2)  # and Y real vs X swapped
    return out


def _group_order(groups) -> list[str]:
    """``all``, module kinds, module types, then blocks by index."""
    def key(g: str):
        if g == "all":
            return (0, 0, g)
        if g.startswith("block "):
            return (3, int(g.split()[1]) if g.split()[1].isdigit() else 0, g)
        return (1 if "." not in g else 2, 0, g)
    return sorted(groups, key=key)


def _matrix(values: dict[tuple[int, int], object], S: int) -> list[list]:
    """A symmetric ``S x S`` list of lists from ``{(x, y): value}`` over ``x < y`` (``None`` elsewhere)."""
    m: list[list] = [[None] * S for _ in range(S)]
    for (x, y), v in values.items():
        m[x][y] = m[y][x] = v
    return m


def _overlap_block(counts: dict, S: int, alpha: float) -> dict:
    """Matrices per group and the pair tests on the whole model (see the module docstring)."""
    groups = _group_order(counts)
    out: dict = {"groups": groups, "jaccard": {}, "expected_jaccard": {}}
    js = {g: _jaccards(counts[g]) for g in groups}
    n_null = js["all"]["null"].shape[2]
    for g in groups:
        out["jaccard"][g] = js[g]["jaccard"].tolist()
        out["expected_jaccard"][g] = js[g]["expected"].tolist()
        if n_null:
            null = js[g]["null"]
            for key, v in (("null_mean", null.mean(2)), ("null_sd", null.std(2, ddof=1) if n_null > 1 else None),
                           ("null_p95", np.quantile(null, 0.95, axis=2))):
                out.setdefault(key, {})[g] = None if v is None else v.tolist()
    pairs = [(x, y) for x in range(S) for y in range(x + 1, S)]
    tests = {xy: null_test(float(js["all"]["jaccard"][xy]), js["all"]["null"][xy].tolist()) for xy in pairs} \
        if n_null >= 2 else {}
    adj, rej = holm([tests[xy].p_value for xy in tests], alpha=alpha)
    out.update(null_draws_pooled=int(n_null),
               p_value=_matrix({xy: t.p_value for xy, t in tests.items()}, S),
               p_permutation=_matrix({xy: t.null_p_value for xy, t in tests.items()}, S),
               p_holm=_matrix(dict(zip(tests, adj)), S), shared=_matrix(dict(zip(tests, rej)), S))
    return out


# --------------------------------------------------------------------------------------------
# Steering directions


def steering_cosines(vectors: Mapping[str, Float[Tensor, "layer d_model"]]) -> Float[Tensor, "layer n_sets n_sets"]:
    """``cos(v_x[l], v_y[l])`` for every layer and every two sets (float64)."""
    V = torch.stack([v.double() for v in vectors.values()])  # [S, L, d]
    V = V / V.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    return torch.einsum("xld,yld->lxy", V, V)


def random_direction_p(cos: np.ndarray, d: int) -> np.ndarray:
    """Two-sided p-value of ``|c|`` for the cosine of a uniformly random direction in ``d`` dimensions with a fixed
    one: ``(1 + C) / 2 ~ Beta((d − 1)/2, (d − 1)/2)``, ``p = 2 P(C ≥ |c|)``."""

    a = (d - 1) / 2
    return np.minimum(1.0, 2 * stats.beta.sf((1 + np.abs(cos)) / 2, a, a))


def _pair_max_test(cos: np.ndarray, pooled: np.ndarray, alpha: float) -> dict:
    """One test per set pair: max over layers of ``|cos|`` (``cos``: ``[L, S, S]``) against the same maximum of
    each pooled null draw (``pooled``: ``[L, S, S, 2K]``), log scale, estimated centre; Holm over the pairs."""
    S = cos.shape[1]
    obs, nul = np.abs(cos).max(0), np.abs(pooled).max(0)  # [S, S], [S, S, 2K]
    iu = np.triu_indices(S, 1)
    p = [null_test(float(np.log(max(obs[x, y], 1e-300))), np.log(np.maximum(nul[x, y], 1e-300)).tolist()).p_value
         for x, y in zip(*iu)]
    adj, rej = holm(p, alpha=alpha)
    out = {}
    for key, vals in (("pair_p", p), ("pair_p_holm", adj), ("pair_shared", rej)):
        m = np.full((S, S), None, dtype=object)
        m[iu], m[iu[1], iu[0]] = vals, vals
        out[key] = m.tolist()
    return {"pair_max_cos": obs.tolist(), **out}


def _steering_block(vectors: dict[str, Tensor], features: dict[str, tuple] | None, draws: int, seeds: list[int],
                    alpha: float, swap: str = "balanced") -> dict:
    """Cosines per layer with their null (label-swapped directions when ``features`` is given, else random
    directions) and Holm over the (pair, layer) family."""

    S = len(vectors)
    cos = steering_cosines(vectors).numpy()  # [L, S, S]
    L, d = cos.shape[0], next(iter(vectors.values())).shape[-1]
    a = (d - 1) / 2
    out = {"n_layers": L, "d_model": int(d), "cosine": cos.tolist(), "random_mean": 0.0, "random_sd": float(d ** -0.5),
           "random_p95": float(2 * stats.beta.ppf(0.95, a, a) - 1), "p_random": random_direction_p(cos, d).tolist()}
    p = np.asarray(out["p_random"])
    out["null"] = "random directions"
    if features is not None and draws > 0:
        nulls = torch.stack([label_swapped_directions(fa, fb, draws=draws, seed=sd, swap=swap)
                             for (fa, fb), sd in zip(features.values(), seeds)])
        nulls = nulls.double() / nulls.double().norm(dim=-1, keepdim=True).clamp_min(1e-300)  # [S, K, L, d]
        V = torch.stack([v.double() for v in vectors.values()])
        V = V / V.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        nc = torch.einsum("xld,ykld->lxyk", V, nulls).numpy()
        pooled = np.concatenate([nc, nc.transpose(0, 2, 1, 3)], axis=3)  # [L, S, S, 2K]
        sigma0 = np.sqrt((pooled ** 2).mean(3))
        p = np.minimum(1.0, 2 * stats.t.sf(np.abs(cos) / np.maximum(sigma0, 1e-300), pooled.shape[3]))
        out.update(null="label-swapped directions", null_sd=sigma0.tolist(), p_label_swapped=p.tolist(),
                   null_draws_pooled=int(pooled.shape[3]), **_pair_max_test(cos, pooled, alpha))
    iu = np.triu_indices(S, 1)
    adj, rej = holm(p[:, iu[0], iu[1]].ravel().tolist(), alpha=alpha)
    for key, vals in (("p_holm", adj), ("shared", rej)):
        m = np.full((L, S, S), None, dtype=object)
        m[:, iu[0], iu[1]] = m[:, iu[1], iu[0]] = np.asarray(vals, dtype=object).reshape(L, -1)
        out[key] = m.tolist()
    return out


# --------------------------------------------------------------------------------------------
# The atlas


def _inputs(signatures: Mapping, per_text: Mapping | None, steering: Mapping | None) -> tuple:
    """Pole pairs of signatures and per-text statistics, steering vectors and residual features, per set."""
    names = list(signatures)
    if len(names) < 2:
        raise AtlasError(f"an atlas compares at least two persona sets, got {len(names)}")
    pairs = [_pair(signatures[n]) for n in names]
    if len({p.fingerprint for pair in pairs for p in pair}) > 1:
        raise AtlasError("the sets' signatures come from different models")
    stats = None
    if per_text is not None:
        missing = [n for n in names if n not in per_text]
        if missing:
            raise AtlasError(f"per-text statistics missing for {', '.join(missing)} (give them for every set or none)")
        stats = [_pair(per_text[n]) for n in names]
    features = None
    if stats is not None and all(st.resid is not None for pair in stats for st in pair):
        features = {n: (a.resid, b.resid) for n, (a, b) in zip(names, stats)}
    if steering is None and features is not None:
        from ..measure.baselines import steering_vectors

        steering = {n: steering_vectors(a, b) for n, (a, b) in features.items()}
    if steering is not None:
        missing = [n for n in names if n not in steering]
        if missing:
            raise AtlasError(f"steering vectors missing for {', '.join(missing)} (give them for every set or none)")
        steering = {n: steering[n] for n in names}
    return names, pairs, stats, steering, features


def atlas(model_or_weights, signatures: Mapping[str, Mapping[str, ActivationSignature] | Sequence[ActivationSignature]], *,
          per_text: Mapping[str, Mapping[str, PerTextStats] | Sequence[PerTextStats]] | None = None,
          steering: Mapping[str, Float[Tensor, "layer d_model"]] | None = None, fraction: float = 0.01,
          null_draws: int = 10, seed: int = 0, alpha: float = 0.05, phi: str = "relu", tau: float = 2.0,
          text_stat: str = DEFAULT_TEXT_STAT, modules: str = "all", swap: str = "balanced") -> dict:
    """The overlap atlas of persona sets (see the module docstring for every measure and test).

    Args:
        model_or_weights: the model (its prunable weights are read, nothing is run) or ``{layer: weight}``.
        signatures: ``{set: (pole A, pole B) signatures}`` (or ``{set: {pole: signature}}``, in pole order).
        per_text: ``{set: (pole A, pole B) per-text statistics}``, the two answers of the same items row by row:
            the label-swapped nulls of the overlap and, when recorded with residuals, the steering vectors and
            their label-swapped null. Without it the overlaps get no verdict.
        steering: ``{set: [layer, d_model] difference-of-means directions}`` (default: from ``per_text``'s
            residuals when present).
        fraction: the top fraction of every row compared; null_draws: ``K`` label-swapped draws per set.
        seed: set ``X``'s draws are seeded by ``derive_seed(seed, "atlas", X)``; swap: ``"balanced"`` or ``"coins"``.

    Returns a JSON-able dict: ``sets``, the settings, ``overlap`` (``groups``; per group ``jaccard``,
    ``expected_jaccard``, ``null_mean``, ``null_sd``, ``null_p95`` as ``sets x sets`` lists; on the whole model
    ``p_value``, ``p_permutation``, ``p_holm``, ``shared``), ``steering`` (``cosine`` ``[layer][set][set]``,
    ``random_sd``, ``random_p95``, ``p_random``, ``null``, ``p_holm``, ``shared``; ``None`` without vectors),
    ``pairs`` (one summary row per set pair), ``multiple_comparisons`` and ``conclusions`` (sentences).
    """
    names, pairs, stats, steer, features = _inputs(signatures, per_text, steering)
    K = int(null_draws) if stats is not None else 0
    seeds = [derive_seed(seed, "atlas", n) for n in names]
    nulls = [[(d[a.pole or "A"], d[b.pole or "B"]) for d in label_swapped_signatures(
        sa, sb, draws=K, seed=sd, poles=(a.pole or "A", b.pole or "B"), swap=swap)]
        for (a, b), (sa, sb), sd in zip(pairs, stats, seeds)] if K else []
    weights = {n: w for n, w in _weights(model_or_weights, modules).items() if all(n in p[0].sums for p in pairs)}
    if not weights:
        raise AtlasError("the signatures cover none of the model's prunable layers")
    opts = dict(phi=phi, tau=tau, text_stat=text_stat)
    overlap = _overlap_block(_overlap_counts(weights, pairs, nulls, fraction, opts), len(names), alpha)
    steering_out = _steering_block(steer, features, K, seeds, alpha, swap) if steer is not None else None
    out = {"sets": names, "fraction": fraction, "score": "pooled contrastive-Wanda |W| phi(|z|)", "phi": phi,
           "tau": tau if phi == "softplus" else None, "text_stat": text_stat, "modules": modules, "null_draws": K,
           "seed": seed, "null_seeds": dict(zip(names, seeds)), "null_swap": swap, "alpha": alpha, "overlap": overlap,
           "steering": steering_out}
    out["pairs"] = _pair_rows(out)
    out["multiple_comparisons"] = _families(out)
    out["conclusions"] = atlas_conclusions(out)
    return out


def _pair_rows(a: dict) -> list[dict]:
    """One row per set pair: whole-model overlap with its references and test, and the steering cosines."""
    names, ov, st = a["sets"], a["overlap"], a["steering"]
    rows = []
    for x in range(len(names)):
        for y in range(x + 1, len(names)):
            r = {"a": names[x], "b": names[y], "jaccard": ov["jaccard"]["all"][x][y],
                 "expected_jaccard": ov["expected_jaccard"]["all"][x][y]}
            for key in ("null_mean", "null_sd", "null_p95"):
                if key in ov and ov[key]["all"] is not None:
                    r[key] = ov[key]["all"][x][y]
            r.update(p_value=ov["p_value"][x][y], p_holm=ov["p_holm"][x][y], shared=ov["shared"][x][y])
            if st is not None:
                cos = [layer[x][y] for layer in st["cosine"]]
                r.update(cosine=cos, steering_shared_layers=[l for l, m in enumerate(st["shared"]) if m[x][y]])
                if "pair_p" in st:
                    r.update(steering_max_cos=st["pair_max_cos"][x][y], steering_p=st["pair_p"][x][y],
                             steering_p_holm=st["pair_p_holm"][x][y], steering_shared=st["pair_shared"][x][y])
            rows.append(r)
    return rows


def _families(a: dict) -> list[dict]:
    S = len(a["sets"])
    fam = [{"family": "atlas overlap", "method": "holm", "alpha": a["alpha"],
            "n_tests": S * (S - 1) // 2 if a["overlap"]["null_draws_pooled"] >= 2 else 0}]
    if a["steering"] is not None:  # per (pair, layer): descriptive where the per-pair test below exists
        fam.append({"family": "atlas steering cosines", "method": "holm", "alpha": a["alpha"],
                    "n_tests": a["steering"]["n_layers"] * S * (S - 1) // 2, "null": a["steering"]["null"]})
    if a["steering"] is not None and "pair_p" in a["steering"]:
        fam.append({"family": STEERING_PAIR_FAMILY, "method": "holm", "alpha": a["alpha"],
                    "n_tests": S * (S - 1) // 2, "null": a["steering"]["null"]})
    return fam


#: The atlas's family of steering tests: one per set pair (the maximum over layers of |cos|).
STEERING_PAIR_FAMILY = "atlas steering directions (max over layers)"


def atlas_conclusions(a: dict) -> list[str]:
    """Sentences computed from an atlas: which pairs share more than chance, under which rule."""
    rows, fam = a["pairs"], a["multiple_comparisons"]
    L = []
    if fam[0]["n_tests"]:
        hit = [r for r in rows if r["shared"]]
        what = "; ".join(f"{r['a']} & {r['b']} (Jaccard {r['jaccard']:.3f} vs null {r['null_mean']:.3f}, random "
                         f"{r['expected_jaccard']:.3f}, adjusted p {r['p_holm']:.2g})" for r in hit) or "none"
        L.append(f"Top {a['fraction']:g} of each row's contrastive weights: {len(hit)} of {len(rows)} set pairs overlap "
                 f"more than their label-swapped null (Holm over {fam[0]['n_tests']} pairs, alpha {a['alpha']:g}): {what}.")
    else:
        L.append(f"Top {a['fraction']:g} of each row's contrastive weights: no label-swapped null was drawn, so no pair "
                 "is called shared (any two real masks overlap more than random ones: every score carries |W|).")
    if a["steering"] is not None and "pair_p" in a["steering"]:
        hit = [r for r in rows if r["steering_shared"]]
        what = "; ".join(f"{r['a']} & {r['b']} (max |cos| {r['steering_max_cos']:.2f}, adjusted p {r['steering_p_holm']:.2g})"
                         for r in hit) or "none"
        L.append(f"Steering directions: {len(hit)} of {len(rows)} set pairs have a maximum |cos| over layers beyond "
                 f"the same maximum of their label-swapped directions (Holm over {fam[-1]['n_tests']} pairs): {what}.")
    elif a["steering"] is not None:
        hit = [r for r in rows if r["steering_shared_layers"]]
        what = "; ".join(f"{r['a']} & {r['b']} at layer(s) {', '.join(map(str, r['steering_shared_layers']))} "
                         f"(|cos| up to {max(abs(r['cosine'][l]) for l in r['steering_shared_layers']):.2f})"
                         for r in hit) or "none"
        L.append(f"Steering directions: {len(hit)} of {len(rows)} set pairs have a cosine beyond "
                 f"{a['steering']['null']} at some layer (two-sided, Holm over {fam[-1]['n_tests']} pair-layer tests): "
                 f"{what}.")
    return L


def atlas_record(a: dict, *, layer: int | None = None) -> Atlas:
    """The atlas in the results contract's shape (:class:`persona_circuits.results.Atlas`): one overlap matrix per
    group, the steering cosines at ``layer`` (default: the middle layer), the pair tests, their families and the
    computed conclusions."""
    ov = a["overlap"]
    overlaps = [OverlapMatrix(by=g, sets=a["sets"], jaccard=ov["jaccard"][g], method=a["score"],
                              random_expectation=ov["expected_jaccard"][g],
                              null_p95=ov["null_p95"][g] if ov.get("null_p95") else None) for g in ov["groups"]]
    steering = None
    st = a["steering"]
    if st is not None:
        layer = st["n_layers"] // 2 if layer is None else layer
        steering = SteeringCosines(sets=a["sets"], cosine=st["cosine"][layer], random_mean=st["random_mean"],
                                   random_p95=st["random_p95"], layer=layer)
    return Atlas(overlaps=overlaps, method=f"top {a['fraction']:g} by {a['score']}", steering=steering, sets=a["sets"],
                 pairs=from_plain(list[AtlasPair], a["pairs"], "atlas.pairs"),
                 multiple_comparisons=from_plain(list[TestFamily], a["multiple_comparisons"], "atlas.multiple_comparisons"),
                 conclusions=a["conclusions"], fraction=a["fraction"], null_draws=a["null_draws"])
