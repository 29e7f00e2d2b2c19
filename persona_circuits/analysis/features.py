"""One pass over calibration texts that keeps per-text statistics and residual features.

Per text ``n`` and prunable layer input channel ``j`` it keeps the sums of :mod:`..statistics`
(``sum, sumsq, sumabs`` over the selected tokens, float32 per text), so the signature of any subset
of texts (bootstrap resamples, calibration-size sweeps) is a sum over rows, with no new forward pass.
It also keeps the mean residual stream over the answer tokens after every block (for probes,
similarity and steering vectors).

Two more feature sets for the probes: :func:`answer_embeddings`, the mean token embedding over the
same answer tokens (the lexical "layer 0" of a probe, no forward pass), and :func:`text_features`,
mean residuals over the tokens of plain texts (neutral text) with an optional plain-text prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from ..data import EncodedText, encode_pair, pad_batches
from ..errors import SignatureError
from ..models import architecture_fingerprint, get_model_id, get_tokenizer, input_device, prunable_layers
from ..statistics import ActivationSignature, PerTextStats

_KEYS = ("sum", "sumsq", "sumabs")


class _Stop(Exception):
    pass


@dataclass
class CalibrationRecord:
    """Per-text sums ``[n_texts, 3, d_in]`` per layer (shared between layers with the same input),
    per-text selected-token counts, and mean answer-token residuals ``[n_texts, n_blocks, d_model]``."""

    per_text: dict[str, Float[Tensor, "n 3 d_in"]]
    n_tok: Tensor
    resid: Float[Tensor, "n layer d_model"]
    model_id: str
    fingerprint: str
    tokens: str

    def signature(self, index: Sequence[int] | Tensor | None = None, *, pole: str | None = None,
                  dataset: str | None = None, calibration_hash: str = "") -> ActivationSignature:
        """Signature of the texts ``index`` (all by default; repeated indices count repeatedly)."""
        stats = PerTextStats(self.per_text, self.n_tok, self.model_id, self.fingerprint, self.tokens)
        return stats.signature(index, pole=pole, dataset=dataset, calibration_hash=calibration_hash)


@torch.no_grad()
def record_calibration(model, pairs: Sequence[tuple[str, str]], *, tokens: str = "answer", batch_size: int = 16,
                       progress: bool | str = False) -> CalibrationRecord:
    """Record per-text statistics and residual features of ``(question, answer)`` pairs."""
    if not pairs:
        raise SignatureError("no calibration texts")
    tok = get_tokenizer(model)
    layers = prunable_layers(model)
    n_blocks = model.cfg.n_layers
    enc = [encode_pair(tok, q, a) for q, a in pairs]
    N = len(enc)
    device = input_device(model)  # with device_map, blocks may sit on other devices than the inputs
    per_text: dict[str, Tensor] = {}
    fired = {l.name: 0 for l in layers}
    resid = torch.zeros(N, n_blocks, model.cfg.d_model)
    n_tok = torch.zeros(N, dtype=torch.long)
    state: dict = {}
    by_ptr: dict = {}

    def stat_hook(layer):
        def fn(x, hook):
            key = (x.data_ptr(), tuple(x.shape))
            if key in by_ptr:  # q/k/v (gate/up) share their input: one tensor serves all
                src_name, _ = by_ptr[key]
                if layer.name not in per_text:
                    per_text[layer.name] = per_text[src_name]
            else:
                xs = x.detach().reshape(*x.shape[:2], -1).float() * state["sel"].to(x.device)
                red = torch.stack([xs.sum(1), (xs * xs).sum(1), xs.abs().sum(1)], 1).cpu()  # (B, 3, d)
                if layer.name not in per_text:
                    per_text[layer.name] = torch.zeros(N, 3, red.shape[-1])
                per_text[layer.name][state["idx"]] = red
                by_ptr[key] = (layer.name, x)
            fired[layer.name] += 1
            return x
        return fn

    def resid_hook(i):
        def fn(x, hook):
            am = state["ans"].to(x.device)
            resid[state["idx"], i] = ((x.float() * am).sum(1) / am.sum(1).clamp_min(1.0)).cpu()
            if i == n_blocks - 1:
                raise _Stop
            return x
        return fn

    hooks = [(l.hook_name, stat_hook(l)) for l in layers] + [(f"blocks.{i}.hook_out", resid_hook(i)) for i in range(n_blocks)]
    batches = pad_batches(enc, tok.pad_token_id, batch_size)
    with model.hooks(fwd_hooks=hooks):
        for b in tqdm(batches, desc=progress if isinstance(progress, str) else "calibration", disable=not progress, leave=False):
            att = b.attention_mask.to(device).bool()
            ans = b.answer_mask.to(device) & att
            sel = ans if tokens == "answer" else att
            state.update(sel=sel.unsqueeze(-1).float(), ans=ans.unsqueeze(-1).float(), idx=torch.tensor(b.index))
            n_tok[torch.tensor(b.index)] = sel.sum(1).cpu()
            by_ptr.clear()
            try:
                model(b.input_ids.to(device), attention_mask=b.attention_mask.to(device))
            except _Stop:
                pass
    missing = [n for n, c in fired.items() if c != len(batches)]
    if missing:
        raise SignatureError(f"{len(missing)} expected hook(s) did not fire, e.g. {missing[:3]}")
    return CalibrationRecord(per_text, n_tok, resid, get_model_id(model), architecture_fingerprint(model), tokens)


@torch.no_grad()
def answer_embeddings(model, pairs: Sequence[tuple[str, str]]) -> Float[Tensor, "n d_model"]:
    """Mean token embedding ``(1/|a|) Σ_t W_E[a_t]`` over each text's answer tokens (the same tokens,
    with the same chat-template tokenisation, whose residuals :func:`record_calibration` averages).

    This is what a probe sees before any block has mixed in context: a purely lexical feature. (Models
    that scale the embedding, e.g. Gemma's ``sqrt(d_model)``, differ by one constant factor, which a
    standardised probe ignores.)
    """
    tok = get_tokenizer(model)
    enc = [encode_pair(tok, q, a) for q, a in pairs]
    ids = torch.tensor([i for e in enc for i in e.ids[e.answer_start:]], dtype=torch.long)
    counts = torch.tensor([len(e.ids) - e.answer_start for e in enc])
    seg = torch.repeat_interleave(torch.arange(len(enc)), counts)
    w_e = model.W_E.detach()
    emb = w_e[ids.to(w_e.device)].float().cpu()
    out = torch.zeros(len(enc), emb.shape[1]).index_add_(0, seg, emb)
    return out / counts.clamp_min(1)[:, None]


def encode_text(tokenizer, text: str, prefix: str | None = None, max_tokens: int = 256) -> EncodedText:
    """Token ids of ``prefix`` (plus a blank line) followed by ``text``, tokenised separately so that the
    text's span (``answer_start`` onwards) is exact. Special tokens (BOS) come with the first part."""
    head = tokenizer(f"{prefix}\n\n" if prefix else "").input_ids
    body = tokenizer(text, add_special_tokens=False).input_ids[:max_tokens]
    if not body:
        raise SignatureError(f"empty text: {text[:60]!r}")
    return EncodedText(list(head) + list(body), len(head))


@torch.no_grad()
def text_features(model, texts: Sequence[str], *, prefix: str | None = None, batch_size: int = 16,
                  max_tokens: int = 256, progress: bool | str = False) -> Float[Tensor, "n layer d_model"]:
    """Mean residual stream after every block over the tokens of each plain text (no chat template;
    an optional plain-text ``prefix``, e.g. a persona prompt, comes before the text and is excluded
    from the mean; padding is excluded). Run it inside an intervention (``apply_mask``, ``steering``)
    to get that condition's features."""
    if not texts:
        raise SignatureError("no texts")
    tok = get_tokenizer(model)
    enc = [encode_text(tok, t, prefix, max_tokens) for t in texts]
    n_blocks = model.cfg.n_layers
    out = torch.zeros(len(enc), n_blocks, model.cfg.d_model)
    device = input_device(model)
    state: dict = {}

    def hook(i):
        def fn(x, hook):
            sel = state["sel"].to(x.device)
            out[state["idx"], i] = ((x.float() * sel).sum(1) / sel.sum(1).clamp_min(1.0)).cpu()
            if i == n_blocks - 1:
                raise _Stop
            return x
        return fn

    batches = pad_batches(enc, tok.pad_token_id, batch_size)
    with model.hooks(fwd_hooks=[(f"blocks.{i}.hook_out", hook(i)) for i in range(n_blocks)]):
        for b in tqdm(batches, desc=progress if isinstance(progress, str) else "text features", disable=not progress, leave=False):
            att = b.attention_mask.to(device)
            state.update(sel=(b.answer_mask.to(device) & att.bool()).unsqueeze(-1).float(), idx=torch.tensor(b.index))
            try:
                model(b.input_ids.to(device), attention_mask=att)
            except _Stop:
                pass
    return out
