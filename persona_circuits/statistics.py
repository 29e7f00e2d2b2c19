"""Activation signatures: streaming per-channel statistics of every prunable layer's input.

For each prunable linear layer ``y = W x`` (input hook ``blocks.{i}.{attn,mlp}.{...}.hook_in``) and
each input channel ``j`` we accumulate, over the selected tokens ``t`` of every calibration text ``n``
(padding always excluded; optionally only the answer tokens), in float64:

* ``sum_j = Σ x_tj``, ``sumsq_j = Σ x_tj²``, ``sumabs_j = Σ |x_tj|`` and the token count ``N``;
* the per-text L2 norm ``ℓ_nj = sqrt(Σ_{t∈n} x_tj²)`` summed over texts, ``l2_sum_j = Σ_n ℓ_nj``,
  and the number of texts ``T``. The sum of ``ℓ_nj²`` over texts equals ``sumsq_j``, so the mean and
  variance of the per-text norms are ``l2_sum/T`` and ``sumsq/T - (l2_sum/T)²``.

From these come the three channel magnitudes the method can use (:meth:`ActivationSignature.statistic`):
``"l2"`` (the released code: mean over texts of the per-text L2 norm), ``"mean_abs"`` (the paper's
``E|x_j|``) and ``"rms"`` (Wanda's ``sqrt(E x_j²)``). Signatures merge by adding sums, so batches,
shards or data sets can be recorded separately.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor
from tqdm.auto import tqdm

from ._io import atomic_write_bytes
from .data import EncodedText, PersonaSet, encode_pair, pad_batches
from .errors import ModelMismatchError, SignatureError
from .models import architecture_fingerprint, get_model_id, get_tokenizer, prunable_layers
from .models import input_device

SUM_KEYS = ("sum", "sumsq", "sumabs", "l2_sum")
STATISTICS = ("l2", "mean_abs", "rms")
#: default channel statistic: the released code's per-text L2 norm, averaged over texts
DEFAULT_STATISTIC = "l2"
TOKEN_SELECTIONS = ("answer", "all")


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
    def check_compatible(self, other: "ActivationSignature") -> None:
        if self.fingerprint != other.fingerprint or self.model_id != other.model_id:
            raise ModelMismatchError(
                f"signatures come from different models ({self.model_id}/{self.fingerprint} vs {other.model_id}/{other.fingerprint})")
        if self.tokens != other.tokens:
            raise SignatureError(f"signatures use different token selections ({self.tokens} vs {other.tokens})")
        if set(self.sums) != set(other.sums):
            raise SignatureError("signatures cover different layers")

    def merge(self, other: "ActivationSignature") -> "ActivationSignature":
        """Statistics of the union of both calibration sets (sums add)."""
        self.check_compatible(other)
        sums = {l: {k: self.sums[l][k] + other.sums[l][k] for k in SUM_KEYS} for l in self.sums}
        h = hashlib.sha256(f"{self.calibration_hash}+{other.calibration_hash}".encode()).hexdigest()[:16]
        pole = self.pole if self.pole == other.pole else None
        return ActivationSignature(sums, self.n_tokens + other.n_tokens, self.n_texts + other.n_texts,
                                   self.model_id, self.fingerprint, h, self.tokens, pole, self.dataset)

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
        sums = {l: {k: tensors[f"{key}::{l}::{k}"] for k in SUM_KEYS} for l in m["layers"]}
        out[key] = ActivationSignature(sums, m["n_tokens"], m["n_texts"], m["model_id"], m["fingerprint"],
                                       m["calibration_hash"], m["tokens"], m["pole"], m["dataset"], m.get("meta", {}))
    return out


# --------------------------------------------------------------------------------------------
# Recording


class _StopForward(Exception):
    """Raised after the last block: the unembedding is not needed for statistics."""


class _Recorder:
    """Hook state: accumulates sums for every prunable layer; reuses work for shared inputs."""

    def __init__(self, layers, device) -> None:
        self.layers = layers
        # each layer's sums live on that layer's device (a model loaded with device_map spans several)
        self.acc = {l.name: {k: torch.zeros(l.shape[1], dtype=torch.float64, device=l.weight.device) for k in SUM_KEYS}
                    for l in layers}
        self.fired = {l.name: 0 for l in layers}
        self.sel: Tensor | None = None  # (batch, pos, 1) 0/1 weights of selected tokens
        self._cache: dict[tuple, tuple[Tensor, dict[str, Tensor]]] = {}

    def reductions(self, x: Tensor) -> dict[str, Tensor]:
        key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()))
        hit = self._cache.get(key)
        if hit is not None:
            return hit[1]
        xs = x.reshape(*x.shape[:2], -1)  # o's input arrives as (batch, pos, n_heads, d_head)
        if xs.dtype != torch.float32:
            xs = xs.float()
        xm = xs * self.sel.to(xs.device)
        per_text_sq = (xm * xm).sum(1)  # (batch, d_in)
        red = {
            "sum": xm.sum((0, 1)).double(),
            "sumabs": xm.abs().sum((0, 1)).double(),
            "sumsq": per_text_sq.double().sum(0),
            "l2_sum": per_text_sq.sqrt().double().sum(0),
        }
        # one entry: layers sharing an input (q/k/v, gate/up) fire one after another. Keeping x alive
        # stops its address being reused while cached; holding only the latest input keeps the
        # recorder's memory at one activation instead of every layer input of the pass.
        self._cache.clear()
        self._cache[key] = (x, red)
        return red

    def hook(self, name: str):
        def fn(x: Tensor, hook) -> Tensor:
            red = self.reductions(x.detach())
            acc = self.acc[name]
            for k in SUM_KEYS:
                acc[k] += red[k]
            self.fired[name] += 1
            return x

        return fn

    def end_batch(self) -> None:
        self._cache.clear()


def _stop(x, hook):
    raise _StopForward


@torch.no_grad()
def record_encoded(model, encoded: Sequence[EncodedText], *, tokens: str = "answer", batch_size: int = 8,
                   modules: str = "all", progress: bool | str = False) -> tuple[dict, int, int]:
    """Accumulate sums over pre-encoded texts. Returns (sums per layer, n_tokens, n_texts)."""
    if tokens not in TOKEN_SELECTIONS:
        raise SignatureError(f"tokens must be one of {TOKEN_SELECTIONS}, got {tokens!r}")
    if not encoded:
        raise SignatureError("no calibration texts to record")
    tok = get_tokenizer(model)
    layers = prunable_layers(model, modules)
    device = input_device(model)
    rec = _Recorder(layers, device)
    last_block = max(l.block for l in layers)
    hooks = [(l.hook_name, rec.hook(l.name)) for l in layers] + [(f"blocks.{last_block}.hook_out", _stop)]
    batches = pad_batches(encoded, tok.pad_token_id, batch_size)
    n_tokens = n_texts = 0
    desc = progress if isinstance(progress, str) else "signatures"
    with model.hooks(fwd_hooks=hooks):
        for b in tqdm(batches, desc=desc, disable=not progress, leave=False):
            att = b.attention_mask.to(device)
            sel = (b.answer_mask.to(device) & att.bool()) if tokens == "answer" else att.bool()
            rec.sel = sel.unsqueeze(-1).to(layers[0].weight.dtype if layers[0].weight.dtype == torch.float32 else torch.float32)
            n_tokens += int(sel.sum())
            n_texts += int(sel.any(1).sum())
            try:
                model(b.input_ids.to(device), attention_mask=att)
            except _StopForward:
                pass
            rec.end_batch()
    missing = [n for n, c in rec.fired.items() if c != len(batches)]
    if missing:
        raise SignatureError(f"{len(missing)} expected hook(s) did not fire on every batch, e.g. {missing[:3]}")
    if n_tokens == 0:
        raise SignatureError("no tokens were selected (empty answers?)")
    return rec.acc, n_tokens, n_texts


def record_signature(model, pairs: Sequence[tuple[str, str]], *, tokens: str = "answer", batch_size: int = 8,
                     modules: str = "all", pole: str | None = None, dataset: str | None = None,
                     calibration_hash: str | None = None, system: str | None = None,
                     progress: bool | str = False) -> ActivationSignature:
    """Record the activation signature of ``(question, answer)`` pairs rendered with the chat template.

    Args:
        tokens: ``"answer"`` (statistics over the answer tokens only) or ``"all"`` (prompt included).
        batch_size: texts per forward pass (right-padded, padding excluded from every statistic).
        modules: ``"all"``, ``"attn"`` or ``"mlp"``: which layers to record.
        system: optional system prompt rendered before each question.
    """
    tok = get_tokenizer(model)
    encoded = [encode_pair(tok, q, a, system=system) for q, a in pairs]
    sums, n_tokens, n_texts = record_encoded(model, encoded, tokens=tokens, batch_size=batch_size,
                                             modules=modules, progress=progress)
    if calibration_hash is None:
        h = hashlib.sha256()
        for q, a in pairs:
            h.update(json.dumps([q, a]).encode())
        calibration_hash = h.hexdigest()[:16]
    return ActivationSignature({k: {s: v.cpu() for s, v in d.items()} for k, d in sums.items()}, n_tokens, n_texts,
                               get_model_id(model), architecture_fingerprint(model), calibration_hash, tokens, pole, dataset)


def record_persona_signatures(model, persona: PersonaSet, *, calib_size: int | None = None, tokens: str = "answer",
                              batch_size: int = 8, modules: str = "all", progress: bool = False) -> dict[str, ActivationSignature]:
    """Signatures of every pole of ``persona`` (the first ``calib_size`` calibration items)."""
    ps = persona.subset(calib_size)
    out = {}
    for pole in ps.pole_names:
        out[pole] = record_signature(model, ps.calibration_pairs(pole), tokens=tokens, batch_size=batch_size,
                                     modules=modules, pole=pole, dataset=ps.name, calibration_hash=ps.content_hash(),
                                     progress=f"{ps.name}/{pole}" if progress else False)
    return out
