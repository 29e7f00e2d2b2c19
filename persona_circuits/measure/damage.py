"""Damage of an intervention, and strength dials that reach a chosen damage.

Two different masks always move a model somewhere; a persona effect only counts at a stated cost. The
cost of an intervention ``I`` (a mask, a soft mask, steering, a system prompt, a LoRA adapter; see
:class:`~persona_circuits.model.interventions.Intervention`) is measured on neutral text that has nothing to
do with any persona (``persona_circuits/capability/neutral_text.jsonl``, written for this project):

* **KL damage**: the mean over predicted tokens ``t`` of ``KL(p_dense(· | x_<t) || p_I(· | x_<t))`` in
  nats/token, with a bootstrap 95 % interval over texts. Zero for the dense model, and it grows with
  every change of the next-token distribution, whatever its direction;
* **perplexity** ``exp(mean NLL)`` of the same tokens under ``I`` (next to the dense one);
* **general-choice accuracy** on a small general-knowledge two-way choice set (also written for this
  project), next to the dense accuracy.

A system prompt is placed before each neutral text and the KL is taken on the text's own tokens, so
prompts are charged for how much they change the model's predictions too.

The dense distributions are computed once per model (:class:`NeutralReference`) and kept as bfloat16
probabilities (relative error ``≤ 2^-9`` per value, renormalised per position: a second-order error in the
KL, about ``1e-6`` nats/token, far below the damages of interest).

Strength dials (:class:`~.dials.Dial`, in :mod:`.dials`; their names are re-exported here) map a scalar
strength to the interventions of both poles (keep-mask sparsity, removal fraction, soft-mask ``1 − γ``,
steering coefficient, gate strength); :func:`find_strength` searches
the strength whose mean KL over the poles reaches a target, using neutral text only (and calibration
data, through the dial), never test items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from .dials import (Dial, all_layer_steering_dial, gate_bias_dial, gate_dial, mask_dial,  # noqa: F401 (re-exported)
                    soft_mask_dial, steering_dial)
from .evaluation import bootstrap_ci, bridge_hidden, score_choices, wins
from .logits import LOGIT_CHUNK, GroupedLogits, plain_unembed
from ..analysis.capability import general_choice_items, neutral_texts
from ..data import ChoiceItem, EncodedText, pad_batches, render_prompt
from ..errors import PersonaCircuitsError
from ..masks.build import Mask
from ..model.interventions import Intervention
from ..model.loading import Model, architecture_fingerprint, get_tokenizer
from ..model.plain import hooks_active, plain_model
from ..model.replay import base_forward
from ..options import DEFAULT_DAMAGE_TEXTS
from ..results.records import Damage

DEFAULT_MAX_TOKENS = 128


class DamageError(PersonaCircuitsError, ValueError):
    """A damage measurement or strength search cannot be made with these arguments."""


def ratio_ci(num: np.ndarray, den: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval (over texts) of ``Σ num / Σ den``."""
    if len(num) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))
    boots = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return (float(lo), float(hi))


def _leading_specials(tok, text: str, ids: list[int]) -> int:
    plain = tok(text, add_special_tokens=False).input_ids
    k = len(ids) - len(plain)
    return k if k >= 0 and ids[k:] == plain else 0


@dataclass
class NeutralReference:
    """Neutral texts, their token ids and the dense model's next-token distributions (bfloat16).

    Two formats. ``chat=False``: the texts as they are (``ids`` = the tokenised text, special tokens
    included); the scored tokens are tokens ``1..n−1`` of each text. ``chat=True``: each text is the user
    turn of the model's chat template (after the template's default system turn), as persona prompts and
    retrieved contexts are used in the study; ``ids`` = the text's own tokens, all of them scored.

    ``dense_p[i]`` is ``[m_i, vocab]`` (bfloat16): row ``j`` is the dense next-token distribution at the
    position that predicts scored token ``j`` of text ``i``; ``dense_plogp[i]`` and ``dense_mass[i]``
    (``Σ_v p log p`` and ``Σ_v p`` of that stored distribution, per row) make the KL of a new distribution
    one pass over its logits (:func:`kl_damage`). ``indices``: the texts' positions among the bundled neutral texts
    (``None`` for texts given by the caller), recorded so that fitting and reporting texts can be shown
    to be disjoint.
    """

    texts: list[str]
    ids: list[list[int]]
    dense_p: list[Tensor]
    dense_nll: np.ndarray  # per text, summed over its predicted tokens
    fingerprint: str
    batch_size: int = 8
    chat: bool = False
    indices: list[int] | None = None
    dense_plogp: list[Tensor] = field(default_factory=list, repr=False)
    dense_mass: list[Tensor] = field(default_factory=list, repr=False)
    _dense_general: dict = field(default_factory=dict, repr=False)

    @property
    def n_pred(self) -> np.ndarray:
        return np.array([len(i) - (0 if self.chat else 1) for i in self.ids], dtype=float)

    @property
    def dense_perplexity(self) -> float:
        return math.exp(self.dense_nll.sum() / self.n_pred.sum())


_SENTINEL = "\u2063NEUTRAL-TEXT\u2063"


def _chat_prefix(tok, system: str | None, context: str | None) -> list[int]:
    """Token ids of the chat rendering up to where a user turn's text starts (``context`` and a blank line
    first, when given), with ``system`` as the system turn (the template's default without one)."""

    rendered = render_prompt(tok, _SENTINEL, system=system, context=context)
    pre = rendered[: rendered.index(_SENTINEL)]
    return tok(pre, add_special_tokens=not getattr(tok, "chat_template", None)).input_ids


def _encode_for(reference: NeutralReference, tok, system: str | None, context: str | None = None) -> list[EncodedText]:
    """Inputs whose scored region (``answer_start`` onwards) holds the reference's scored tokens.

    Chat references: the text's ids follow :func:`_chat_prefix`. Plain references: without a system prompt
    or context the input is the text itself; with them, the text's ids (after any leading special tokens
    ``k``) follow the tokenised ``system + "\n\n"`` (and ``context + "\n\n"``); token ``j`` of the text
    then sits at ``P − k + j`` where ``P`` is the prefix length.
    """
    if reference.chat:
        prefix = _chat_prefix(tok, system, context)
        return [EncodedText(list(prefix) + list(ids), len(prefix)) for ids in reference.ids]
    if not system and not context:
        return [EncodedText(list(ids), 1) for ids in reference.ids]
    prefix = tok("".join(f"{x}\n\n" for x in (system, context) if x)).input_ids
    out = []
    for ids, text in zip(reference.ids, reference.texts):
        k = _leading_specials(tok, text, ids)
        out.append(EncodedText(list(prefix) + list(ids[k:]), len(prefix) - k + 1))
    return out


@torch.no_grad()
def _scored_hidden(model, encoded: Sequence[EncodedText], batch_size: int,
                   consume: Callable[[int, Tensor, Tensor, Callable[[Tensor], Tensor]], None]) -> None:
    """For every text, the final-normed hidden states at the positions predicting its scored tokens.

    ``consume(i, hidden [m, d_model], targets [m], unembed)`` is called once per text; ``unembed`` maps
    hidden states to logits. The plain module (:func:`~persona_circuits.model.plain.plain_model`) runs the forward
    unless hooks force the bridge (then the bridge's forward stops at ``unembed.hook_in``).
    """

    tok = get_tokenizer(model)
    plain = None if hooks_active(model) else plain_model(model)
    device = next((plain or model).parameters()).device
    for b in pad_batches(encoded, tok.pad_token_id, batch_size):
        ids, att = b.input_ids.to(device), b.attention_mask.to(device)
        if plain is not None:
            hidden = base_forward(plain, input_ids=ids, attention_mask=att)
            unembed = plain_unembed(plain)
        else:
            hidden = bridge_hidden(model, ids, att)
            unembed = lambda h: model.unembed(h[None])[0]  # noqa: E731
        tgt = b.answer_mask[:, 1:].to(hidden.device) & att[:, 1:].to(hidden.device).bool()
        ids = ids.to(hidden.device)
        for r, i in enumerate(b.index):
            cols = tgt[r].nonzero().squeeze(1)
            consume(i, hidden[r, cols], ids[r, cols + 1], unembed)


def neutral_reference(model: Model, texts: Sequence[str] | None = None, *, n_texts: int = DEFAULT_DAMAGE_TEXTS,
                      offset: int = 0, chat: bool = False, max_tokens: int = DEFAULT_MAX_TOKENS,
                      batch_size: int = 8) -> NeutralReference:
    """Dense next-token distributions on neutral text (the bundled neutral texts by default).

    Args:
        texts: plain texts; default: bundled neutral texts ``offset .. offset + n_texts − 1``.
        chat: measure the texts as the user turn of the chat template (see :class:`NeutralReference`).
        max_tokens: each text is cut to this many tokens (bounds the bfloat16 cache:
            ``n_texts · max_tokens · vocab · 2`` bytes, about 0.3 GB for the defaults and a 49k vocabulary).
    """

    indices = None
    if texts is None:
        indices = list(range(offset, offset + n_texts))
        texts = neutral_texts(offset + n_texts)[offset:]
        if len(texts) < n_texts:
            raise DamageError(f"only {len(texts) + offset} bundled neutral texts; asked for texts {offset}..{offset + n_texts - 1}")
    texts = list(texts)
    if not texts:
        raise DamageError("no neutral texts to measure damage on")
    tok = get_tokenizer(model)
    ids = [(tok(t, add_special_tokens=False) if chat else tok(t)).input_ids[:max_tokens] for t in texts]
    if any(len(i) < 2 for i in ids):
        raise DamageError("every neutral text needs at least two tokens")
    ref = NeutralReference(texts, ids, [], np.zeros(len(texts)), architecture_fingerprint(model), batch_size, chat, indices)
    probs: list[Tensor | None] = [None] * len(texts)
    plogp: list[Tensor | None] = [None] * len(texts)
    mass: list[Tensor | None] = [None] * len(texts)

    def keep(i, hidden, targets, unembed):
        lp = torch.cat([torch.log_softmax(unembed(h).float(), -1) for h in hidden.split(LOGIT_CHUNK)])
        probs[i] = p16 = lp.exp().to(torch.bfloat16).cpu()
        p = p16.float()
        plogp[i], mass[i] = torch.xlogy(p, p).sum(-1).double(), p.sum(-1).double()
        ref.dense_nll[i] = float(-lp.gather(1, targets[:, None].to(lp.device)).sum())

    _scored_hidden(model, _encode_for(ref, tok, None), batch_size, keep)
    ref.dense_p, ref.dense_plogp, ref.dense_mass = probs, plogp, mass  # type: ignore[assignment]
    return ref


def _as_intervention(x: Intervention | Mask | None) -> Intervention:
    if x is None:
        return Intervention()
    if isinstance(x, Mask):
        return Intervention(label=f"{x.config.method}:{x.config.pole}", mask=x)
    return x


#: Rows of logits per unembedding call in :func:`kl_damage`, taken across texts: a ``d_model x d_vocab`` product
#: streams the whole output embedding from memory at every call, so more rows per call cost less per row. A
#: neutral text is about 100 tokens, so one call per text's group used 64 + ~36 rows; at 256 the KL damage on
#: 16 texts took 1.27x less time for Gemma-3-270M (262k vocabulary) and 1.14x less for SmolLM2 (49k), float32 on
#: an AMD EPYC with 2 cores (``benchmarks/bench_kl_rows.py``, which also checks the sums bit for bit).
KL_ROWS = 256


class KLRows:
    """The per-text sums of :func:`kl_damage`, with the logits of several texts computed in one call.

    Each text's positions are cut into groups of :data:`LOGIT_CHUNK` rows, in order, and every reduction (the
    log-sum-exp, ``Σ p z``, the sums over a group) runs on one group's rows, as when each text was unembedded
    on its own; only the matrix product is shared, ``rows`` at a time, by whole groups
    (:class:`~.logits.GroupedLogits`, which says why that changes no bit). The per-text sums are thereby the same,
    bit for bit, as one call per group (``tests/measure/test_damage.py``).

    The reduction is a closure over the reference and the sums, not a method of the object: a
    :class:`~.logits.GroupedLogits` holding a bound method of its owner would make a reference cycle, and a cycle
    is freed only by the garbage collector's rare full passes, so every call's float32 logits buffer (256 rows of
    Gemma-3-270M's vocabulary: 256 MB) stayed allocated: a long study grew by gigabytes
    (``tests/measure/test_damage.py`` checks that a call leaves no cycle)."""

    def __init__(self, reference: NeutralReference, kl_sum: np.ndarray, nll: np.ndarray, rows: int) -> None:
        # kl_sum and nll: the caller's arrays, zero at the start, added to in place
        self.logits = GroupedLogits(_kl_reducer(reference, kl_sum, nll), rows=rows)

    def add(self, i: int, hidden: Tensor, targets: Tensor, unembed: Callable[[Tensor], Tensor]) -> None:
        """Queue text ``i``'s scored positions (each text is added once)."""
        self.logits.add((i, targets), hidden, unembed)

    def flush(self) -> None:
        """Compute what is queued."""
        self.logits.flush()


def _kl_reducer(ref: NeutralReference, kl_sum: np.ndarray, nll: np.ndarray) -> Callable[[tuple[int, Tensor], int, Tensor], None]:
    """The reduction of one group of :class:`KLRows`: ``reduce((text, targets), first row, logits)`` adds the group's
    KL and negative log-likelihood to ``kl_sum[text]`` and ``nll[text]``."""
    pz_buf: Tensor | None = None  # the products p * z of one group, reused

    def reduce(key: tuple[int, Tensor], j: int, z: Tensor) -> None:
        nonlocal pz_buf
        i, targets = key
        lse = z.logsumexp(-1)
        p = ref.dense_p[i][j:j + z.shape[0]].to(z.device)
        if pz_buf is None or pz_buf.shape[1:] != z.shape[1:] or pz_buf.device != z.device:
            pz_buf = torch.empty((LOGIT_CHUNK, *z.shape[1:]), dtype=torch.float32, device=z.device)
        # p (bfloat16) times z (float32) promotes p exactly: the products of p.float() * z
        pz = torch.mul(p, z, out=pz_buf[: z.shape[0]]).sum(-1).double().cpu()
        rows = slice(j, j + z.shape[0])
        m = ref.dense_mass[i][rows]
        kl_sum[i] += float((ref.dense_plogp[i][rows] / m - m.log() - pz / m + lse.double().cpu()).sum())
        t = targets[rows].to(z.device)
        nll[i] -= float((z.gather(1, t[:, None]).squeeze(1) - lse).sum())

    return reduce


@torch.no_grad()
def kl_damage(model: Model, intervention: Intervention | Mask | None, reference: NeutralReference, *, seed: int = 0,
              n_boot: int = 2000) -> tuple[float, tuple[float, float], float, np.ndarray]:
    """Mean per-token ``KL(dense || intervened)`` on the reference's texts.

    With ``p`` the dense distribution as stored (bfloat16, mass ``M = Σ p`` within rounding of 1) and ``z`` the
    intervened logits at one position, the KL of the renormalised ``p / M`` is
    ``Σ p log p / M − log M − Σ p z / M + logsumexp(z)``: ``Σ p log p`` and ``M`` are stored with the
    reference, so each position costs one pass over its logits (computed :data:`KL_ROWS` rows at a time, across
    texts).
    Renormalising makes the rounding of ``p`` a second-order error: the dense model's own KL is about
    ``1e-6`` nats/token (bfloat16 keeps the smallest probabilities, which float16 would round to
    subnormals with a first-order error of about ``1e-4``).

    Returns ``(kl, kl_ci95, perplexity, per_text_kl_sums)``.
    """
    iv = _as_intervention(intervention)
    if reference.fingerprint != architecture_fingerprint(model):
        raise DamageError("the neutral reference was computed on another model")
    tok = get_tokenizer(model)
    kl_sum = np.zeros(len(reference.ids))
    nll = np.zeros(len(reference.ids))

    acc = KLRows(reference, kl_sum, nll, KL_ROWS)
    with iv.active(model):
        _scored_hidden(model, _encode_for(reference, tok, iv.system, iv.context), reference.batch_size, acc.add)
        acc.flush()
    n = reference.n_pred
    kl = float(kl_sum.sum() / n.sum())
    return max(kl, 0.0), ratio_ci(kl_sum, n, n_boot=n_boot, seed=seed), math.exp(nll.sum() / n.sum()), kl_sum


def measure_damage(model: Model, intervention: Intervention | Mask | None = None, *, reference: NeutralReference | None = None,
                   general: bool | Sequence[ChoiceItem] = True, batch_size: int = 16, seed: int = 0) -> Damage:
    """KL damage, perplexity and (unless ``general=False``) general-choice accuracy of an intervention.

    Args:
        intervention: an :class:`Intervention`, a :class:`Mask`, or ``None`` (the dense model: KL 0).
        reference: dense distributions on neutral text (computed here if not given; pass one to reuse it).
        general: ``True`` for the bundled general-knowledge choice items, a list of items, or ``False``.
    """

    iv = _as_intervention(intervention)
    ref = reference if reference is not None else neutral_reference(model)
    kl, ci, ppl, _ = kl_damage(model, iv, ref, seed=seed)
    out = Damage(label=iv.label, kl=kl, kl_ci95=ci, n_texts=len(ref.ids), n_tokens=int(ref.n_pred.sum()),
                 perplexity=ppl, perplexity_dense=ref.dense_perplexity)
    if general is not False:
        items = general_choice_items() if general is True else list(general)
        key = tuple(it.id for it in items)
        if key not in ref._dense_general:
            ref._dense_general[key] = float(wins(score_choices(model, items, batch_size=batch_size).diff(True).numpy()).mean())
        with iv.active(model):
            w = wins(score_choices(model, items, system=iv.system, batch_size=batch_size).diff(True).numpy())
        out.general_accuracy, out.general_accuracy_ci95 = float(w.mean()), bootstrap_ci(w, seed=seed)
        out.general_accuracy_dense, out.general_n = ref._dense_general[key], len(items)
    return out


# --------------------------------------------------------------------------------------------
def pair_damage(model: Model, interventions: Sequence[Intervention], reference: NeutralReference) -> float:
    """Mean KL damage over the interventions of a pair (or any set)."""
    return float(np.mean([kl_damage(model, iv, reference, n_boot=1)[0] for iv in interventions]))


@dataclass
class StrengthSearch:
    """Result of :func:`find_strength`: the strength whose damage came closest to the target."""

    dial: str
    target_kl: float
    strength: float
    kl: float
    reached: bool
    history: list[tuple[float, float]]

    def to_dict(self) -> dict:
        return asdict(self)


def closest_to_target(history: Sequence[tuple[float, float]], target_kl: float) -> tuple[float, float]:
    """The ``(strength, damage)`` of ``history`` whose damage is closest to ``target_kl`` on a log scale."""
    return min(history, key=lambda h: abs(math.log(max(h[1], 1e-12) / target_kl)))


def find_strength(model: Model, dial: Dial, target_kl: float, reference: NeutralReference, *, rel_tol: float = 0.15,
                  max_iter: int = 12) -> StrengthSearch:
    """Bisect the dial's strength until the pair's mean KL damage is within ``rel_tol`` of ``target_kl``.

    The ends are evaluated first; a target outside their damages returns the nearer end with
    ``reached=False``. Each step evaluates the (geometric, for log-scale dials) midpoint of the bracket.

    Args:
        model: the loaded model.
        dial: a strength-to-intervention dial (:func:`mask_dial`, :func:`soft_mask_dial`, :func:`steering_dial`).
        target_kl: the damage to reach, in nats/token on the reference's texts.
        reference: the dense model's distributions on neutral text (:func:`neutral_reference`).
        rel_tol: the accepted relative distance from ``target_kl``.
        max_iter: the most bisection steps.
    """
    if not target_kl > 0:
        raise DamageError(f"target damage must be > 0 nats/token, got {target_kl}")
    if not (0 < dial.lo < dial.hi) and dial.log_scale:
        raise DamageError(f"a log-scale dial needs 0 < lo < hi, got {dial.lo}, {dial.hi}")
    history: list[tuple[float, float]] = []

    def damage(s: float) -> float:
        d = pair_damage(model, dial.make(s), reference)
        history.append((float(s), d))
        return d

    def close(d: float) -> bool:
        return abs(d - target_kl) <= rel_tol * target_kl

    lo, hi = dial.lo, dial.hi
    d_lo = damage(lo)
    if close(d_lo) or d_lo > target_kl:
        return StrengthSearch(dial.name, target_kl, lo, d_lo, close(d_lo), history)
    d_hi = damage(hi)
    if close(d_hi) or d_hi < target_kl:
        return StrengthSearch(dial.name, target_kl, hi, d_hi, close(d_hi), history)
    for _ in range(max_iter):
        mid = math.sqrt(lo * hi) if dial.log_scale else (lo + hi) / 2
        d = damage(mid)
        if close(d):
            return StrengthSearch(dial.name, target_kl, mid, d, True, history)
        if d < target_kl:
            lo = mid
        else:
            hi = mid
    s, d = closest_to_target(history, target_kl)
    return StrengthSearch(dial.name, target_kl, s, d, close(d), history)
