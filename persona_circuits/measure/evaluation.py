"""Persona alignment by two-way choice, and generation.

For an item (question, answer of pole A, answer of pole B) each answer is scored by the summed
log-likelihood of its tokens given the chat-templated question, ``LL = Σ_t log p(a_t | q, a_<t)``.
For pole P the item counts as aligned when P's answer scores higher. Summed log-likelihood favours
short answers, so we also report the length-normalised choice (mean log-likelihood per token) and the
mean margin ``LL_P/n_P − LL_other/n_other`` in nats per token, with a bootstrap 95 % interval. These are the
``summed`` and ``per-token`` scorings of ``evaluate --scoring``; the paper's own ``released`` scoring (mean
next-token loss over the whole text, persona system prompt included) is :mod:`.evaluation_released`.

:func:`score_choices` computes the prompt once for both answers of an item (a plain HF forward sharing
the bridge's weights, see :mod:`persona_circuits.model.plain`) unless hooks or activation capture need the
TransformerBridge; both paths give the same choices. In a bfloat16 model (``load_model(dtype="bfloat16")``)
log-probabilities are still summed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from ..data import ChoiceItem, EncodedText, encode_pair, pad_batches, render_prompt
from ..errors import DatasetError
from ..model.hooks import UNEMBED_IN, StopForward, block_out
from ..model.loading import Model, get_tokenizer, hf_model, input_device
from ..model.plain import attention_masks, hooks_active, plain_model
from ..model.replay import base_forward
from ..results.records import ChoiceRow, Contrast
from .logits import plain_unembed, target_logprobs


@dataclass
class ChoiceScores:
    """Summed log-likelihoods and token counts of both answers of each item: columns (A, B)."""

    logp: Float[Tensor, "n 2"]
    n_tokens: Float[Tensor, "n 2"]
    features: Float[Tensor, "n 2 layer d_model"] | None = None

    def diff(self, length_normalized: bool = False) -> Tensor:
        """Preference for pole A's answer: ``LL_A − LL_B`` (per token if ``length_normalized``)."""
        v = self.logp / self.n_tokens if length_normalized else self.logp
        return v[:, 0] - v[:, 1]

    def to_store(self) -> dict[str, Tensor]:
        """The tensors to store (``torch.save``; a study stage's cache): ``logp``, ``n_tokens``, ``features`` if kept.

        Each is a compact copy: ``torch.save`` writes a view's whole underlying storage, so a view of a larger
        buffer would carry the buffer into a stage's cache entry and a shard's checkpoint. (The dense condition's
        entry is large for another reason: it keeps every block's answer features, ``items x 2 x layers x d_model``.)"""
        out = {"logp": self.logp.detach().clone(), "n_tokens": self.n_tokens.detach().clone()}
        if self.features is not None:
            out["features"] = self.features.detach().clone()
        return out

    @classmethod
    def from_store(cls, d: dict[str, Tensor]) -> "ChoiceScores":
        """The scores of :meth:`to_store`'s tensors."""
        return cls(d["logp"], d["n_tokens"], d.get("features"))


def bridge_hidden(model: Model, input_ids: Tensor, attention_mask: Tensor, capture: Sequence[str] = (),
                  store: dict[str, Tensor] | None = None) -> Float[Tensor, "batch pos d_model"]:
    """The final-normed residual stream (``unembed.hook_in``) of a bridge forward that stops there, so the
    ``d_model x d_vocab`` unembedding is not computed at every position; hook points named in ``capture``
    are kept in ``store``."""
    store = {} if store is None else store

    def grab(x, hook):
        store[hook.name] = x
        if hook.name == UNEMBED_IN:
            raise StopForward
        return x

    with model.hooks(fwd_hooks=[(n, grab) for n in [*capture, UNEMBED_IN]]):
        try:
            model(input_ids, attention_mask=attention_mask)
        except StopForward:
            pass
    return store[UNEMBED_IN]


def answer_logprobs(model: Model, input_ids: Tensor, attention_mask: Tensor, answer_mask: Tensor,
                    capture_layers: Sequence[int] = ()) -> tuple[Tensor, Tensor, dict[int, Tensor]]:
    """Per-text summed log-likelihood and count of answer tokens, for one padded batch.

    The unembedding is applied only at the positions that predict answer tokens (the forward pass is
    stopped at the unembedding's input), which saves the ``d_model x d_vocab`` product elsewhere.
    ``capture_layers``: also return, per block index, the mean residual stream (``blocks.{i}.hook_out``)
    over the answer tokens of each text, ``(batch, d_model)``.
    """
    store: dict[str, Tensor] = {}
    bridge_hidden(model, input_ids, attention_mask, [block_out(i) for i in capture_layers], store)
    resid = store[UNEMBED_IN]  # final-normed residual stream
    # with device_map the last block may sit on another device than the inputs
    input_ids, answer_mask = input_ids.to(resid.device), answer_mask.to(resid.device)
    tgt_mask = answer_mask[:, 1:]  # position t-1 predicts answer token t
    rows, cols = tgt_mask.nonzero(as_tuple=True)
    targets = input_ids[rows, cols + 1]
    lp = target_logprobs(lambda h: model.unembed(h[None])[0], resid[rows, cols], targets)
    B = input_ids.shape[0]
    logp = torch.zeros(B, dtype=torch.float64, device=lp.device).index_add_(0, rows, lp.double())
    ntok = tgt_mask.sum(1).double()
    feats = {}
    am = answer_mask.unsqueeze(-1).float()
    for i in capture_layers:
        x = store[block_out(i)].float()
        a = am.to(x.device)
        feats[i] = ((x * a).sum(1) / a.sum(1).clamp_min(1.0)).cpu()
    return logp, ntok, feats


SCORING_PATHS = ("auto", "shared-prefix", "bridge")


@torch.no_grad()
def score_choices(model: Model, items: Sequence[ChoiceItem], *, system: str | None = None,
                  contexts: Sequence[str | None] | None = None, batch_size: int = 16,
                  progress: bool | str = False, capture_layers: Sequence[int] = (),
                  path: str = "auto", max_tokens: int | None = None) -> ChoiceScores:
    """Log-likelihood of both answers of every item.

    Two paths give the same numbers (to float rounding: identical choices in float32, per-token margins
    within 1e-5 nats on the default model; see ``benchmarks/bench_scoring_paths.py``):

    * ``"shared-prefix"`` (fast): through :func:`~persona_circuits.model.plain.plain_model`, a plain Hugging Face
      module sharing the bridge's weights (SDPA attention, no hooks). Each item is one row, prompt then
      answer A then answer B, with a tree-shaped attention mask (B's tokens do not see A's) and B's
      position ids restarting after the prompt, so the prompt is computed once for both answers. Rows are
      sorted by length and batched by a padded-token budget; logits are computed only at the positions
      that predict answer tokens. Items whose two prompts differ (a prompt cut at ``max_length``) get one
      row per answer.
    * ``"bridge"`` (fallback): one right-padded text per answer through the TransformerBridge, forward
      stopped at ``unembed.hook_in`` and unembedded at answer-predicting positions only; every hook fires.

    ``"auto"`` (default) takes the shared-prefix path unless ``capture_layers`` is given, a forward hook is
    registered anywhere on the bridge or its wrapped HF model (steering via ``model.hooks(...)``, LoRA
    hooks on the wrapped ``nn.Linear`` modules, or global module hooks), or the plain module cannot mirror
    the model (then ``None`` from ``plain_model``): then it takes the bridge path. The bridge's KV cache is
    never used (transformer-lens 4.3 gives wrong tokens with it).

    Args:
        system: optional system prompt (persona-prompt baseline).
        contexts: optional per-item text put before the question in the user turn (RAG baseline).
        batch_size: texts per forward pass on the bridge path; rows (items) per pass at most on the
            shared-prefix path.
        capture_layers: block indices whose mean answer-token residual stream is kept in
            ``ChoiceScores.features`` (``[n, 2, n_layers, d_model]``), e.g. for probes (bridge path).
        path: ``"auto"``, ``"shared-prefix"`` (raise if it cannot be used) or ``"bridge"``.
        max_tokens: padded tokens per forward pass on the shared-prefix path (default ``128 * batch_size``).
    """
    check_choice_items(items)
    tok = get_tokenizer(model)
    ctx = list(contexts) if contexts is not None else [None] * len(items)
    enc = []
    for it, c in zip(items, ctx):
        enc.append(encode_pair(tok, it.question, it.answer_a, system=system, context=c))
        enc.append(encode_pair(tok, it.question, it.answer_b, system=system, context=c))
    desc = progress if isinstance(progress, str) else "scoring"
    plain = plain_for(model, path, capture_layers)
    if plain is not None:
        logp, ntok = score_shared_prefix(plain, enc, tok.pad_token_id, batch_size,
                                          max_tokens or 128 * batch_size, desc if progress else None)
        return ChoiceScores(logp.view(-1, 2), ntok.view(-1, 2))
    logp, ntok, feats = score_bridge(model, enc, batch_size, desc if progress else None, capture_layers)
    return ChoiceScores(logp.view(-1, 2), ntok.view(-1, 2),
                        None if feats is None else feats.view(len(items), 2, len(capture_layers), -1))


def check_choice_items(items: Sequence[ChoiceItem]) -> None:
    """Two-way-choice items: at least one, each with both answers (else :class:`DatasetError`)."""
    if not items:
        raise DatasetError("no items to evaluate")
    if any(it.answer_b is None for it in items):
        raise DatasetError("two-way choice items need both answers")


def plain_for(model: Model, path: str, capture_layers: Sequence[int] = ()):
    """The plain module of the shared-prefix path for ``path`` (see :func:`score_choices`), or ``None`` for
    the bridge path; ``"shared-prefix"`` raises where the plain module cannot be used."""
    if path not in SCORING_PATHS:
        raise ValueError(f"path must be one of {SCORING_PATHS}, got {path!r}")
    if path == "bridge":
        return None

    usable = not capture_layers and not hooks_active(model)
    plain = plain_model(model) if usable else None
    if plain is None and path == "shared-prefix":
        raise ValueError("the shared-prefix path needs no capture_layers, no hooks on the model and a "
                         "model the plain forward can mirror")
    return plain


def score_bridge(model: Model, enc: Sequence[EncodedText], batch_size: int, desc: str | None,
                 capture_layers: Sequence[int] = ()) -> tuple[Tensor, Tensor, Tensor | None]:
    """Bridge path: summed log-likelihood and count of the tokens from ``answer_start`` on of every text
    (float64), and the captured mean residuals ``[texts, layers, d_model]`` (``None`` without layers)."""
    tok = get_tokenizer(model)
    device = input_device(model)
    logp = torch.zeros(len(enc), dtype=torch.float64)
    ntok = torch.zeros(len(enc), dtype=torch.float64)
    feats = torch.zeros(len(enc), len(capture_layers), model.cfg.d_model) if capture_layers else None
    for b in tqdm(pad_batches(enc, tok.pad_token_id, batch_size), desc=desc, disable=desc is None, leave=False):
        lp, nt, f = answer_logprobs(model, b.input_ids.to(device), b.attention_mask.to(device),
                                    b.answer_mask.to(device), capture_layers)
        idx = torch.tensor(b.index)
        logp[idx], ntok[idx] = lp.cpu(), nt.cpu()
        if feats is not None:
            feats[idx] = torch.stack([f[i] for i in capture_layers], 1).cpu()
    return logp, ntok, feats


# --------------------------------------------------------------------------------------------
# Shared-prefix path


@dataclass
class _Row:
    """One packed row: a prompt, then one or more answers that each see the prompt and themselves."""

    prefix: list[int]
    branches: list[tuple[list[int], int]]  # (answer ids, index of the encoded text)

    def __len__(self) -> int:
        return len(self.prefix) + sum(len(a) for a, _ in self.branches)


def shared_prefix_rows(enc: Sequence[EncodedText]) -> list[_Row]:
    """Texts ``2i`` and ``2i+1`` (the two answers of item ``i``) share one row when their prompts are equal."""
    rows = []
    for i in range(0, len(enc), 2):
        texts = [(enc[j].ids[:enc[j].answer_start], enc[j].ids[enc[j].answer_start:], j)
                 for j in range(i, min(i + 2, len(enc)))]
        if len(texts) == 2 and texts[0][0] and texts[0][0] == texts[1][0]:
            rows.append(_Row(texts[0][0], [(ans, j) for _, ans, j in texts]))
        else:
            rows += [_Row(prompt, [(ans, j)]) for prompt, ans, j in texts]
    return rows


def token_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most ``max_rows`` rows and ``max_tokens`` padded
    tokens (a longer single row gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:  # ascending: the newest row is the longest of its batch
        if cur and (len(cur) + 1 > max_rows or (len(cur) + 1) * lengths[i] > max_tokens):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def _pack(rows: Sequence[_Row], pad_id: int, *, prompt: bool = False):
    """Padded ids, position ids, allowed-attention mask, the (row, position, target, text) of every
    scored answer token and, with ``prompt``, the (row, position, target) of every prompt token but the
    first (prompt token ``t`` is predicted at position ``t - 1``; empty tensors otherwise)."""
    T = max(len(r) for r in rows)
    B = len(rows)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    pos = torch.zeros((B, T), dtype=torch.long)
    seg = torch.full((B, T), -1, dtype=torch.long)  # 0 prompt, k+1 answer k, -1 padding
    r_idx, c_idx, tgt, txt = [], [], [], []
    p_r: list[int] = []
    p_c: list[int] = []
    p_tgt: list[int] = []
    for r, row in enumerate(rows):
        P = len(row.prefix)
        if prompt:
            p_r += [r] * (P - 1)
            p_c += range(P - 1)
            p_tgt += row.prefix[1:]
        ids[r, :P] = torch.tensor(row.prefix)
        pos[r, :P] = torch.arange(P)
        seg[r, :P] = 0
        o = P
        for k, (ans, j) in enumerate(row.branches):
            n = len(ans)
            ids[r, o:o + n] = torch.tensor(ans)
            pos[r, o:o + n] = torch.arange(P, P + n)
            seg[r, o:o + n] = k + 1
            # answer token t is predicted at the prompt's last position (t = 0), else at its own t - 1
            cols = [P - 1] + list(range(o, o + n - 1))
            r_idx += [r] * n
            c_idx += cols
            tgt += ans
            txt += [j] * n
            o += n
        if o < T:
            pos[r, o:] = torch.arange(o, T)
    q, k = seg[:, :, None], seg[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal & ((k == 0) | (q == k)) & (k >= 0)
    allowed |= torch.eye(T, dtype=torch.bool)  # padding rows see themselves: no fully masked row (NaN)
    prompt_scored = tuple(torch.tensor(x, dtype=torch.long) for x in (p_r, p_c, p_tgt))
    return (ids, pos, allowed, torch.tensor(r_idx), torch.tensor(c_idx), torch.tensor(tgt), torch.tensor(txt),
            prompt_scored)


def _unembed_logprobs(plain, hidden: Tensor, targets: Tensor) -> Tensor:
    """log p(target) from final-normed hidden states through the plain module."""
    return target_logprobs(plain_unembed(plain), hidden, targets)


@torch.no_grad()
def score_shared_prefix(plain, enc: Sequence[EncodedText], pad_id: int, max_rows: int, max_tokens: int,
                         desc: str | None, *, prompt: bool = False) -> tuple[Tensor, ...]:
    """Summed log-likelihood and count of every text's answer tokens (float64), one row per item.

    With ``prompt`` it also returns, per text, the summed log-likelihood of its prompt's own tokens but the
    first and their count ``answer_start - 1``: a row's prompt is scored once and credited to each of its
    answers (the released scoring's shared part, :mod:`persona_circuits.measure.released`)."""

    device = next(plain.parameters()).device
    rows = shared_prefix_rows(enc)
    logp = torch.zeros(len(enc), dtype=torch.float64)
    ntok = torch.tensor([float(len(e.ids) - e.answer_start) for e in enc], dtype=torch.float64)
    p_logp = torch.zeros(len(enc), dtype=torch.float64)
    batches = token_batches([len(r) for r in rows], max_tokens, max(1, max_rows))
    for bi in tqdm(batches, desc=desc, disable=desc is None, leave=False):
        ids, pos, allowed, r, c, tgt, txt, (pr, pc, ptgt) = _pack([rows[i] for i in bi], pad_id, prompt=prompt)
        ids, pos, allowed = ids.to(device), pos.to(device), allowed.to(device)
        hidden = base_forward(plain, input_ids=ids, attention_mask=attention_masks(plain, allowed, pos), position_ids=pos)
        lp = _unembed_logprobs(plain, hidden[r.to(device), c.to(device)], tgt.to(device))
        logp.index_add_(0, txt, lp.double().cpu())
        if prompt and len(pr):
            plp = _unembed_logprobs(plain, hidden[pr.to(device), pc.to(device)], ptgt.to(device)).double().cpu()
            per_row = torch.zeros(len(bi), dtype=torch.float64).index_add_(0, pr, plp)
            for k, i in enumerate(bi):
                for _, j in rows[i].branches:
                    p_logp[j] = per_row[k]
    if not prompt:
        return logp, ntok
    p_n = torch.tensor([float(max(e.answer_start - 1, 0)) for e in enc], dtype=torch.float64)
    return logp, ntok, p_logp, p_n


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0, stat: Callable = np.mean) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of ``stat`` over items."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    boots = stat(values[idx], axis=1) if stat is np.mean else np.array([stat(values[i]) for i in idx])
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return (float(lo), float(hi))


def wins(d: np.ndarray) -> np.ndarray:
    return np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))  # exact ties count half


#: Alignment of one condition with one pole: the contract's record (:class:`~persona_circuits.results.records.ChoiceRow`);
#: ``ChoiceResult`` is its name from before 0.2.
ChoiceResult = ChoiceRow


def summarize(scores: ChoiceScores, pole_index: int, *, condition: str, pole: str, seed: int = 0,
              n_boot: int = 2000) -> ChoiceRow:
    """Accuracy (summed and length-normalised), mean margin and bootstrap intervals for one pole.

    Args:
        scores: the two answers' scores of every item (:func:`score_choices`); ``pole_index``: 0 if the pole of
            interest is the items' first answer (pole A), 1 for the second; ``condition``, ``pole``: labels.
    """
    sign = 1.0 if pole_index == 0 else -1.0
    d_sum = sign * scores.diff(False).numpy()
    d_norm = sign * scores.diff(True).numpy()
    w, wn = wins(d_sum), wins(d_norm)
    return ChoiceRow(condition=condition, pole=pole, n=len(w), accuracy=float(w.mean()),
                     accuracy_ci95=bootstrap_ci(w, n_boot=n_boot, seed=seed),
                     accuracy_length_normalized=float(wn.mean()),
                     accuracy_length_normalized_ci95=bootstrap_ci(wn, n_boot=n_boot, seed=seed),
                     mean_margin=float(d_norm.mean()), mean_margin_ci95=bootstrap_ci(d_norm, n_boot=n_boot, seed=seed))


#: The pole contrast of a condition pair: the contract's record (:class:`~persona_circuits.results.records.Contrast`:
#: ``shift`` is the mean over items of the change in per-token preference for pole A's answer, ``(LL_A − LL_B)/tok``
#: under condition A minus under condition B, which cancels what both conditions share, such as the answers'
#: lengths; ``moved`` is the share of items whose preference moved towards pole A). The study's results, the
#: analyses and ``persona-circuits evaluate`` all write this one record; ``ContrastResult`` is its name from before 0.2.
ContrastResult = Contrast


def item_shifts(scores_a: ChoiceScores, scores_b: ChoiceScores) -> np.ndarray:
    """Per-item pole contrast ``d_i`` (nats/token): the change of the per-token preference for pole A's
    answer, pole-A condition minus pole-B condition, of each item (:func:`pole_contrast` summarises it)."""
    return (scores_a.diff(True) - scores_b.diff(True)).numpy()


def contrast_from_items(d: np.ndarray, *, condition: str, seed: int = 0, n_boot: int = 2000) -> Contrast:
    """The :class:`~persona_circuits.results.records.Contrast` of per-item contrasts ``d`` (:func:`item_shifts`): mean shift and share of
    items moved towards pole A, each with a bootstrap 95 % interval over items."""
    d = np.asarray(d, dtype=float)
    w = wins(d)
    return Contrast(condition=condition, n=len(d), shift=float(d.mean()), shift_ci95=bootstrap_ci(d, n_boot=n_boot, seed=seed),
                    moved=float(w.mean()), moved_ci95=bootstrap_ci(w, n_boot=n_boot, seed=seed))


def pole_contrast(scores_a: ChoiceScores, scores_b: ChoiceScores, *, condition: str, seed: int = 0,
                  n_boot: int = 2000) -> Contrast:
    """The pole contrast of a condition pair: per item, the per-token preference for pole A's answer under the
    pole-A condition minus under the pole-B condition (:func:`item_shifts`), its mean and the share of items moved
    towards pole A, each with a bootstrap 95 % interval over items.

    Args:
        scores_a, scores_b: the same items scored under the pole-A and the pole-B condition.
        condition: label stored in the result.
        seed, n_boot: the bootstrap over items.
    """
    return contrast_from_items(item_shifts(scores_a, scores_b), condition=condition, seed=seed, n_boot=n_boot)


@torch.no_grad()
def generate(model: Model, question: str, *, max_new_tokens: int = 64, system: str | None = None,
             do_sample: bool = False, temperature: float = 1.0, seed: int = 0) -> str:
    """Answer ``question`` (chat template) with the model as it is now (apply a mask around the call).

    Args:
        question: the user turn; ``system``: a system prompt (``None``: the chat template's default, if any).
        do_sample, temperature, seed: greedy by default; sampling is seeded. Returns the answer without the prompt.
    """

    tok = get_tokenizer(model)
    prompt = render_prompt(tok, question, system=system)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=not getattr(tok, "chat_template", None))
    hf = hf_model(model)
    device = input_device(model)
    torch.manual_seed(seed)
    kw = dict(do_sample=True, temperature=temperature) if do_sample else dict(do_sample=False)
    # use_cache=False: with transformer-lens 4.3 the KV-cache path of generate() through the bridge's
    # wrapped attention gives wrong tokens (measured: "The-------" instead of "The capital of France
    # is Paris."); without the cache the output matches a plain greedy loop over the bridge.
    out = hf.generate(enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device), use_cache=False,
                      max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, **kw)
    return tok.decode(out[0, enc.input_ids.shape[1]:], skip_special_tokens=True).strip()
