"""Activation signatures: per-channel statistics of every prunable layer's input.

For each prunable linear layer ``y = W x`` (input hook ``blocks.{i}.{attn,mlp}.{...}.hook_in``) and
each input channel ``j`` we record, per calibration text ``n`` over its selected tokens ``t`` (padding
always excluded), ``s_nj = Σ_t x_tj``, ``q_nj = Σ_t x_tj²``, ``b_nj = Σ_t |x_tj|`` and the token count
``c_n`` (:class:`PerTextStats`). A signature (:class:`ActivationSignature`) reduces them in float64:

* ``sum_j = Σ_n s_nj``, ``sumsq_j = Σ_n q_nj``, ``sumabs_j = Σ_n b_nj`` and ``N = Σ_n c_n``;
* the per-text L2 norm ``ℓ_nj = sqrt(q_nj)``: ``l2_sum_j = Σ_n ℓ_nj`` (and ``Σ_n ℓ_nj² = sumsq_j``);
* the per-text RMS ``r_nj = sqrt(q_nj / c_n) = ℓ_nj / sqrt(c_n)``, which does not grow with the number
  of selected tokens: ``rms_sum_j = Σ_n r_nj`` and ``msq_sum_j = Σ_n r_nj²``; with ``T`` texts.

Channel magnitudes for Wanda scores (:meth:`ActivationSignature.statistic`): ``"l2"`` (the released
code: mean over texts of the per-text L2 norm), ``"mean_abs"`` (the paper's ``E|x_j|``) and ``"rms"``
(Wanda's ``sqrt(E x_j²)``). Per-text statistics for the contrastive z-score
(:meth:`ActivationSignature.text_mean` / :meth:`~ActivationSignature.text_var`): ``"l2"`` (as the
paper and the released code; grows like ``sqrt(c_n)``, so a pole with longer answers gets larger
values in every channel) or ``"rms"`` (length-invariant).

Token selections: ``"answer"`` (the positions that *read* answer tokens), ``"predict"`` (the
positions that *predict* them: the last prompt token and every answer token but the last; these are the
positions whose output the two-way-choice evaluation scores) and ``"all"`` (prompt included).
Where every answer is one token (Anthropic's ``Yes``/``No``, ``PersonaSet.meta["one_token_answers"]``),
``"predict"`` selects only the last prompt token. A causal model's activations there do not depend on the
answer that follows, and both poles' texts of an item share the prompt, so the two poles' per-text statistics
are identical, every contrastive z-score is 0 and the two poles' masks are the same (``tests/test_sets.py``
checks it). Only ``"answer"`` records what differs between the poles there: the answer token read in the
context of its statement (pole A says ``Yes`` to the statements pole B says ``No`` to).
Signatures merge by adding sums; per-text statistics give the signature of any subset or resample of
texts (label-swapped nulls, bootstrap) with no new forward pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from einops import rearrange
from jaxtyping import Float
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor
from tqdm.auto import tqdm

from .._io import atomic_write_bytes
from ..data import EncodedText, PersonaSet, encode_pair, pad_batches
from ..model.dtypes import dtype_name
from ..errors import SignatureError
from ..model.hooks import StopForward, block_out, stop
from ..model.loading import Model, architecture_fingerprint, get_model_id, get_tokenizer, input_device, prunable_layers
from .provenance import Provenance
from ..options import DEFAULT_STATISTIC, DEFAULT_TEXT_STAT, STATISTICS, TEXT_STATISTICS, TOKEN_SELECTIONS  # noqa: F401

SUM_KEYS = ("sum", "sumsq", "sumabs", "l2_sum", "rms_sum", "msq_sum")


@dataclass
class ActivationSignature:
    """Per-layer, per-input-channel activation sums of one persona pole."""

    sums: dict[str, dict[str, Float[Tensor, " d_in"]]]
    n_tokens: int
    n_texts: int
    model_id: str
    fingerprint: str
    calibration_hash: str
    tokens: str = "answer"
    pole: str | None = None
    dataset: str | None = None
    meta: dict = field(default_factory=dict)

    # ---- derived statistics
    @property
    def layer_names(self) -> list[str]:
        return list(self.sums)

    def mean(self, layer: str) -> Tensor:
        return self.sums[layer]["sum"] / self.n_tokens

    def mean_abs(self, layer: str) -> Tensor:
        return self.sums[layer]["sumabs"] / self.n_tokens

    def rms(self, layer: str) -> Tensor:
        return (self.sums[layer]["sumsq"] / self.n_tokens).sqrt()

    def l2_mean(self, layer: str) -> Tensor:
        """Mean over texts of the per-text L2 norm of each channel (the released code's statistic)."""
        return self.sums[layer]["l2_sum"] / self.n_texts

    def l2_var(self, layer: str) -> Tensor:
        """Variance over texts of the per-text L2 norm (population variance, clamped at 0)."""
        m = self.l2_mean(layer)
        return (self.sums[layer]["sumsq"] / self.n_texts - m * m).clamp_min(0.0)

    def _sum(self, layer: str, key: str) -> Tensor:
        v = self.sums[layer].get(key)
        if v is None:
            raise SignatureError(f"this signature has no {key!r} sums (recorded by an older version); record it again")
        return v

    def text_mean(self, layer: str, kind: str = DEFAULT_TEXT_STAT) -> Tensor:
        """Mean over texts of a per-text statistic: ``"l2"`` (``ℓ_nj``) or ``"rms"`` (``ℓ_nj / sqrt(c_n)``)."""
        if kind == "l2":
            return self.l2_mean(layer)
        if kind == "rms":
            return self._sum(layer, "rms_sum") / self.n_texts
        raise SignatureError(f"unknown per-text statistic {kind!r}; choose one of {TEXT_STATISTICS}")

    def text_var(self, layer: str, kind: str = DEFAULT_TEXT_STAT) -> Tensor:
        """Population variance over texts of a per-text statistic (clamped at 0)."""
        if kind == "l2":
            return self.l2_var(layer)
        m = self.text_mean(layer, kind)
        return (self._sum(layer, "msq_sum") / self.n_texts - m * m).clamp_min(0.0)

    def statistic(self, layer: str, name: str = DEFAULT_STATISTIC) -> Tensor:
        """Channel magnitude ``a_j`` used by Wanda scores: ``"l2"``, ``"mean_abs"`` or ``"rms"``."""
        if name == "l2":
            return self.l2_mean(layer)
        if name == "mean_abs":
            return self.mean_abs(layer)
        if name == "rms":
            return self.rms(layer)
        raise ValueError(f"unknown statistic {name!r}; choose one of {STATISTICS}")

    # ---- combination
    @property
    def provenance(self) -> Provenance:
        """Where this signature comes from (the record a mask built from it shares)."""
        return Provenance.of(self)

    def check_compatible(self, other: "ActivationSignature") -> None:
        self.provenance.check_same_model(other.provenance)
        if self.tokens != other.tokens:
            raise SignatureError(f"signatures use different token selections ({self.tokens} vs {other.tokens})")
        if set(self.sums) != set(other.sums):
            raise SignatureError("signatures cover different layers")

    def merge(self, other: "ActivationSignature") -> "ActivationSignature":
        """Statistics of the union of both calibration sets (sums add)."""
        self.check_compatible(other)
        sums = {l: {k: self.sums[l][k] + other.sums[l][k] for k in SUM_KEYS
                    if k in self.sums[l] and k in other.sums[l]} for l in self.sums}
        h = hashlib.sha256(f"{self.calibration_hash}+{other.calibration_hash}".encode()).hexdigest()[:16]
        pole = self.pole if self.pole == other.pole else None
        dtype = self.meta.get("dtype")
        return ActivationSignature(sums, self.n_tokens + other.n_tokens, self.n_texts + other.n_texts,
                                   self.model_id, self.fingerprint, h, self.tokens, pole, self.dataset,
                                   {"dtype": dtype} if dtype and dtype == other.meta.get("dtype") else {})

    # ---- persistence
    def to_dict(self) -> dict:
        return {"n_tokens": self.n_tokens, "n_texts": self.n_texts, "model_id": self.model_id,
                "fingerprint": self.fingerprint, "calibration_hash": self.calibration_hash,
                "tokens": self.tokens, "pole": self.pole, "dataset": self.dataset, "meta": self.meta,
                "layers": self.layer_names}

    def save(self, path: str | Path) -> Path:
        return save_signatures(path, {self.pole or "default": self})


def save_signatures(path: str | Path, signatures: Mapping[str, ActivationSignature]) -> Path:
    """Write several signatures (e.g. both poles) to one safetensors file, atomically."""
    tensors, meta = {}, {}
    for key, sig in signatures.items():
        if "::" in key:
            raise SignatureError(f"signature key may not contain '::': {key!r}")
        meta[key] = sig.to_dict()
        for layer, d in sig.sums.items():
            for k in SUM_KEYS:
                if k in d:
                    tensors[f"{key}::{layer}::{k}"] = d[k].detach().cpu().clone()
    blob = save(tensors, metadata={"persona_circuits": json.dumps({"format": "signatures", "version": 1, "signatures": meta})})
    return atomic_write_bytes(path, blob)


def load_signatures(path: str | Path) -> dict[str, ActivationSignature]:
    """Read a file written by :func:`save_signatures`."""
    path = Path(path)
    if not path.is_file():
        raise SignatureError(f"no signature file at {path}")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = json.loads((fh.metadata() or {})["persona_circuits"])
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError, ValueError) as exc:
        raise SignatureError(f"{path}: not a persona_circuits signature file ({exc})") from exc
    out = {}
    for key, m in header["signatures"].items():
        sums = {l: {k: tensors[f"{key}::{l}::{k}"] for k in SUM_KEYS if f"{key}::{l}::{k}" in tensors} for l in m["layers"]}
        out[key] = ActivationSignature(sums, m["n_tokens"], m["n_texts"], m["model_id"], m["fingerprint"],
                                       m["calibration_hash"], m["tokens"], m["pole"], m["dataset"], m.get("meta", {}))
    return out



# --------------------------------------------------------------------------------------------
# Per-text statistics and recording

_PER_TEXT = ("sum", "sumsq", "sumabs")


@dataclass
class PerTextStats:
    """Per-text sums of every prunable layer's input channels, from one recording pass.

    ``per_text[layer]`` is ``[n_texts, 3, d_in]`` (``Σ x``, ``Σ x²``, ``Σ |x|`` over each text's selected
    tokens, float32); layers that read the same input (q/k/v, gate/up) share one tensor. ``n_tok[n]`` is
    the number of selected tokens of text ``n``. :meth:`signature` reduces any subset (with repeats) of
    the texts in float64, so resamples and label-swapped nulls need no new forward pass.
    """

    per_text: dict[str, Float[Tensor, "n 3 d_in"]]
    n_tok: Tensor
    model_id: str
    fingerprint: str
    tokens: str
    resid: Float[Tensor, "n layer d_model"] | None = None  # mean residual after each block over the answer tokens
    dtype: str | None = None  # the model's weights' dtype during the recording (kept in signatures' meta)

    def __len__(self) -> int:
        return len(self.n_tok)

    def head(self, n: int) -> "PerTextStats":
        """The first ``n`` texts (layers that shared one tensor keep sharing its cut)."""
        cut: dict[int, Tensor] = {}
        per_text = {k: cut.setdefault(id(t), t[:n]) for k, t in self.per_text.items()}
        resid = None if self.resid is None else self.resid[:n]
        return PerTextStats(per_text, self.n_tok[:n], self.model_id, self.fingerprint, self.tokens, resid, self.dtype)

    def signature(self, index: Sequence[int] | Tensor | None = None, *, pole: str | None = None,
                  dataset: str | None = None, calibration_hash: str = "") -> ActivationSignature:
        """Signature of the texts ``index`` (all by default; a repeated index counts repeatedly)."""
        idx = torch.arange(len(self.n_tok)) if index is None else torch.as_tensor(index, dtype=torch.long)
        nt = self.n_tok[idx].double()
        has = nt > 0
        inv_n = torch.where(has, 1.0 / nt.clamp_min(1.0), torch.zeros_like(nt))[:, None]
        sums, cache = {}, {}
        for name, t in self.per_text.items():
            key = id(t)
            if key not in cache:
                sel = t[idx].double()
                sq = sel[:, 1]
                msq = sq * inv_n
                cache[key] = {"sum": sel[:, 0].sum(0), "sumsq": sq.sum(0), "sumabs": sel[:, 2].sum(0),
                              "l2_sum": sq.sqrt().sum(0), "rms_sum": msq.sqrt().sum(0), "msq_sum": msq.sum(0)}
            sums[name] = cache[key]
        return ActivationSignature(sums, int(nt.sum()), int(has.sum()), self.model_id, self.fingerprint,
                                   calibration_hash, self.tokens, pole, dataset,
                                   {"dtype": self.dtype} if self.dtype else {})

    def concat(self, other: "PerTextStats") -> "PerTextStats":
        """The texts of ``self`` followed by those of ``other`` (same model, layers and token selection)."""
        if (self.fingerprint, self.tokens) != (other.fingerprint, other.tokens) or set(self.per_text) != set(other.per_text):
            raise SignatureError("per-text statistics of different models, layers or token selections cannot be joined")
        joined: dict[int, Tensor] = {}
        per_text = {}
        for name, t in self.per_text.items():
            key = id(t)
            if key not in joined:
                joined[key] = torch.cat([t, other.per_text[name]])
            per_text[name] = joined[key]
        resid = None if self.resid is None or other.resid is None else torch.cat([self.resid, other.resid])
        return PerTextStats(per_text, torch.cat([self.n_tok, other.n_tok]), self.model_id, self.fingerprint, self.tokens, resid,
                            self.dtype if self.dtype == other.dtype else None)


def selection_mask(attention_mask: Tensor, answer_mask: Tensor, tokens: str) -> Tensor:
    """Boolean ``(batch, pos)`` selection of the positions whose statistics are recorded.

    ``answer``: the answer tokens; ``predict``: the positions predicting them (position ``t`` predicts
    token ``t + 1``); ``all``: every non-padding position.
    """
    att = attention_mask.bool()
    if tokens == "answer":
        return answer_mask & att
    if tokens == "predict":
        pred = torch.zeros_like(answer_mask)
        pred[:, :-1] = answer_mask[:, 1:]
        return pred & att
    if tokens == "all":
        return att
    raise SignatureError(f"tokens must be one of {TOKEN_SELECTIONS}, got {tokens!r}")


def _channel_hook(layer, state: dict, per_text: dict, fired: dict, by_input: dict, N: int):
    def fn(x: Tensor, hook) -> Tensor:
        key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()))
        hit = by_input.get(key)
        if hit is not None:  # q/k/v (gate/up) read one tensor: share its statistics
            per_text.setdefault(layer.name, per_text[hit[0]])
        else:
            # o's input arrives as (batch, pos, n_heads, d_head): its channels are the heads' d_head blocks in order
            xs = rearrange(x.detach(), "batch pos ... -> batch pos (...)")
            xm = xs.float() * state["sel"].to(xs.device)
            red = torch.stack([xm.sum(1), (xm * xm).sum(1), xm.abs().sum(1)], 1).cpu()  # (batch, 3, d_in)
            if layer.name not in per_text:
                per_text[layer.name] = torch.zeros(N, 3, red.shape[-1])
            per_text[layer.name][state["idx"]] = red
            by_input[key] = (layer.name, x)  # keeping x alive stops its address being reused this batch
        fired[layer.name] += 1
        return x
    return fn


def _resid_hook(i: int, state: dict, resid: Tensor, last: int):
    def fn(x: Tensor, hook) -> Tensor:
        am = state["ans"].to(x.device)
        resid[state["idx"], i] = ((x.float() * am).sum(1) / am.sum(1).clamp_min(1.0)).cpu()
        if i == last:
            raise StopForward
        return x
    return fn


@torch.no_grad()
def record_per_text(model: Model, encoded: Sequence[EncodedText], *, tokens: str = "answer", batch_size: int = 8,
                    modules: str = "all", residuals: bool = False, progress: bool | str = False) -> PerTextStats:
    """Per-text sums of every prunable layer's input over pre-encoded texts (one forward pass per batch).

    ``residuals``: also keep, per text, the mean residual stream after every block over its answer tokens
    (``PerTextStats.resid``: probes, similarity and steering vectors), whatever ``tokens`` selects.
    """
    if tokens not in TOKEN_SELECTIONS:
        raise SignatureError(f"tokens must be one of {TOKEN_SELECTIONS}, got {tokens!r}")
    if not encoded:
        raise SignatureError("no calibration texts to record")
    tok = get_tokenizer(model)
    layers = prunable_layers(model, modules)
    device = input_device(model)  # with device_map, blocks may sit on other devices than the inputs
    N = len(encoded)
    per_text: dict[str, Tensor] = {}
    fired = {l.name: 0 for l in layers}
    state: dict = {}
    by_input: dict[tuple, tuple[str, Tensor]] = {}
    hooks = [(l.hook_name, _channel_hook(l, state, per_text, fired, by_input, N)) for l in layers]
    resid = None
    if residuals:
        n_blocks = model.cfg.n_layers
        resid = torch.zeros(N, n_blocks, model.cfg.d_model)
        hooks += [(block_out(i), _resid_hook(i, state, resid, n_blocks - 1)) for i in range(n_blocks)]
    else:
        hooks.append((block_out(max(l.block for l in layers)), stop))
    batches = pad_batches(encoded, tok.pad_token_id, batch_size)
    n_tok = torch.zeros(N, dtype=torch.long)
    with model.hooks(fwd_hooks=hooks):
        for b in tqdm(batches, desc=progress if isinstance(progress, str) else "signatures", disable=not progress, leave=False):
            att = b.attention_mask.to(device)
            ans = b.answer_mask.to(device) & att.bool()
            sel = selection_mask(att, b.answer_mask.to(device), tokens)
            idx = torch.tensor(b.index)
            state.update(sel=sel.unsqueeze(-1).float(), ans=ans.unsqueeze(-1).float(), idx=idx)
            n_tok[idx] = sel.sum(1).cpu()
            by_input.clear()
            try:
                model(b.input_ids.to(device), attention_mask=att)
            except StopForward:
                pass
            by_input.clear()
    missing = [n for n, c in fired.items() if c != len(batches)]
    if missing:
        raise SignatureError(f"{len(missing)} expected hook(s) did not fire on every batch, e.g. {missing[:3]}")
    if int(n_tok.sum()) == 0:
        raise SignatureError("no tokens were selected (empty answers?)")
    return PerTextStats(per_text, n_tok, get_model_id(model), architecture_fingerprint(model), tokens, resid,
                        dtype_name(model))


def record_encoded(model: Model, encoded: Sequence[EncodedText], *, tokens: str = "answer", batch_size: int = 8,
                   modules: str = "all", progress: bool | str = False) -> tuple[dict, int, int]:
    """Sums over pre-encoded texts. Returns (sums per layer, n_tokens, n_texts)."""
    sig = record_per_text(model, encoded, tokens=tokens, batch_size=batch_size, modules=modules,
                          progress=progress).signature()
    return sig.sums, sig.n_tokens, sig.n_texts


def _calibration_hash(pairs: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for q, a in pairs:
        h.update(json.dumps([q, a]).encode())
    return h.hexdigest()[:16]


def record_pairs(model: Model, pairs: Sequence[tuple[str, str]], *, tokens: str = "answer", batch_size: int = 8,
                 modules: str = "all", system: str | None = None, residuals: bool = False,
                 progress: bool | str = False) -> PerTextStats:
    """Per-text statistics of ``(question, answer)`` pairs rendered with the chat template (and, with
    ``residuals``, their mean answer-token residuals after every block)."""
    tok = get_tokenizer(model)
    encoded = [encode_pair(tok, q, a, system=system) for q, a in pairs]
    return record_per_text(model, encoded, tokens=tokens, batch_size=batch_size, modules=modules, residuals=residuals,
                           progress=progress)


def record_signature(model: Model, pairs: Sequence[tuple[str, str]], *, tokens: str = "answer", batch_size: int = 8,
                     modules: str = "all", pole: str | None = None, dataset: str | None = None,
                     calibration_hash: str | None = None, system: str | None = None,
                     progress: bool | str = False) -> ActivationSignature:
    """Record the activation signature of ``(question, answer)`` pairs rendered with the chat template.

    Args:
        tokens: ``"answer"`` (answer tokens only), ``"predict"`` (positions predicting the answer tokens)
            or ``"all"`` (prompt included).
        batch_size: texts per forward pass (right-padded, padding excluded from every statistic).
        modules: ``"all"``, ``"attn"`` or ``"mlp"``: which layers to record.
        system: optional system prompt rendered before each question.
    """
    stats = record_pairs(model, pairs, tokens=tokens, batch_size=batch_size, modules=modules, system=system,
                         progress=progress)
    return stats.signature(pole=pole, dataset=dataset,
                           calibration_hash=calibration_hash if calibration_hash is not None else _calibration_hash(pairs))


def record_persona_per_text(model: Model, persona: PersonaSet, *, calib_size: int | None = None, tokens: str = "answer",
                            batch_size: int = 8, modules: str = "all",
                            progress: bool = False) -> dict[str, PerTextStats]:
    """Per-text statistics of every pole of ``persona`` (the first ``calib_size`` calibration items).

    Row ``i`` of each pole belongs to calibration item ``i`` (items lacking a pole's answer are
    skipped for that pole; label-swapped nulls need both answers of every item).
    """
    ps = persona.subset(calib_size)
    return {pole: record_pairs(model, ps.calibration_pairs(pole), tokens=tokens, batch_size=batch_size,
                               modules=modules, progress=f"{ps.name}/{pole}" if progress else False)
            for pole in ps.pole_names}


def persona_signatures(persona: PersonaSet, stats: Mapping[str, PerTextStats], *,
                       calib_size: int | None = None) -> dict[str, ActivationSignature]:
    """Signatures of every pole from :func:`record_persona_per_text`'s output."""
    ps = persona.subset(calib_size)
    h = ps.content_hash()
    return {pole: st.signature(pole=pole, dataset=ps.name, calibration_hash=h) for pole, st in stats.items()}


def record_persona_signatures(model: Model, persona: PersonaSet, *, calib_size: int | None = None, tokens: str = "answer",
                              batch_size: int = 8, modules: str = "all", progress: bool = False) -> dict[str, ActivationSignature]:
    """Signatures of every pole of ``persona`` (the first ``calib_size`` calibration items).

    Args:
        model: the loaded model; hooks are added for the call and removed after it.
        persona: the persona set (:func:`~persona_circuits.data.load_persona_set`).
        calib_size: how many calibration items (``None``: all of them).
        tokens: which positions are counted: ``"answer"`` (the answer's tokens), ``"predict"`` (the positions
            that predict them) or ``"all"`` (every non-padding token).
        batch_size: texts per forward pass.
        modules: ``"all"``, ``"attn"`` or ``"mlp"``: the linear layers whose inputs are recorded.
        progress: show a progress bar.

    Returns:
        ``{pole name: ActivationSignature}`` (float64 sums over the selected tokens of every text).
    """
    stats = record_persona_per_text(model, persona, calib_size=calib_size, tokens=tokens, batch_size=batch_size,
                                    modules=modules, progress=progress)
    return persona_signatures(persona, stats, calib_size=calib_size)
