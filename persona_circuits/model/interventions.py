"""Interventions on a loaded model: masks (hard or soft), steering, restored exactly on exit.

``with apply_mask(model, mask): ...`` multiplies each masked weight in place, ``W ← W ⊙ M`` (or
``W ⊙ (M + γ(1 − M))`` for a soft gate), and copies the original values back on exit, also when the
body raises. Switching persona is switching masks: nothing is reloaded.

:class:`Intervention` puts every way of changing the model behind one object (a mask, a soft mask,
residual steering, a system prompt, a LoRA adapter, or nothing), so that damage and alignment are
measured the same way for all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .hooks import block_out
from .loading import Model, prunable_layers
from .plain import mirrored_hook, plain_model
from .replay import steered
from ..errors import MaskError
from ..masks.build import Mask


@contextlib.contextmanager
def apply_mask(model: Model, mask: Mask | None, *, gamma: float = 0.0, dense_layers: set[str] | frozenset = frozenset()) -> Iterator:
    """Apply ``mask`` to ``model`` in place for the duration of the block.

    Args:
        mask: the mask (``None`` applies nothing, for uniform code over conditions), or a composed soft mask
            (:class:`~persona_circuits.masks.compose.GateMask`, which carries its own gates: ``gamma`` must stay 0).
        gamma: soft gate: pruned weights are scaled by ``gamma`` instead of zeroed (``0 ≤ γ ≤ 1``).
        dense_layers: names of masked layers to leave dense (ablation: restore one layer).
    """
    if mask is None:
        yield model
        return
    if getattr(mask, "is_gate_mask", False):
        if gamma or dense_layers:
            raise MaskError("a composed soft mask carries its own gates: apply it without gamma or dense_layers")
        with mask.apply(model):
            yield model
        return
    if not 0.0 <= gamma <= 1.0:
        raise MaskError(f"gamma must be in [0, 1], got {gamma}")
    mask.check_model(model)
    layers = {l.name: l for l in prunable_layers(model)}
    # Backups go to buffers preallocated once per model and reused (a fresh 0.4 GB clone per switch
    # spends most of its time in page faults); a nested apply_mask on the same model gets its own.
    pool = getattr(model, "_persona_backup_pool", None)
    if pool is None or pool.get("busy"):
        pool = {"busy": False, "bufs": {}}
        if getattr(model, "_persona_backup_pool", None) is None:
            model._persona_backup_pool = pool
    pool["busy"] = True
    saved: list[tuple[Tensor, Tensor]] = []
    try:
        with torch.no_grad():
            for name, m in mask.masks.items():
                if name in dense_layers:
                    continue
                w = layers[name].weight
                buf = pool["bufs"].get(name)
                if buf is None or buf.shape != w.shape or buf.dtype != w.dtype or buf.device != w.device \
                        or buf.stride() != w.stride():
                    buf = pool["bufs"][name] = torch.empty_like(w)
                buf.copy_(w)
                saved.append((w, buf))
                m = m.to(w.device)
                if gamma == 0.0:
                    _zero_pruned(w, m)
                else:
                    scale_pruned(w, m, gamma)
        yield model
    finally:
        with torch.no_grad():
            # reverse order: when two layer names alias one weight storage, the later backup was taken
            # after the earlier layer's mask was applied; restoring last-to-first ends with the original
            for w, orig in reversed(saved):
                w.copy_(orig)
        pool["busy"] = False


INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _int_view(w: Tensor, keep: Tensor) -> torch.dtype | None:
    """The integer dtype of ``w``'s size that its bits can be handled as (a real float weight and a bool
    mask), else ``None``."""
    if w.is_floating_point() and not w.is_complex() and keep.dtype == torch.bool:
        return INT_OF_SIZE.get(w.element_size())
    return None


def _zero_pruned(w: Tensor, keep: Tensor) -> None:
    """``w.masked_fill_(~keep, 0.0)``, bit for bit, in one pass: the weight's bits (read as integers)
    times 0 or 1 are +0.0 or unchanged (also for NaN, inf and -0.0). Twice as fast as ``masked_fill_``
    with an inverted mask on CPU."""
    it = _int_view(w, keep)
    if it is not None:
        w.view(it).mul_(keep)
    else:
        w.masked_fill_(~keep, 0.0)


def scale_pruned(w: Tensor, keep: Tensor, gamma: float) -> None:
    """``w.mul_(torch.where(keep, 1.0, gamma).to(w.dtype))``, bit for bit, without the select: the bits of
    ``w · γ`` (``γ`` rounded to float32, then to the weight's dtype, as the select's factor is) where pruned,
    ``w``'s own bits where kept, combined as integers (one of the two terms is 0). About 4x faster on a
    bfloat16 CPU model."""
    g = torch.tensor(gamma, dtype=torch.float32).to(device=w.device, dtype=w.dtype)
    it = _int_view(w, keep)
    if it is not None:
        scaled = (w * g).view(it).mul_(~keep)
        w.view(it).mul_(keep).add_(scaled)
    else:
        w.mul_(torch.where(keep, 1.0, gamma).to(w.dtype))


class ResidualSteering:
    """Adds ``coef · v`` to the residual stream after block ``layer`` (activation steering)."""

    def __init__(self, vector: Float[Tensor, " d_model"], layer: int, coef: float) -> None:
        self.vector, self.layer, self.coef = vector, layer, coef

    def hooks(self) -> list:
        v = self.vector

        def fn(x, hook):
            return x + self.coef * v.to(x.dtype)

        return [(block_out(self.layer), fn)]


@contextlib.contextmanager
def steering(model: Model, steer: ResidualSteering | None) -> Iterator:
    """Context manager that keeps a :class:`ResidualSteering` hook on ``model``.

    The hook sits on the bridge's ``blocks.{layer}.hook_out`` and, mirrored, on the output of the same
    decoder layer of the plain module (:func:`~persona_circuits.model.plain.plain_model`), so both forward paths
    see the steering. The bridge hook is registered as *mirrored* (:func:`~persona_circuits.model.plain.mirrored_hook`):
    it does not count in :func:`~persona_circuits.model.plain.hooks_active`, and scoring and damage keep the fast
    plain path under steering.
    """
    if steer is None or hasattr(steer, "attach"):  # AllLayerSteering, gate.WriterBias: their own hooks
        with contextlib.nullcontext(model) if steer is None else steer.attach(model):
            yield model
        return

    def add(x: Tensor) -> Tensor:
        return x + steer.coef * steer.vector.to(x.device, x.dtype)

    hp = model.hook_dict[block_out(steer.layer)]
    plain = plain_model(model)
    with contextlib.ExitStack() as stack:
        if plain is None:
            stack.enter_context(model.hooks(fwd_hooks=steer.hooks()))
        else:  # on the plain module, blocks 0..layer are replayed from their kept output (persona_circuits.model.replay)
            stack.enter_context(mirrored_hook(model, hp, lambda module, args, out: add(out)))
            stack.enter_context(steered(plain, steer.layer, add))
        yield model


def weights_snapshot(model: Model) -> Mapping[str, Tensor]:
    """Copies of every prunable weight (for bit-exact restore checks)."""
    return {l.name: l.weight.detach().clone() for l in prunable_layers(model)}


@dataclass
class Intervention:
    """One condition of the model: any combination of a (soft) mask, residual steering, a system prompt
    and a LoRA adapter; all ``None`` is the dense model.

    Weight and hook changes are made by :meth:`active`; the system prompt and the context are part of the
    input, so functions that build inputs (:func:`~persona_circuits.measure.evaluation.score_choices` via
    ``system=``, :func:`~persona_circuits.measure.damage.kl_damage`) read :attr:`system` and :attr:`context`
    themselves.
    """

    label: str = "dense"
    mask: Mask | None = None
    gamma: float = 0.0
    steer: ResidualSteering | None = None  # or AllLayerSteering / gate.WriterBias (attach(model))
    system: str | None = None
    context: str | None = None  # text put before the input in the user turn (a retrieved context: RAG)
    lora: Any = None  # persona_circuits.measure.baselines.LoRA

    @contextlib.contextmanager
    def active(self, model) -> Iterator:
        with contextlib.ExitStack() as stack:
            stack.enter_context(apply_mask(model, self.mask, gamma=self.gamma))
            stack.enter_context(steering(model, self.steer))
            if self.lora is not None:
                stack.enter_context(self.lora.active())
            yield model

    @property
    def is_dense(self) -> bool:
        return self.mask is None and self.steer is None and not self.system and not self.context and self.lora is None


# --------------------------------------------------------------------------------------------
# Persona-to-persona switch that touches only the entries where two masks differ


class _WeightGroup:
    """One distinct weight view and every layer name that refers to it (aliases share one group)."""

    def __init__(self, names: list[str], w: Tensor) -> None:
        self.names = names
        self.w = w  # [d_out, d_in] view of the parameter (may be transposed or strided)
        self.orig = w.detach().clone()  # dense original, contiguous
        self.ptr = w.data_ptr()
        n = w.untyped_storage().nbytes() // w.element_size()
        # the whole storage as one flat tensor: entry (i, j) of the view is flat[offset + i*s0 + j*s1]
        self.flat = w.detach().as_strided((n,), (1,), 0)
        self.offset = w.storage_offset()
        self.strides = w.stride()
        self.d_in = w.shape[1]

    def storage_index(self, idx: Tensor) -> Tensor:
        """Row-major indices into the view -> indices into the flat storage."""
        return self.offset + (idx // self.d_in) * self.strides[0] + (idx % self.d_in) * self.strides[1]


_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_THREADED_MIN_ENTRIES = 1 << 18  # smaller switches are not worth handing to threads


class MaskSwitcher:
    """Switch a model between persona masks in place, writing only the entries where the masks differ.

    ``with MaskSwitcher(model) as sw: sw.switch(mask_a); ...; sw.switch(mask_b); ...`` keeps one dense copy
    of every prunable weight (taken on entry; with ``apply_mask`` around it, the weights as they were then).
    Going from one mask to another writes, per weight, only the entries where the two masks (or, for a
    soft mask, their scale factors) differ: their target values are computed once per ordered pair of masks
    and cached (``cache_size`` pairs, least recently used dropped), so alternating two poles' Wanda masks,
    which differ in a few per cent of entries, moves a few per cent of the bytes of ``apply_mask``. Going
    from or to the dense model (``switch(None)``) is one full pass. On exit (also on an exception) every
    weight is copied back from the dense copy: bit-exact.

    Cost (default model, one CPU thread, see ``benchmarks/bench_pole_switch.py``): a switch between the
    two poles of a Wanda pair (3 % of entries differ) takes about a sixth of an ``apply_mask`` exit +
    enter; preparing a pair costs about four such full switches and opening (the dense copy) about two,
    so the switcher pays off when the same masks are switched back and forth several times; for a mask
    used once, ``apply_mask`` is cheaper. Large switches are spread over ``torch.get_num_threads()``
    threads.

    Values are those of :func:`apply_mask` bit for bit: pruned entries are ``+0.0`` (``gamma = 0``) or
    ``W · γ`` per mask that prunes them. Layer names that alias one weight (the same tensor view, e.g. tied
    layers) share one dense copy and get the product of their masks, as nested ``apply_mask`` calls would;
    distinct views of one storage (GPT-2's q/k/v in its fused ``c_attn``) must not overlap. Edit the weights
    only through the switcher while it is open.
    """

    def __init__(self, model, *, gamma: float = 0.0, cache_size: int = 8) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise MaskError(f"gamma must be in [0, 1], got {gamma}")
        self.model, self.gamma, self.cache_size = model, float(gamma), max(0, int(cache_size))
        self._layers = prunable_layers(model)
        self._groups: list[_WeightGroup] | None = None
        self._group_of: dict[str, _WeightGroup] = {}
        self._cache: dict[tuple[int, int], tuple[Mask, Mask, list]] = {}
        self._checked: dict[int, Mask] = {}
        self._pool = None  # threads for large switches (NumPy releases the GIL while it scatters)
        self.current: Mask | None = None

    # ---- life cycle
    def open(self) -> "MaskSwitcher":
        if self._groups is not None:
            return self
        by_view: dict[tuple, list] = {}
        with torch.no_grad():
            for l in self._layers:
                w = l.weight
                key = (w.data_ptr(), tuple(w.shape), tuple(w.stride()), w.dtype)
                by_view.setdefault(key, [l.name, w])
                if by_view[key][0] != l.name:
                    by_view[key].append(l.name)
            groups = [_WeightGroup([first, *more], w) for first, w, *more in by_view.values()]
            _check_no_partial_overlap(groups)
        self._groups = groups
        self._group_of = {n: g for g in groups for n in g.names}
        return self

    def close(self) -> None:
        """Copy every weight back from the dense copy and drop the copies and caches."""
        if self._groups is None:
            return
        with torch.no_grad():
            for g in self._groups:
                g.w.copy_(g.orig)
        self._groups, self._group_of, self.current = None, {}, None
        self._cache.clear()
        self._checked.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> "MaskSwitcher":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- switching
    def _check(self, mask: Mask) -> None:
        if self._checked.get(id(mask)) is not mask:
            mask.check_model(self.model)
            self._checked[id(mask)] = mask

    @torch.no_grad()
    def switch(self, mask: Mask | None) -> None:
        """Put ``mask`` on the model (``None``: the dense weights)."""
        self.open()
        if mask is not None:
            self._check(mask)
        for l in self._layers:
            if l.weight.data_ptr() != self._group_of[l.name].ptr:
                raise MaskError("the model's weights were moved or replaced while a MaskSwitcher was open")
        cur = self.current
        if mask is cur:
            return
        if cur is None:
            self._apply_full(mask)
        elif mask is None:
            for g in self._groups_of(cur):
                g.w.copy_(g.orig)
        else:
            self._run(self._transition(cur, mask))
        self.current = mask

    def _run(self, steps: list["_Step"]) -> None:
        """Apply the steps, spread over ``torch.get_num_threads()`` threads when they are large."""
        n = min(torch.get_num_threads(), len(steps))
        total = sum(s.size for s in steps)
        if n < 2 or total < _THREADED_MIN_ENTRIES:
            for s in steps:
                s.apply()
            return
        if self._pool is None or self._pool._max_workers != n:
            from concurrent.futures import ThreadPoolExecutor

            if self._pool is not None:
                self._pool.shutdown()
            self._pool = ThreadPoolExecutor(n, thread_name_prefix="mask-switch")
        bins: list[list[_Step]] = [[] for _ in range(n)]
        load = [0] * n
        for s in sorted(steps, key=lambda s: -s.size):  # largest first into the least loaded thread
            k = load.index(min(load))
            bins[k].append(s)
            load[k] += s.size
        for f in [self._pool.submit(_apply_all, b) for b in bins]:
            f.result()

    def prepare(self, a: Mask, b: Mask) -> None:
        """Compute (and cache) the switches ``a → b`` and ``b → a`` now, so the first switch is fast too."""
        self.open()
        self._check(a)
        self._check(b)
        self._transition(a, b)
        self._transition(b, a)

    def _groups_of(self, mask: Mask) -> list[_WeightGroup]:
        seen, out = set(), []
        for name in mask.masks:
            g = self._group_of[name]
            if id(g) not in seen:
                seen.add(id(g))
                out.append(g)
        return out

    def _apply_full(self, mask: Mask) -> None:
        for name, m in mask.masks.items():  # same operations, in the same order, as apply_mask
            w = self._group_of[name].w
            m = m.to(w.device)
            if self.gamma == 0.0:
                _zero_pruned(w, m)
            else:
                scale_pruned(w, m, self.gamma)

    def _values(self, g: _WeightGroup, mask: Mask, idx: Tensor) -> Tensor:
        """The weight under ``mask`` at row-major view indices ``idx``."""
        vals = g.orig.reshape(-1)[idx]
        pos = {n: i for i, n in enumerate(mask.masks)}
        for name in sorted((n for n in g.names if n in pos), key=pos.__getitem__):  # apply_mask's order
            m = mask.masks[name]
            mk = m.to(idx.device).reshape(-1)[idx]
            if self.gamma == 0.0:
                vals = torch.where(mk, vals, torch.zeros((), dtype=vals.dtype, device=vals.device))
            else:
                vals = vals * torch.where(mk, 1.0, self.gamma).to(vals.dtype)
        return vals

    def _transition(self, a: Mask, b: Mask) -> list["_Step"]:
        key = (id(a), id(b))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is a and hit[1] is b:
            self._cache[key] = self._cache.pop(key)  # most recently used last
            return hit[2]
        back = self._cache.get((id(b), id(a)))
        if back is not None and back[0] is b and back[1] is a:  # same entries differ: reuse the indices
            steps = [_Step(s.group, s.idx, s.sidx, self._values(s.group, b, s.idx)) for s in back[2]]
        else:
            steps = []
            for g in self._groups:
                diff = None
                for name in g.names:
                    ma, mb = a.masks.get(name), b.masks.get(name)
                    if ma is None and mb is None:
                        continue
                    dev = g.w.device
                    if ma is None:
                        x = ~mb.to(dev)
                    elif mb is None:
                        x = ~ma.to(dev)
                    else:
                        x = ma.to(dev) ^ mb.to(dev)
                    diff = x if diff is None else diff | x
                if diff is None:
                    continue
                idx = diff.reshape(-1).nonzero().squeeze(1)
                if idx.numel():
                    steps.append(_Step(g, idx, g.storage_index(idx), self._values(g, b, idx)))
        if self.cache_size:
            self._cache[key] = (a, b, steps)
            while len(self._cache) > self.cache_size:
                self._cache.pop(next(iter(self._cache)))
        return steps

    def changed_entries(self, a: Mask, b: Mask) -> int:
        """Number of weight entries a switch ``a → b`` writes."""
        self.open()
        return sum(int(s.idx.numel()) for s in self._transition(a, b))


class _Step:
    """Write ``vals`` at flat storage indices ``sidx`` of one weight group (``idx``: row-major view indices).

    On CPU the write goes through NumPy's fancy assignment on the values' bit patterns (about 1.4x faster
    than ``index_copy_`` here, and it also takes bfloat16); the NumPy views are made once."""

    __slots__ = ("group", "idx", "sidx", "vals", "size", "_np")

    def __init__(self, group: _WeightGroup, idx: Tensor, sidx: Tensor, vals: Tensor) -> None:
        self.group, self.idx, self.sidx, self.vals = group, idx, sidx, vals
        self.size = int(idx.numel())
        flat = group.flat
        self._np = None
        if flat.device.type == "cpu" and flat.element_size() in _INT_VIEW:
            it = _INT_VIEW[flat.element_size()]
            self._np = (flat.view(it).numpy(), sidx.numpy(), vals.view(it).numpy())

    def apply(self) -> None:
        if self._np is not None:
            dst, i, v = self._np
            dst[i] = v
        else:
            self.group.flat.index_copy_(0, self.sidx, self.vals)


def _apply_all(steps: list[_Step]) -> None:
    for s in steps:
        s.apply()


def _check_no_partial_overlap(groups: list[_WeightGroup]) -> None:
    """Distinct views of one storage must not share an element (aliases must be the very same view)."""
    by_storage: dict[int, list[_WeightGroup]] = {}
    for g in groups:
        by_storage.setdefault(g.w.untyped_storage().data_ptr(), []).append(g)
    for gs in by_storage.values():
        if len(gs) < 2:
            continue
        count = torch.zeros(gs[0].flat.numel(), dtype=torch.uint8, device=gs[0].w.device)
        for g in gs:
            count.as_strided(g.w.shape, g.w.stride(), g.w.storage_offset()).add_(1)
        if int(count.max()) > 1:
            raise MaskError("two prunable layers share part of a weight through different views; "
                            "MaskSwitcher only supports aliases that are the same view")


@contextlib.contextmanager
def switch_masks(model: Model, *, gamma: float = 0.0) -> Iterator[MaskSwitcher]:
    """``with switch_masks(model) as sw: sw.switch(m)``: a :class:`MaskSwitcher`, weights restored on exit."""
    sw = MaskSwitcher(model, gamma=gamma)
    with sw:
        yield sw
