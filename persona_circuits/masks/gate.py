"""The projection gate: a persona edit in the weights, chosen for what it does to the persona direction.

**Scores.** Take a writer matrix ``W`` (``[d_model, d_in]``) of block ``l``: the attention output ``o`` or
the MLP down projection (``blocks.{l}.attn.o``, ``blocks.{l}.mlp.out``), whose output is added to the
residual stream. Removing weight ``W_ij`` changes output ``i`` by ``−W_ij x_j``. Along the persona direction
``v_l`` (the unit difference of pole A's and pole B's mean residuals after block ``l``) its expected push is

    ``p_ij = −W_ij · E[x_j] · v_l[i]``

and its expected squared change of the output is ``c_ij = W_ij² · E[x_j²]``. A uniform gate ``(1 − s)`` on a
set ``S`` of weights pushes the residual by ``s · Σ_S p`` along ``v`` at a first-order damage proportional to
``s² · Σ_S c`` (the KL of a small change of the logits is quadratic in it; the cross terms
``W_ij W_ik E[x_j x_k]`` are left out: ``c`` is the diagonal of that quadratic form). At any fixed damage the
push is therefore largest for the set that maximises the **efficiency ratio**

    ``R(S) = Σ_S p / sqrt(Σ_S c)``.

**Selection.** For a fixed ``C = Σ_S c`` the largest ``Σ_S p`` is a fractional knapsack, solved by taking the
weights in decreasing ``p / c``; so the optimum of ``R`` is a prefix of that order (a threshold on ``p / c``),
and only weights with ``p > 0`` can be in it (a weight with ``p ≤ 0`` lowers the numerator and raises the
denominator). The builder sorts the eligible weights once by ``p / c`` (descending; ties by lower flat index,
a stable sort), takes cumulative sums of ``p`` and ``c`` (float64) and keeps the prefix at the first argmax of
``R``. **Scope: the whole model.** The damage of weights in different matrices adds (to first order, under the
same diagonal approximation), and the push of every block lands in the one residual stream read by the
unembedding, so the ratio is one sum over every writer matrix and the threshold on ``p / c`` is one number for
the whole model (a per-matrix threshold would maximise a different quantity: each matrix's own ratio).
Pole B uses ``−p`` (the same ``c``): its set is disjoint from pole A's.

**Moments.** ``E[x_j]`` (signed) and ``E[x_j²]`` are the token means of the two poles' activation signatures
pooled: ``(Σ_A x + Σ_B x) / (N_A + N_B)`` and likewise for ``x²``, over the tokens the signatures record (the
study records answer tokens, ``tokens="answer"``: the positions that read the answers; the mask's config
stores the selection). Both poles are pooled because the gate acts on both poles' inputs alike.

**The mask.** The selected weights are marked pruned (``False`` in the keep mask) and the gate strength ``s``
is stored in the config (``sparsity = s``, ``extra["gamma"] = 1 − s``), so
``apply_mask(model, mask, gamma=1 − s)`` (the soft-mask path) applies the gate and
:func:`~persona_circuits.model.export.export_model` with the same ``gamma`` writes it as a plain checkpoint.

**Directions** (``directions``, ``[n_layers, d_model]``): pole A's minus pole B's mean residual after every
block, e.g. :func:`~persona_circuits.measure.baselines.steering_vectors` of the per-text mean answer-token residuals
(``PerTextStats.resid``), or :func:`gate_directions` from a loaded model and a persona set.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace

import torch
from jaxtyping import Float
from torch import Tensor

from .build import Mask, check_mask_args, check_sparsity, mask_pair
from .statistics import ActivationSignature, record_pairs
from ..errors import MaskError
from ..measure.baselines import steering_vectors
from ..model.loading import Model, prunable_layers

#: the roles of the matrices that write into the residual stream
WRITER_ROLES = ("o", "down")
#: default gate strength ``s`` (pruned weights scaled by ``1 − s``)
DEFAULT_GATE = 0.05


def writer_layers(model: Model, modules: str = "all") -> list:
    """The prunable layers whose output is added to the residual stream (attention ``o``, MLP down)."""
    return [l for l in prunable_layers(model, modules) if l.role in WRITER_ROLES]


def pooled_moments(sigs: tuple[ActivationSignature, ...], layer: str) -> tuple[Tensor, Tensor]:
    """``(E[x_j], E[x_j²])`` over the tokens of every signature in ``sigs`` (float64)."""
    n = sum(s.n_tokens for s in sigs)
    if n <= 0:
        raise MaskError("the signatures hold no tokens: no moments for the projection gate")
    return (sum(s.sums[layer]["sum"] for s in sigs) / n, sum(s.sums[layer]["sumsq"] for s in sigs) / n)


def gate_scores(weight: Float[Tensor, "d_out d_in"], mean: Float[Tensor, " d_in"], meansq: Float[Tensor, " d_in"],
                direction: Float[Tensor, " d_out"]) -> tuple[Tensor, Tensor]:
    """``(p, c)``: ``p_ij = −W_ij E[x_j] v[i]`` (``v`` normalised here; a zero direction gives ``p = 0``) and
    ``c_ij = W_ij² E[x_j²]``, float32."""
    w = weight.detach().float()
    v = direction.to(device=w.device, dtype=torch.float64)
    norm = v.norm()
    v = (v / norm if norm > 0 else torch.zeros_like(v)).float()
    m = mean.to(device=w.device, dtype=torch.float32)
    q = meansq.to(device=w.device, dtype=torch.float32)
    return -w * m[None, :] * v[:, None], w * w * q[None, :]


def best_prefix(p: Tensor, c: Tensor) -> tuple[Tensor, float]:
    """The set maximising ``Σ p / sqrt(Σ c)`` among weights with ``p > 0`` (flat ``p``, ``c``): the prefix of
    decreasing ``p / c`` (stable: ties by lower index) at the first argmax. Returns ``(bool mask, ratio)``;
    nothing selected (ratio 0) when no weight has ``p > 0`` and ``c > 0``."""
    p, c = p.reshape(-1), c.reshape(-1)
    eligible = torch.nonzero((p > 0) & (c > 0)).squeeze(1)
    out = torch.zeros(p.numel(), dtype=torch.bool, device=p.device)
    if eligible.numel() == 0:
        return out, 0.0
    pe, ce = p[eligible].double(), c[eligible].double()
    order = torch.sort(-(pe / ce), stable=True).indices
    ratio = pe[order].cumsum(0) / ce[order].cumsum(0).sqrt()
    k = int(torch.argmax(ratio)) + 1  # torch.argmax returns the first maximal index
    out[eligible[order[:k]]] = True
    return out, float(ratio[k - 1])


def _pole_selection(layers, scores: list[tuple[Tensor, Tensor]], sign: float) -> tuple[dict[str, Tensor], float]:
    sizes = [pc[0].numel() for pc in scores]
    sel, ratio = best_prefix(torch.cat([sign * pc[0].reshape(-1) for pc in scores]),
                             torch.cat([pc[1].reshape(-1) for pc in scores]))
    return {l.name: ~part.reshape(l.shape).cpu() for l, part in zip(layers, sel.split(sizes))}, ratio


@torch.no_grad()
def projection_gate_masks(model: Model, sig_a: ActivationSignature, sig_b: ActivationSignature,
                          directions: Float[Tensor, "n_layers d_model"], *, strength: float = DEFAULT_GATE,
                          modules: str = "all") -> tuple:
    """The projection-gate masks of poles A and B (see the module docstring).

    Args:
        model: the loaded model; its writer matrices are read.
        sig_a, sig_b: the two poles' activation signatures (their moments are pooled).
        directions: pole A's minus pole B's mean residual after every block, ``[n_layers, d_model]``.
        strength: the gate strength ``s`` stored in the masks (applied as ``gamma = 1 − s``), in ``[0, 1)``.
        modules: ``"all"``, ``"attn"`` (only ``o``) or ``"mlp"`` (only the down projections).

    Returns:
        ``(mask A, mask B)``: ``False`` marks a gated weight; only writer matrices are in the masks.
    """

    strength = check_mask_args(model, strength, modules, (sig_a, sig_b))
    layers = writer_layers(model, modules)
    n_blocks = 1 + max((l.block for l in layers), default=-1)
    if directions.ndim != 2 or directions.shape[0] < n_blocks or (layers and directions.shape[1] != layers[0].shape[0]):
        raise MaskError(f"directions must be [n_layers, d_model] covering {n_blocks} blocks, got {tuple(directions.shape)}")
    scores = []
    for l in layers:
        mean, meansq = pooled_moments((sig_a, sig_b), l.name)
        scores.append(gate_scores(l.weight, mean, meansq, directions[l.block]))
    ma, ra = _pole_selection(layers, scores, 1.0)
    mb, rb = _pole_selection(layers, scores, -1.0)
    total = sum(pc[0].numel() for pc in scores)
    a, b = mask_pair(model, "projection-gate", strength, modules, sig_a, sig_b, ma, mb)
    for mask, ratio, sel in ((a, ra, ma), (b, rb, mb)):
        n_sel = sum(int((~m).sum()) for m in sel.values())
        mask.config.extra = {"gamma": 1.0 - strength, "gate_strength": strength, "ratio": ratio, "selected": n_sel,
                             "selected_fraction": n_sel / max(1, total), "scope": "model", "moments": "pooled"}
    return a, b


def gate_gamma(mask) -> float:
    """The ``gamma`` a projection-gate mask is applied with (``1 − s``, from its config)."""
    if mask.config.method != "projection-gate":
        raise MaskError(f"not a projection-gate mask: {mask.config.method}")
    return float(mask.config.extra["gamma"])


def with_strength(masks: Mapping, strength: float) -> dict:
    """The same selected sets at another gate strength (copies of the configs; the bit tensors are shared)."""

    s = check_sparsity(strength)
    out = {}
    for pole, m in masks.items():
        cfg = replace(m.config, sparsity=s, extra={**m.config.extra, "gamma": 1.0 - s, "gate_strength": s})
        out[pole] = Mask(m.masks, cfg)
    return out


def gate_directions(model: Model, persona, *, n_calib: int | None = None, tokens: str = "answer", batch_size: int = 8,
                    progress: bool = False) -> tuple[dict[str, ActivationSignature], Tensor]:
    """Signatures of both poles and the residual directions (pole A minus pole B, after every block) of a
    persona set's first ``n_calib`` calibration items, from one recording pass per pole: the inputs of
    :func:`projection_gate_masks` (``build_masks(model, "projection-gate", sigs, directions=dirs)``).

    Args:
        model: the loaded model.
        persona: a :class:`~persona_circuits.data.PersonaSet` with two poles.
        n_calib: how many calibration items (all by default).
        tokens: the token selection of the signatures (the residuals are always answer-token means).
        batch_size, progress: as in :func:`~persona_circuits.masks.statistics.record_pairs`.

    Returns:
        ``({pole: signature}, directions [n_layers, d_model])``.
    """

    if len(persona.poles) != 2:
        raise MaskError(f"the projection gate needs a persona pair, got {len(persona.poles)} poles")
    sub = persona.subset(n_calib) if n_calib is not None else persona
    h = sub.content_hash()
    names = sub.pole_names
    stats = {p: record_pairs(model, sub.calibration_pairs(p), tokens=tokens, batch_size=batch_size, residuals=True,
                             progress=progress) for p in names}
    sigs = {p: stats[p].signature(pole=p, dataset=sub.name, calibration_hash=h) for p in names}
    a, b = (stats[p].resid for p in names)
    return sigs, steering_vectors(a, b)


# --------------------------------------------------------------------------------------------
# The mean-push control: the gate's fixed part as a bias per writer output


@torch.no_grad()
def mean_push(model: Model, mask, sigs: Mapping[str, ActivationSignature]) -> dict[str, Tensor]:
    """Per writer matrix, ``b_i = −Σ_{j gated in row i} W_ij E[x_j]`` (float32, unit strength).

    The gate at strength ``s`` changes output ``i`` by ``−s Σ_{j ∈ S_i} W_ij x_j``; its mean over tokens is
    ``s · b_i``. Adding ``s · b`` to the writer's output (:class:`WriterBias`) is the gate's fixed part alone:
    what the gate does with each token's own input is left out.
    """
    layers = {l.name: l for l in prunable_layers(model)}
    out = {}
    for name, keep in mask.masks.items():
        w = layers[name].weight.detach().float()
        mean, _ = pooled_moments(tuple(sigs.values()), name)
        gated = (~keep).to(w.device)
        out[name] = -(torch.where(gated, w, torch.zeros((), dtype=w.dtype, device=w.device)) @ mean.float().to(w.device))
    return out


class WriterBias:
    """Adds ``coef · biases[name]`` to the output of each named writer layer (forward hooks on its module)."""

    def __init__(self, biases: Mapping[str, Tensor], coef: float) -> None:
        self.biases, self.coef = dict(biases), float(coef)

    def attach(self, model: Model):

        layers = {l.name: l for l in prunable_layers(model)}
        stack = contextlib.ExitStack()
        for name, b in self.biases.items():
            def hook(module, args, out, b=b):
                return out + self.coef * b.to(out.device, out.dtype)

            stack.callback(layers[name].module.register_forward_hook(hook).remove)
        return stack
