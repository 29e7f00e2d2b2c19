"""Logits in chunks: final-normed hidden states to log-probabilities of targets through a model's output
embedding, a few rows at a time, the same bit for bit however many rows share one product (choice scoring,
:mod:`.evaluation`; KL damage, :mod:`.damage`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor


#: Rows of logits per chunk: one ``[tokens, vocab]`` float32 tensor made the log-softmax cost more than the whole
#: forward pass (6x slower, measured); the chunks (12 MB for a 49k vocabulary) share one buffer (:func:`float32_rows`).
LOGIT_CHUNK = 64


def float32_rows(x: Tensor, buf: Tensor | None, rows: int) -> tuple[Tensor, Tensor]:
    """``x.float()`` written into ``buf`` (``rows`` float32 rows reused across one pass's chunks: fresh logits
    page-fault at every chunk; a new one when none fits). Returns the rows and the buffer for next time."""
    if buf is None or buf.shape[1:] != x.shape[1:] or buf.shape[0] < x.shape[0] or buf.device != x.device:
        buf = torch.empty((max(rows, x.shape[0]), *x.shape[1:]), dtype=torch.float32, device=x.device)
    return buf[: x.shape[0]].copy_(x), buf


#: Rows of logits per unembedding product in :func:`target_logprobs` (whole groups of :data:`LOGIT_CHUNK` rows,
#: whose reductions stay per group): a ``d_model x d_vocab`` product streams the whole output embedding at every
#: call, so more rows per call cost less per row (most for Gemma-3-270M's 262k-token vocabulary, on CPUs whose
#: BLAS is slow for few rows; ``benchmarks/bench_kl_rows.py`` measures it); the results are the same bit for bit.
LOGIT_ROWS = 256


def target_logprobs(unembed: Callable[[Tensor], Tensor], hidden: Float[Tensor, "n d_model"],
                    targets: Tensor, *, chunk: int = LOGIT_CHUNK, rows: int = LOGIT_ROWS) -> Float[Tensor, " n"]:
    """``log p(target_i)`` from final-normed hidden states: logits in the model's dtype (as the forward computes
    them), log-softmax in float32, ``chunk`` rows at a time.

    The logits are computed ``rows`` at a time (whole groups of ``chunk``) and every reduction runs on one
    group's rows, as when each group was unembedded on its own (a reduction may add in another order on
    another number of rows): a product's rows do not depend on the other rows of the call, except that a single
    row takes another kernel (a matrix-vector product), so a last group of one row is unembedded alone. The
    result is that of one call per group, bit for bit (``tests/measure/test_logits.py``)."""
    n = hidden.shape[0]
    out = torch.empty(n, dtype=torch.float32, device=hidden.device)
    targets = targets.to(hidden.device)
    step = max(chunk, rows // chunk * chunk)
    buf = None
    for i in range(0, n, step):
        m = min(step, n - i)
        cuts = [i, i + m - 1, i + m] if m > 1 and m % chunk == 1 else [i, i + m]
        for a, b in zip(cuts, cuts[1:]):
            logits, buf = float32_rows(unembed(hidden[a:b]), buf, step)
            for j in range(a, b, chunk):
                g, t = logits[j - a:j - a + chunk], targets[j:j + chunk]
                out[j:j + g.shape[0]] = g.gather(-1, t[:, None]).squeeze(-1) - g.logsumexp(-1)
    return out


def plain_unembed(plain) -> Callable[[Tensor], Tensor]:
    """Final-normed hidden states -> logits through the plain module's output embedding (with the final
    logit soft-capping of models that have one)."""
    head = plain.get_output_embeddings()
    cap = getattr(getattr(plain.config, "get_text_config", lambda: plain.config)(), "final_logit_softcapping", None)

    def unembed(h):
        logits = head(h)
        return torch.tanh(logits.float() / cap) * cap if cap else logits

    return unembed
