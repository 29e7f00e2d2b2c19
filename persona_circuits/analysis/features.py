"""Features for the probes besides the calibration residuals (which
:func:`persona_circuits.masks.statistics.record_per_text` records with ``residuals=True``, in the same pass as
the per-text statistics): :func:`answer_embeddings`, the mean token embedding over the answer tokens (the
lexical "layer 0" of a probe, no forward pass), and :func:`text_features`, mean residuals over the tokens
of plain texts (neutral text) with an optional plain-text prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from ..data import EncodedText, encode_pair, pad_batches
from ..errors import SignatureError
from ..model.hooks import StopForward, block_out
from ..model.loading import Model, get_tokenizer, input_device


@torch.no_grad()
def answer_embeddings(model: Model, pairs: Sequence[tuple[str, str]]) -> Float[Tensor, "n d_model"]:
    """Mean token embedding ``(1/|a|) Σ_t W_E[a_t]`` over each text's answer tokens (the same tokens,
    with the same chat-template tokenisation, whose residuals the calibration records average).

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
def text_features(model: Model, texts: Sequence[str], *, prefix: str | None = None, batch_size: int = 16,
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
                raise StopForward
            return x
        return fn

    batches = pad_batches(enc, tok.pad_token_id, batch_size)
    with model.hooks(fwd_hooks=[(block_out(i), hook(i)) for i in range(n_blocks)]):
        for b in tqdm(batches, desc=progress if isinstance(progress, str) else "text features", disable=not progress, leave=False):
            att = b.attention_mask.to(device)
            state.update(sel=(b.answer_mask.to(device) & att.bool()).unsqueeze(-1).float(), idx=torch.tensor(b.index))
            try:
                model(b.input_ids.to(device), attention_mask=att)
            except StopForward:
                pass
    return out
