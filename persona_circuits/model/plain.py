"""A plain Hugging Face module that shares the bridge's weights, for fast forward passes.

TransformerLens 4.x wraps the Hugging Face model *in place*: ``hf_model(bridge)`` runs through the
bridge's components (hook points, and an attention wrapper whose KV-cache path is wrong in
transformer-lens 4.3). :func:`plain_model` builds, once per bridge, a second instance of the Hugging
Face class on the ``meta`` device whose parameters and buffers are *the same tensor objects* as the
bridge's (nothing is copied). Weight edits in place (masks, :func:`~persona_circuits.apply_mask`,
``model.to(dtype)``) are therefore seen by both. It uses PyTorch's SDPA attention, accepts custom 4D
attention masks and position ids, and fires no TransformerLens hook and no hook on the bridge's modules.

Use it only when :func:`hooks_active` is false: steering hooks (``model.hooks(...)``), LoRA forward
hooks on the wrapped ``nn.Linear`` modules and activation capture act on the bridge's modules, which the
plain module does not call.

On build the plain module is checked against the bridge on a short input (same log-probabilities to
float tolerance); a model it cannot mirror (a parameter it cannot find, a failed or differing forward)
gets ``None`` and callers use the bridge. The check is structural (the same weights feed both), so a
passed check is remembered on disk, keyed by the model class, its config, dtype, device type and the
versions of torch, transformers and transformer-lens (``<cache_dir>/plain_checks/``): a later process with
the same model skips its two forward passes (about 0.4 s on the default model on this project's CPU).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules import module as _torch_module

from .loading import Model, cache_dir, hf_model

log = logging.getLogger(__name__)

_WRAP = "._original_component"
_CACHE: "weakref.WeakKeyDictionary[nn.Module, _Plain | None]" = weakref.WeakKeyDictionary()


class _Plain:
    """The plain module and the (owner, kind, name, tensor) links that keep it in step with the bridge."""

    def __init__(self, module: nn.Module, links: list[tuple[nn.Module, str, str, Tensor]]) -> None:
        self.module = module
        self.links = links

    def current(self) -> bool:
        """True while every shared parameter and buffer is still the object the bridge holds.

        ``model.to(...)`` changes parameters in place (same objects) but replaces buffers, and code may
        assign new parameters; either makes the plain module stale and it is rebuilt."""
        for owner, kind, name, t in self.links:
            if getattr(owner, kind).get(name) is not t:
                return False
        return True


@contextlib.contextmanager
def mirrored_hook(model: Model, module: nn.Module, fn) -> Iterator[None]:
    """Register ``fn`` as a forward hook on ``module`` (a bridge module) that the caller mirrors on the
    plain module itself: it is left out of :func:`hooks_active`, so the plain path stays in use."""
    handle = module.register_forward_hook(fn)
    key = (id(module._forward_hooks), handle.id)
    mirrored = model.__dict__.setdefault("_persona_mirrored_hooks", set())
    mirrored.add(key)
    try:
        yield
    finally:
        handle.remove()
        mirrored.discard(key)


def decoder_layers(plain: nn.Module) -> nn.ModuleList:
    """The plain module's decoder blocks, in order (``model.layers`` for Llama/Gemma, ``transformer.h``
    for GPT-2): block ``i`` is the bridge's ``blocks.{i}``."""
    base = getattr(plain, plain.base_model_prefix)
    for name in ("layers", "h"):
        if isinstance(getattr(base, name, None), nn.ModuleList):
            return getattr(base, name)
    raise AttributeError(f"{type(plain).__name__}: no decoder layer list found")


def linear_modules(plain: nn.Module) -> dict[int, nn.Module]:
    """The plain module's ``nn.Linear`` modules keyed by ``id`` of their weight, which is the bridge's own
    weight tensor: the twin of a bridge layer ``l`` is ``linear_modules(plain)[id(l.weight)]``."""
    return {id(m.weight): m for m in plain.modules() if isinstance(m, nn.Linear)}


def _internal_hooks(root: nn.Module) -> set[tuple[int, int]]:
    """(id of hook dict, hook id) of the hooks TransformerLens's blocks install for themselves on their
    first forward (``BlockBridge._capture_hook_handles``: they only feed its own hook points), and of the
    bridge hooks mirrored on the plain module (:func:`mirrored_hook`)."""
    keys = set(root.__dict__.get("_persona_mirrored_hooks", ()))
    for mod in root.modules():
        for h in getattr(mod, "_capture_hook_handles", None) or ():
            d = h.hooks_dict_ref()
            if d is not None:
                keys.add((id(d), h.id))
    return keys


def hooks_active(model: Model) -> bool:
    """True if any forward hook or pre-hook is registered on the bridge, the wrapped HF model (TransformerLens
    hook points, LoRA hooks on ``nn.Linear`` modules) or globally on every module; the bridge's own
    internal capture hooks, mirrored hooks and transformers' output observers (:func:`_observer`) do not count."""
    if _torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks:
        return True
    internal = None
    seen = set()
    for root in (model, hf_model(model)):
        for mod in root.modules():
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            for d in (mod._forward_hooks, mod._forward_pre_hooks):
                if not d:
                    continue
                if internal is None:
                    internal = _internal_hooks(model)
                if any((id(d), k) not in internal and not _observer(fn) for k, fn in d.items()):
                    return True
    return False


def _observer(fn) -> bool:
    """transformers' output-capturing hooks (installed on the decoder layers the first time hidden states or
    attentions are requested, e.g. by ``run_with_cache``, and left there): they only record outputs while a
    collector is active and return ``None``, so they change nothing the plain path would miss."""
    return getattr(fn, "__name__", "") == "output_capturing_hook" and "output_capturing" in getattr(fn, "__module__", "")


def _owner_links(root: nn.Module) -> dict[str, tuple[nn.Module, str, str, Tensor]]:
    """Unwrapped name (``model.layers.0.self_attn.q_proj.weight``) -> where the tensor lives in ``root``."""
    out: dict[str, tuple[nn.Module, str, str, Tensor]] = {}
    clash: set[str] = set()
    for mod_name, mod in root.named_modules(remove_duplicate=False):
        for kind in ("_parameters", "_buffers"):
            for name, t in getattr(mod, kind).items():
                if t is None:
                    continue
                full = f"{mod_name}.{name}" if mod_name else name
                key = full.replace(_WRAP, "")
                prev = out.get(key)
                if prev is not None and prev[3] is not t:
                    clash.add(key)
                out.setdefault(key, (mod, kind, name, t))
    for key in clash:
        out.pop(key, None)  # ambiguous: the plain module will miss it and is refused
    return out


def _build(model) -> _Plain | None:
    hf = hf_model(model)
    cfg = copy.deepcopy(hf.config)
    try:
        with torch.device("meta"):
            plain = type(hf)._from_config(cfg, attn_implementation="sdpa")
    except Exception as exc:  # noqa: BLE001 - any failure: use the bridge
        log.info("no plain forward for %s: %s", type(hf).__name__, exc)
        return None
    have = _owner_links(hf)
    links = []
    for kind in ("_parameters", "_buffers"):
        for mod_name, mod in plain.named_modules(remove_duplicate=False):
            for name, t in list(getattr(mod, kind).items()):
                if t is None:
                    continue
                full = f"{mod_name}.{name}" if mod_name else name
                src = have.get(full)
                if src is None or tuple(src[3].shape) != tuple(t.shape):
                    log.info("no plain forward: %s not found in the wrapped model", full)
                    return None
                getattr(mod, kind)[name] = src[3]
                links.append(src)
    plain.eval()
    p = _Plain(plain, links)
    if not _self_check(model, plain):
        return None
    return p


#: bump when the self-check changes: verdicts remembered by an older check are ignored
SELF_CHECK_VERSION = 1


def _check_key(model, plain: nn.Module) -> str:
    """What the self-check's verdict depends on: the model's class and config (less where it was read
    from), the bridge's architecture adapter, dtype and device type, the padding token, and the versions of
    the libraries that compute both forwards."""
    from importlib.metadata import PackageNotFoundError, version

    hf = hf_model(model)
    p = next(plain.parameters())
    tok = getattr(model, "tokenizer", None)
    libs = {}
    for pkg in ("torch", "transformers", "transformer-lens"):
        try:
            libs[pkg] = version(pkg)
        except PackageNotFoundError:
            libs[pkg] = "absent"
    config = {k: v for k, v in hf.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    spec = [SELF_CHECK_VERSION, f"{type(hf).__module__}.{type(hf).__qualname__}", config,
            type(getattr(model, "adapter", None)).__name__, str(p.dtype), p.device.type,
            getattr(tok, "pad_token_id", None), libs]
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _self_check(model, plain: nn.Module) -> bool:
    """:func:`_compare_forwards`, or a verdict that passed before for the same :func:`_check_key` (passed
    verdicts only are kept: a failure is checked again next time)."""
    try:
        memo = cache_dir() / "plain_checks" / f"{_check_key(model, plain)}.json"
        if memo.is_file():
            return True
    except (OSError, TypeError, ValueError, StopIteration):
        memo = None
    ok = _compare_forwards(model, plain)
    if ok and memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_suffix(f".{id(plain)}.tmp")
            tmp.write_text(json.dumps({"passed": True, "model": type(hf_model(model)).__name__}) + "\n")
            tmp.replace(memo)
        except OSError as exc:  # a read-only cache only costs the check next time
            log.info("could not remember the plain-forward check in %s: %s", memo, exc)
    return ok


@torch.no_grad()
def _compare_forwards(model, plain: nn.Module) -> bool:
    """Same next-token log-probabilities as the bridge on a short two-row padded input, with the plain
    module switched to eager attention for the check (the bridge's own attention is eager), so that a
    structural difference is not hidden behind SDPA's 16-bit rounding."""
    tok = getattr(model, "tokenizer", None)
    dev = next(plain.parameters()).device
    vocab = plain.get_output_embeddings().weight.shape[0]
    ids = (torch.arange(14, device=dev).view(2, 7) * 7919 + 11) % max(vocab, 1)
    att = torch.ones_like(ids)
    att[1, 5:] = 0
    if tok is not None and tok.pad_token_id is not None:
        ids[1, 5:] = tok.pad_token_id
    try:
        ref = model(ids, attention_mask=att).float().log_softmax(-1)
        plain.set_attn_implementation("eager")
        try:
            out = plain(ids, attention_mask=att, use_cache=False).logits.float().log_softmax(-1)
        finally:
            plain.set_attn_implementation("sdpa")
    except Exception as exc:  # noqa: BLE001
        log.info("no plain forward: %s", exc)
        return False
    keep = att.bool()
    err = float((ref[keep] - out[keep]).abs().max())
    dtype = next(plain.parameters()).dtype
    tol = 1e-3 if dtype in (torch.float32, torch.float64) else 5e-2
    if not err <= tol:
        log.warning("plain forward differs from the bridge by %.3g (tolerance %.3g): using the bridge", err, tol)
        return False
    return True


def plain_model(model: Model) -> nn.Module | None:
    """The plain HF module sharing ``model``'s weights (built once, rebuilt when stale), or ``None``
    (also for a model spread over several devices with ``device_map``: its dispatch hooks move
    activations between devices and the plain module has none)."""
    if len({p.device for p in hf_model(model).parameters()}) > 1:
        return None
    p = _CACHE.get(model, False)
    if p is False or (p is not None and not p.current()):
        p = _CACHE[model] = _build(model)
    return None if p is None else p.module


def attention_masks(plain: nn.Module, allowed: Tensor, position_ids: Tensor) -> Any:
    """``allowed`` (batch, query, key) boolean as the model's 4D mask; a dict per attention type for
    models with sliding-window layers (window measured on position ids, as the model does)."""
    mask = allowed[:, None]
    cfg = getattr(plain.config, "get_text_config", lambda: plain.config)()
    types = set(getattr(cfg, "layer_types", None) or ())
    window = getattr(cfg, "sliding_window", None)
    if window and "sliding_attention" in types:
        dist = position_ids[:, :, None] - position_ids[:, None, :]
        sliding = allowed & (dist < window)
        eye = torch.eye(allowed.shape[1], dtype=torch.bool, device=allowed.device)
        return {"full_attention": mask, "sliding_attention": (sliding | eye)[:, None]}
    return mask
