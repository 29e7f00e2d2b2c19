"""Logits in chunks: final-normed hidden states to log-probabilities through a model's output embedding, a few
rows at a time, the same bit for bit however many rows share one product (:class:`GroupedLogits`; choice
scoring, :func:`target_logprobs` and :mod:`.evaluation`; KL damage, :mod:`.damage`)."""

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


#: Rows of logits per unembedding product (:class:`GroupedLogits`: whole groups of :data:`LOGIT_CHUNK` rows, whose
#: reductions stay per group): a ``d_model x d_vocab`` product streams the whole output embedding at every call,
#: so more rows per call cost less per row (most for Gemma-3-270M's 262k-token vocabulary, on CPUs whose BLAS is
#: slow for few rows; ``benchmarks/bench_kl_rows.py`` measures it); the results are the same bit for bit.
LOGIT_ROWS = 256


class GroupedLogits:
    """Logits of groups of rows, several groups per unembedding product, each group reduced on its own.

    Hidden states are added in groups of at most ``chunk`` rows (:meth:`add` cuts them); the groups are
    unembedded together, whole groups up to ``rows`` rows per product, and ``reduce(key, first_row, logits)``
    then receives each group's float32 logits alone (a view into a reused buffer, valid during the call). Every
    reduction thus runs on one group's rows, as when each group was unembedded on its own: torch's reductions
    may add in another order on another number of rows (a logsumexp over 64 rows and over 11 rows of the same
    logits can differ in the last bit). A product's rows do not depend on the other rows of the call, except
    that a single row takes another kernel (a matrix-vector product), so a one-row group is unembedded alone.
    The results are those of one product per group, bit for bit (``tests/measure/test_logits.py``,
    ``tests/measure/test_damage.py``; on the real models ``benchmarks/bench_kl_rows.py``).

    Used by :func:`target_logprobs` (choice scoring) and by :func:`~.damage.kl_damage` (the KL damage, across texts).
    """

    def __init__(self, reduce: Callable[[object, int, Tensor], None], *, unembed: Callable[[Tensor], Tensor] | None = None,
                 rows: int = LOGIT_ROWS, chunk: int = LOGIT_CHUNK) -> None:
        self.reduce, self.unembed, self.chunk = reduce, unembed, chunk
        self.rows = max(chunk, rows)
        self.groups: list[tuple[object, int, Tensor]] = []  # (key, first row, hidden)
        self.n_rows = 0
        self.buf: Tensor | None = None  # the float32 logits, reused across products

    def add(self, key: object, hidden: Float[Tensor, "m d_model"], unembed: Callable[[Tensor], Tensor] | None = None) -> None:
        """Queue ``hidden``'s rows under ``key``, in groups of ``chunk`` rows (``reduce`` gets each group's first row
        index within ``hidden``); ``unembed``, if given, is the one every later product uses."""
        if unembed is not None:
            self.unembed = unembed
        for j in range(0, hidden.shape[0], self.chunk):
            h = hidden[j:j + self.chunk]
            if h.shape[0] == 1 or self.n_rows + h.shape[0] > self.rows:
                self.flush()
            self.groups.append((key, j, h))
            self.n_rows += h.shape[0]
            if h.shape[0] == 1:
                self.flush()

    def flush(self) -> None:
        """Unembed the queued groups in one product and reduce each."""
        if not self.groups:
            return
        groups, self.groups, self.n_rows = self.groups, [], 0
        hidden = torch.cat([h for _, _, h in groups]) if len(groups) > 1 else groups[0][2]
        logits, self.buf = float32_rows(self.unembed(hidden), self.buf, self.rows)
        at = 0
        for key, j, h in groups:
            self.reduce(key, j, logits[at:at + h.shape[0]])
            at += h.shape[0]


def target_logprobs(unembed: Callable[[Tensor], Tensor], hidden: Float[Tensor, "n d_model"],
                    targets: Tensor, *, chunk: int = LOGIT_CHUNK, rows: int = LOGIT_ROWS) -> Float[Tensor, " n"]:
    """``log p(target_i)`` from final-normed hidden states: logits in the model's dtype (as the forward computes
    them), log-softmax in float32, ``chunk`` rows at a time.

    The logits are computed ``rows`` at a time (whole groups of ``chunk``) and every reduction runs on one
    group's rows (:class:`GroupedLogits`): the result is that of one call per group, bit for bit
    (``tests/measure/test_logits.py``)."""
    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    targets = targets.to(hidden.device)

    def reduce(_key, j: int, g: Tensor) -> None:
        out[j:j + g.shape[0]] = g.gather(-1, targets[j:j + g.shape[0], None]).squeeze(-1) - g.logsumexp(-1)

    acc = GroupedLogits(reduce, unembed=unembed, rows=rows, chunk=chunk)
    acc.add(None, hidden)
    acc.flush()
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
