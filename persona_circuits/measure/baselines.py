"""Baselines that put persona information into the model by other means than a mask.

* persona prompt: a system prompt describing the pole;
* RAG: the ``k`` calibration examples nearest to the question (TF-IDF cosine over questions),
  shown in the user turn as examples of the pole's answers;
* activation steering: the diff-of-means persona vector ``v_L = mean(h_L | A) - mean(h_L | B)`` of
  the mean answer-token residual stream after block ``L``, added as ``+c v_L`` (pole A) or
  ``-c v_L`` (pole B) at every position; ``L`` and ``c`` are chosen on calibration items only;
* supervised fine-tuning upper bound: LoRA adapters on every prunable linear layer, trained on the
  pole's calibration answers (next-token loss on answer tokens).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from .evaluation import score_choices
from ..data import ChoiceItem, PersonaSet, encode_pair, pad_batches
from ..model.interventions import ResidualSteering, steering
from ..model.loading import Model, get_tokenizer, prunable_layers
from ..model.plain import linear_modules, mirrored_hook, plain_model
from ..results import LoraRun, SteeringChoice, SteeringTrial


def persona_prompt(persona: PersonaSet, pole: str | int) -> str:
    """System prompt of the persona-prompt baseline."""
    p = persona.poles[persona.pole_index(pole)]
    desc = p.description or p.name
    return f"You are {desc}. Answer every question as this persona would, in the first person."


class RagRetriever:
    """TF-IDF retrieval of a pole's calibration examples (scikit-learn)."""

    def __init__(self, persona: PersonaSet, pole: str | int, k: int = 3) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.pairs = persona.calibration_pairs(pole)
        self.k = k
        self.vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        self.matrix = self.vec.fit_transform([q for q, _ in self.pairs])

    def retrieve(self, question: str) -> list[tuple[str, str]]:
        sims = (self.matrix @ self.vec.transform([question]).T).toarray().ravel()
        order = np.lexsort((np.arange(len(sims)), -sims))[: self.k]  # ties: lower index first
        return [self.pairs[i] for i in order]

    def context(self, question: str) -> str:
        ex = "\n\n".join(f"Q: {q}\nA: {a}" for q, a in self.retrieve(question))
        return f"Here are examples of how you answer questions:\n\n{ex}\n\nNow answer in the same way."

    def contexts(self, items: Sequence[ChoiceItem]) -> list[str]:
        return [self.context(it.question) for it in items]


# --------------------------------------------------------------------------------------------
# Activation steering


def steering_vectors(features_a: Float[Tensor, "n layer d"], features_b: Float[Tensor, "m layer d"]) -> Tensor:
    """Diff-of-means persona vectors, one per captured layer: ``[layer, d_model]``."""
    return features_a.mean(0) - features_b.mean(0)


def select_steering(model: Model, persona: PersonaSet, vectors: Tensor, layers: Sequence[int], coefs: Sequence[float],
                    *, n_items: int = 8, batch_size: int = 16) -> SteeringChoice:
    """Choose layer and coefficient on calibration items only.

    For each candidate, the first ``n_items`` calibration items are scored under ``+c v`` and
    ``-c v``; the criterion is the mean change of per-token preference for pole A's answer between
    the two (the pole contrast). ``vectors[j]`` is the vector of ``layers[j]``.
    """
    items = [it for it in persona.calibration[:n_items] if it.answer_b is not None]
    table = []
    for j, layer in enumerate(layers):
        for c in coefs:
            with steering(model, ResidualSteering(vectors[j], layer, c)):
                up = score_choices(model, items, batch_size=batch_size)
            with steering(model, ResidualSteering(vectors[j], layer, -c)):
                down = score_choices(model, items, batch_size=batch_size)
            table.append(SteeringTrial(layer=int(layer), coef=float(c),
                                       contrast=float((up.diff(True) - down.diff(True)).mean())))
    best = max(table, key=lambda r: (r.contrast, -r.layer, -r.coef))
    return SteeringChoice(layer=best.layer, coef=best.coef, table=table)


# --------------------------------------------------------------------------------------------
# LoRA fine-tuning (upper bound)


class LoRA:
    """Low-rank adapters ``W x + (alpha / r) B A x`` on linear layers, as forward hooks.

    Hooks sit on the wrapped ``nn.Linear`` modules, so they act through the TransformerLens bridge.
    ``B`` starts at zero: the adapted model starts equal to the base model.
    """

    def __init__(self, model, rank: int = 8, alpha: float = 16.0, modules: str = "all", seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.model = model
        self.layers = prunable_layers(model, modules)
        self.scale = alpha / rank
        self.params: dict[str, tuple[nn.Parameter, nn.Parameter]] = {}
        for l in self.layers:
            d_out, d_in = l.shape
            dev = l.weight.device
            a = nn.Parameter((torch.randn(rank, d_in, generator=g) / d_in ** 0.5).to(dev))
            b = nn.Parameter(torch.zeros(d_out, rank, device=dev))
            self.params[l.name] = (a, b)
        self._handles: list = []

    def parameters(self) -> list[nn.Parameter]:
        return [p for ab in self.params.values() for p in ab]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Adapters on while the block runs: hooks on the wrapped ``nn.Linear`` modules, mirrored on the
        plain module's (:func:`~persona_circuits.model.plain.linear_modules`), so scoring and damage keep the
        fast plain path."""

        def make(a, b):
            def fn(mod, inp, out):
                # adapters stay float32 (trainable) whatever the model's dtype (e.g. bfloat16)
                return out + (self.scale * (inp[0].to(a.dtype) @ a.T) @ b.T).to(out.dtype)

            return fn

        plain = plain_model(self.model)
        twins = linear_modules(plain) if plain is not None else {}
        with contextlib.ExitStack() as stack:
            for l in self.layers:
                fn = make(*self.params[l.name])
                twin = None if l.transposed else twins.get(id(l.module.weight))
                if twin is None:
                    stack.callback(l.module.register_forward_hook(fn).remove)
                else:
                    stack.enter_context(mirrored_hook(self.model, l.module, fn))
                    stack.callback(twin.register_forward_hook(fn).remove)
            yield

    @property
    def trained(self) -> bool:
        """Whether any adapter differs from zero (``B`` starts at zero: an untrained adapter is the base model)."""
        return any(bool(b.detach().abs().sum() > 0) for _, b in self.params.values())


def _batch_answer_nll(model, b, device) -> tuple[Tensor, Tensor]:
    """Summed answer-token negative log-likelihood of a padded batch, and its number of answer tokens."""
    ids = b.input_ids.to(device)
    logits = model(ids, attention_mask=b.attention_mask.to(device)).float()
    m = b.answer_mask[:, 1:].to(device)
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return -(lp * m).sum(), m.sum()


@torch.no_grad()
def answer_loss(model, pairs: Sequence[tuple[str, str]], *, batch_size: int = 8) -> float:
    """Mean answer-token negative log-likelihood of ``(question, answer)`` pairs under the model as it is now."""
    tok = get_tokenizer(model)
    device = next(model.parameters()).device
    tot, n = 0.0, 0.0
    for b in pad_batches([encode_pair(tok, q, a) for q, a in pairs], tok.pad_token_id, batch_size, sort=False):
        s, k = _batch_answer_nll(model, b, device)
        tot, n = tot + float(s), n + float(k)
    return tot / max(n, 1.0)


def train_lora(model: Model, pairs: Sequence[tuple[str, str]], *, rank: int = 8, epochs: int = 1, lr: float = 1e-3,
               batch_size: int = 8, seed: int = 0, progress: bool | str = False,
               val_pairs: Sequence[tuple[str, str]] | None = None, min_rel_improvement: float = 0.01) -> tuple[LoRA, LoraRun]:
    """Fine-tune LoRA adapters on ``(question, answer)`` pairs (loss on answer tokens only).

    With ``val_pairs`` (held-out calibration pairs of the same pole), ``epochs`` is a maximum: after every
    epoch the mean answer-token loss on ``val_pairs`` is measured, and training stops at the first epoch
    that lowers it by less than ``min_rel_improvement`` (relative); the adapters of the best epoch are
    kept (the base model's, i.e. zero adapters, if no epoch lowered it). ``converged`` in the cost record says whether that happened before the maximum.

    Returns the adapters and a cost record (steps, tokens, seconds, trainable parameters, losses).
    """
    torch.manual_seed(seed)
    tok = get_tokenizer(model)
    lora = LoRA(model, rank=rank, seed=seed)
    opt = torch.optim.AdamW(lora.parameters(), lr=lr, weight_decay=0.0)
    enc = [encode_pair(tok, q, a) for q, a in pairs]
    device = next(model.parameters()).device
    t0, steps, n_tok, losses = time.perf_counter(), 0, 0, []
    base_grad = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    rng = np.random.default_rng(seed)
    val = list(val_pairs) if val_pairs else []

    val_losses: list[float] = []
    best_state = [p.detach().clone() for p in lora.parameters()]  # epoch 0: the base model
    converged, epochs_run = False, 0
    try:
        with lora.active(), torch.enable_grad():
            if val:
                val_losses.append(answer_loss(model, val, batch_size=batch_size))
            for _epoch in range(epochs):
                epochs_run += 1
                order = rng.permutation(len(enc)).tolist()
                batches = pad_batches([enc[i] for i in order], tok.pad_token_id, batch_size, sort=False)
                for b in tqdm(batches, desc=progress if isinstance(progress, str) else "lora", disable=not progress, leave=False):
                    nll, n_ans = _batch_answer_nll(model, b, device)
                    loss = nll / n_ans
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    steps += 1
                    n_tok += int(b.attention_mask.sum())
                    losses.append(float(loss.detach()))
                if val:
                    v = answer_loss(model, val, batch_size=batch_size)
                    best = min(val_losses)
                    if v < best:
                        best_state = [p.detach().clone() for p in lora.parameters()]
                    val_losses.append(v)
                    if v > best * (1 - min_rel_improvement):
                        converged = True
                        break
    finally:
        for p, g in zip(model.parameters(), base_grad):
            p.requires_grad_(g)
    if val:
        with torch.no_grad():
            for p, b in zip(lora.parameters(), best_state):
                p.copy_(b)
    cost = LoraRun(steps=steps, epochs=epochs_run, max_epochs=epochs, texts=len(enc), tokens=n_tok,
                   seconds=time.perf_counter() - t0, trainable_parameters=sum(p.numel() for p in lora.parameters()),
                   rank=rank, lr=lr, first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
                   val_texts=len(val), val_losses=val_losses, converged=converged if val else None)
    for p in lora.parameters():
        p.requires_grad_(False)
    return lora, cost
