"""Persona masks: the mask object, its compact storage and the builders of every method.

Every keep-mask method keeps, in every row ``i`` of every selected layer, the ``k = floor((1 − ρ) · d_in)``
weights with the largest score (``ρ`` = sparsity, the same in every layer). The removal method
(``contrastive-removal``) instead removes, per row, the ``d_in − k`` weights (a fraction ``ρ``, e.g.
0.001-0.05) with the largest score of the *opposite* pole and keeps the rest. Ties are broken
deterministically: larger score first, then larger ``|W|``, then lower input index, so identical
inputs give bit-identical masks (:mod:`.selection`). Masks are stored bit-packed (one bit per weight)
in ``mask.safetensors`` with their metadata in ``mask_config.json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from torch import Tensor

from . import scoring
from .._io import atomic_directory, safetensors_bytes
from ..model.dtypes import dtype_name
from ..errors import MaskError, ModelMismatchError
from ..model.loading import MODULE_SCOPES, Model, architecture_fingerprint, get_model_id, prunable_layers
from ..options import METHODS
from .selection import sort_keys, topk_rows, topk_rows_varying  # noqa: F401 (sort_keys: for importers of masks)
from .provenance import Provenance
from .statistics import DEFAULT_STATISTIC, DEFAULT_TEXT_STAT, STATISTICS, TEXT_STATISTICS, ActivationSignature

MASK_WEIGHTS_FILENAME = "mask.safetensors"
MASK_CONFIG_FILENAME = "mask_config.json"
CONTRASTIVE_METHODS = METHODS[1:5]


def check_sparsity(sparsity: float) -> float:
    s = float(sparsity)
    if not (0.0 <= s < 1.0) or s != s:
        raise MaskError(f"sparsity must be in [0, 1), got {sparsity}")
    return s


def keep_count(d_in: int, sparsity: float) -> int:
    """``k = floor((1 − ρ) · d_in)`` (computed exactly for decimal ρ)."""
    return int(np.floor(round((1.0 - sparsity) * d_in, 9)))


def remove_count(d_in: int, fraction: float) -> int:
    """Weights removed per row by a removal mask of ``fraction``: ``d_in − floor((1 − fraction) · d_in)``."""
    return d_in - keep_count(d_in, fraction)


# --------------------------------------------------------------------------------------------
# The mask object


@dataclass
class MaskConfig:
    """Metadata of a mask (SAELens-style: plain fields, ``to_dict``/``from_dict``)."""

    method: str
    sparsity: float
    model_id: str
    fingerprint: str
    modules: str = "all"
    statistic: str | None = None
    tokens: str | None = None
    pole: str | None = None
    poles: list[str] = field(default_factory=list)
    dataset: str | None = None
    calibration_hash: str | None = None
    phi: str | None = None
    tau: float | None = None
    text_stat: str | None = None
    seed: int | None = None
    dtype: str | None = None  # the model's weights' dtype when the mask was built (|W| in its scores)
    extra: dict = field(default_factory=dict)

    @property
    def provenance(self) -> Provenance:
        """Where this mask comes from (the record its signatures share)."""
        return Provenance.of(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "MaskConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names - {"shapes", "packed_sha256", "format", "version"}
        if unknown:
            raise MaskError(f"unknown mask config field(s): {sorted(unknown)}")
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Mask:
    """Boolean keep-masks (``True`` = keep) for a set of layers, with metadata.

    Layers absent from ``masks`` are left dense when the mask is applied.
    """

    masks: dict[str, Bool[Tensor, "d_out d_in"]]
    config: MaskConfig

    @property
    def n_weights(self) -> int:
        return sum(m.numel() for m in self.masks.values())

    def density(self) -> float:
        """Fraction of the masked layers' weights kept."""
        return sum(int(m.sum()) for m in self.masks.values()) / max(1, self.n_weights)

    def layer_density(self) -> dict[str, float]:
        return {k: float(m.float().mean()) for k, m in self.masks.items()}

    def identity(self) -> dict:
        """Content identity (a study's cache keys): the config and a hash of every layer's bits (computed once:
        a mask's tensors are not edited after it is built)."""
        if "_identity" not in self.__dict__:
            h = hashlib.sha256()
            for name in sorted(self.masks):
                h.update(name.encode())
                h.update(np.packbits(self.masks[name].cpu().numpy().reshape(-1)).tobytes())
            self.__dict__["_identity"] = {"config": self.config.to_dict(), "bits": h.hexdigest()[:20]}
        return self.__dict__["_identity"]

    def check_model(self, model) -> None:
        """Raise :class:`ModelMismatchError` unless every layer exists in ``model`` with the same shape."""
        shapes = {l.name: l.shape for l in prunable_layers(model)}
        for name, m in self.masks.items():
            if name not in shapes:
                raise ModelMismatchError(f"mask layer {name} does not exist in model {get_model_id(model)}")
            if tuple(m.shape) != tuple(shapes[name]):
                raise ModelMismatchError(
                    f"mask built for another model: layer {name} has shape {tuple(m.shape)} in the mask "
                    f"and {tuple(shapes[name])} in model {get_model_id(model)}")

    # ---- persistence
    def save(self, path: str | Path) -> Path:
        """Write ``path/mask.safetensors`` (bit-packed) and ``path/mask_config.json`` atomically."""
        tensors = {name: torch.from_numpy(np.packbits(m.cpu().numpy().reshape(-1))) for name, m in self.masks.items()}
        # canonical header: identical masks give identical bytes (and packed_sha256)
        blob = safetensors_bytes(tensors, {"format": "persona_circuits.mask", "version": "1"})
        cfg = self.config.to_dict()
        cfg.update(format="persona_circuits.mask", version=1,
                   shapes={k: list(m.shape) for k, m in self.masks.items()},
                   packed_sha256=hashlib.sha256(blob).hexdigest())
        with atomic_directory(path) as tmp:
            (tmp / MASK_WEIGHTS_FILENAME).write_bytes(blob)
            (tmp / MASK_CONFIG_FILENAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Mask":
        """Read a mask folder written by :meth:`save`; corrupt or foreign files raise :class:`MaskError`."""
        path = Path(path)
        cfg_file, w_file = path / MASK_CONFIG_FILENAME, path / MASK_WEIGHTS_FILENAME
        if not cfg_file.is_file() or not w_file.is_file():
            raise MaskError(f"{path}: not a mask folder (needs {MASK_CONFIG_FILENAME} and {MASK_WEIGHTS_FILENAME})")
        try:
            raw = json.loads(cfg_file.read_text(encoding="utf-8"))
            shapes = raw["shapes"]
            want = raw["packed_sha256"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as exc:
            raise MaskError(f"{cfg_file}: corrupt mask config ({exc})") from exc
        blob = w_file.read_bytes()
        if hashlib.sha256(blob).hexdigest() != want:
            raise MaskError(f"{w_file}: corrupt mask file (checksum mismatch)")
        try:
            tensors = st_load(blob)
        except (SafetensorError, ValueError) as exc:
            raise MaskError(f"{w_file}: corrupt mask file ({exc})") from exc
        masks = {}
        for name, shape in shapes.items():
            n = int(np.prod(shape))
            bits = np.unpackbits(tensors[name].numpy(), count=n).astype(bool)
            masks[name] = torch.from_numpy(bits.reshape(shape))
        return cls(masks, MaskConfig.from_dict(raw))


def load_masks(path: str | Path) -> dict[str, Mask]:
    """Masks in a folder written by :func:`save_masks` (keyed by sub-folder, i.e. pole) or one mask folder."""
    path = Path(path)
    if (path / MASK_CONFIG_FILENAME).is_file():
        m = Mask.load(path)
        return {m.config.pole or "mask": m}
    if not path.is_dir():
        raise MaskError(f"no mask folder at {path}")
    subs = sorted(p for p in path.iterdir() if (p / MASK_CONFIG_FILENAME).is_file())
    if not subs:
        raise MaskError(f"{path}: holds no mask (no */{MASK_CONFIG_FILENAME})")
    return {p.name: Mask.load(p) for p in subs}


NULLS_DIRNAME = "nulls"


def load_null_masks(path: str | Path) -> list[dict[str, Mask]]:
    """Null mask pairs stored under ``path/nulls/<k>/<pole>`` (written by ``mask --null-draws``), in draw order."""
    root = Path(path) / NULLS_DIRNAME
    if not root.is_dir():
        return []
    draws = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    return [load_masks(p) for p in draws]


def save_masks(path: str | Path, masks: Mapping[str, Mask]) -> Path:
    """Write one sub-folder per pole under ``path``, all or nothing."""
    with atomic_directory(path) as tmp:
        for pole, m in masks.items():
            m.save(tmp / safe_name(pole))
    return Path(path)


def safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s) or "mask"


# --------------------------------------------------------------------------------------------
# Builders


def _config(model, method, sparsity, modules, **kw) -> MaskConfig:
    return MaskConfig(method=method, sparsity=sparsity, model_id=get_model_id(model),
                      fingerprint=architecture_fingerprint(model), modules=modules, dtype=dtype_name(model), **kw)


def check_mask_args(model, sparsity, modules, sigs=(), statistic=None, text_stat=None) -> float:
    sparsity = check_sparsity(sparsity)
    if modules not in MODULE_SCOPES:
        raise MaskError(f"modules must be one of {MODULE_SCOPES}, got {modules!r}")
    if statistic is not None and statistic not in STATISTICS:
        raise MaskError(f"unknown statistic {statistic!r}; choose one of {STATISTICS}")
    if text_stat is not None and text_stat not in TEXT_STATISTICS:
        raise MaskError(f"unknown per-text statistic {text_stat!r}; choose one of {TEXT_STATISTICS}")
    fp, model_id = architecture_fingerprint(model), get_model_id(model)
    for s in sigs:
        s.provenance.check_model(model_id, fp)
    if len(sigs) == 2:
        sigs[0].check_compatible(sigs[1])
    return sparsity


@torch.no_grad()
def wanda_mask(model: Model, signature: ActivationSignature, *, sparsity: float = 0.5, statistic: str = DEFAULT_STATISTIC,
               modules: str = "all") -> Mask:
    """Single-persona Wanda mask: per row, keep the top-k of ``|W| · a`` (``a`` = ``statistic``)."""
    sparsity = check_mask_args(model, sparsity, modules, (signature,), statistic)
    out = {}
    for l in prunable_layers(model, modules):
        w = l.weight
        out[l.name] = topk_rows(scoring.wanda_scores(w, signature.statistic(l.name, statistic)),
                                keep_count(w.shape[1], sparsity), tiebreak=w.detach()).cpu()
    return Mask(out, _config(model, "wanda", sparsity, modules, statistic=statistic, **signature.provenance.mask_fields()))


@torch.no_grad()
def contrastive_wanda_masks(model: Model, sig_a: ActivationSignature, sig_b: ActivationSignature, *, sparsity: float = 0.3,
                            phi: str = "relu", tau: float = 2.0, modules: str = "all",
                            text_stat: str = DEFAULT_TEXT_STAT) -> tuple[Mask, Mask]:
    """Contrastive-Wanda masks of poles A and B: top-k of ``|W| · φ(±z)`` per row.

    With ReLU, channels with ``z ≤ 0`` score 0 for pole A; when fewer than ``k`` channels of a row
    score above 0 the rest of the top-k is filled from the ties by ``|W|`` (then by index), so at
    ``ρ < 0.5`` the two masks necessarily overlap. ``text_stat``: per-text statistic of the z-score
    (the length-invariant ``"rms"`` by default, or ``"l2"`` as the paper and the released code).
    """
    return _contrastive_pair(model, sig_a, sig_b, sparsity, phi, tau, modules, text_stat, removal=False)


@torch.no_grad()
def contrastive_removal_masks(model: Model, sig_a: ActivationSignature, sig_b: ActivationSignature, *, sparsity: float = 0.01,
                              phi: str = "relu", tau: float = 2.0, modules: str = "all",
                              text_stat: str = DEFAULT_TEXT_STAT) -> tuple[Mask, Mask]:
    """Removal masks: pole A's mask removes, in every row, the ``ρ`` fraction of weights with the largest
    pole-B contrastive-Wanda score ``|W| · φ(−z)`` (the weights the opposite pole relies on), and keeps the
    rest; pole B's mask removes the top of ``|W| · φ(z)``. Exactly ``d_in − floor((1 − ρ) d_in)`` weights
    per row are removed (ties by ``|W|``, then index: with ReLU, a row with fewer channels of positive
    score than that removes its largest-``|W|`` zero-score weights too).
    """
    return _contrastive_pair(model, sig_a, sig_b, sparsity, phi, tau, modules, text_stat, removal=True)


def _contrastive_pair(model, sig_a, sig_b, sparsity, phi, tau, modules, text_stat, *, removal: bool) -> tuple[Mask, Mask]:
    """Keep the top-k of each pole's own score (contrastive-Wanda), or remove the top of the other pole's."""
    sparsity = check_mask_args(model, sparsity, modules, (sig_a, sig_b), text_stat=text_stat)
    if phi not in scoring.PHIS:
        raise MaskError(f"unknown phi {phi!r}; choose one of {scoring.PHIS}")
    ma, mb = {}, {}
    for l in prunable_layers(model, modules):
        w = l.weight
        sa, sb = scoring.contrastive_wanda_scores(w, sig_a, sig_b, l.name, phi, tau, text_stat)
        if removal:
            n = remove_count(w.shape[1], sparsity)
            ma[l.name] = (~topk_rows(sb, n, tiebreak=w.detach())).cpu()
            mb[l.name] = (~topk_rows(sa, n, tiebreak=w.detach())).cpu()
        else:
            k = keep_count(w.shape[1], sparsity)
            ma[l.name] = topk_rows(sa, k, tiebreak=w.detach()).cpu()
            mb[l.name] = topk_rows(sb, k, tiebreak=w.detach()).cpu()
    method = "contrastive-removal" if removal else "contrastive-wanda"
    return mask_pair(model, method, sparsity, modules, sig_a, sig_b, ma, mb, phi=phi,
                 tau=tau if phi == "softplus" else None, text_stat=text_stat)


@torch.no_grad()
def contrastive_sparse_masks(model: Model, sig_a: ActivationSignature, sig_b: ActivationSignature, *, sparsity: float = 0.3,
                             statistic: str = DEFAULT_STATISTIC, modules: str = "all",
                             variant: str = "paper") -> tuple[Mask, Mask]:
    """Contrastive-sparse masks.

    ``variant="paper"``: each weight belongs to the pole with the larger row-normalised Wanda score
    (disjoint masks); each pole keeps per row the top-k of its own weights by ``|S̃a − S̃b|`` (at most
    as many as it owns, so below ``ρ = 0.5`` a mask can be sparser than ``ρ``).
    ``variant="released"``: the released code's method (``contra.py``): one symmetric score
    ``|W| · |ma − mb| / sqrt(va + vb + 1e-6)`` from token-pooled means and variances of the raw
    activations; pole A keeps the top-k; pole B keeps the top-k of the entries not in A's mask, and when
    ``2k > d_in`` fills the rest of its k from A's entries (which the released code sets to ``−inf``,
    so its order among them is arbitrary; here: larger ``|W|``, then lower index). Both keep k per row.
    """
    sparsity = check_mask_args(model, sparsity, modules, (sig_a, sig_b), statistic)
    ma, mb = {}, {}
    for l in prunable_layers(model, modules):
        w = l.weight
        k = keep_count(w.shape[1], sparsity)
        if variant == "paper":
            own_a, own_b, d = scoring.contrastive_sparse_scores(w, sig_a, sig_b, l.name, statistic)
            ma[l.name] = topk_rows(d, k, tiebreak=w.detach(), eligible=own_a).cpu()
            mb[l.name] = topk_rows(d, k, tiebreak=w.detach(), eligible=own_b).cpu()
        elif variant == "released":
            s = scoring.released_sparse_scores(w, sig_a, sig_b, l.name)
            first = topk_rows(s, k, tiebreak=w.detach())
            second = topk_rows(s, k, tiebreak=w.detach(), eligible=~first)
            deficit = k - second.sum(1)
            if bool((deficit > 0).any()):  # 2k > d_in: fill from A's entries by |W|
                fill_score = torch.where(first, w.detach().abs().float(), torch.full((), -1.0, device=w.device))
                second |= topk_rows_varying(fill_score, deficit)
            ma[l.name], mb[l.name] = first.cpu(), second.cpu()
        else:
            raise MaskError(f"unknown contrastive-sparse variant {variant!r} (paper or released)")
    method = "contrastive-sparse" if variant == "paper" else "contrastive-sparse-released"
    return mask_pair(model, method, sparsity, modules, sig_a, sig_b, ma, mb,
                 statistic=statistic if variant == "paper" else "l2")


def mask_pair(model, method, sparsity, modules, sig_a, sig_b, ma, mb, **kw) -> tuple[Mask, Mask]:
    poles = [sig_a.pole or "A", sig_b.pole or "B"]
    h = hashlib.sha256(f"{sig_a.calibration_hash}|{sig_b.calibration_hash}".encode()).hexdigest()[:16]
    common = dict(tokens=sig_a.tokens, poles=poles, dataset=sig_a.dataset, calibration_hash=h, **kw)
    return (Mask(ma, _config(model, method, sparsity, modules, pole=poles[0], **common)),
            Mask(mb, _config(model, method, sparsity, modules, pole=poles[1], **common)))


def random_like(mask: Mask, *, seed: int = 0, pole: str | None = None) -> Mask:
    """Control matched to ``mask``: in every row of every layer, as many weights kept as ``mask`` keeps
    there, chosen uniformly at random (so the realised per-layer and per-row density is the same, also
    for masks sparser than their nominal ``ρ`` such as contrastive-sparse)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(mask.masks):
        m = mask.masks[name]
        out[name] = topk_rows_varying(torch.rand(m.shape, generator=g), m.sum(1))
    c = mask.config
    cfg = MaskConfig(method="random", sparsity=1.0 - mask.density(), model_id=c.model_id, fingerprint=c.fingerprint,
                     modules=c.modules, pole=pole if pole is not None else c.pole, poles=list(c.poles), dataset=c.dataset,
                     seed=seed, dtype=c.dtype, extra={"matched_to": c.method, "matched_sparsity": c.sparsity})
    return Mask({n: out[n] for n in mask.masks}, cfg)


@torch.no_grad()
def random_mask(model: Model, *, sparsity: float = 0.5, modules: str = "all", seed: int = 0, pole: str | None = None) -> Mask:
    """Control: per row, ``k`` weights chosen uniformly at random (same structure as a persona mask).

    Args:
        model: the loaded model; only the shapes of its prunable layers are read.
        sparsity: fraction removed per row (``k`` kept, as in :func:`keep_count`).
        modules: ``"all"``, ``"attn"`` or ``"mlp"``.
        seed: the draw (one generator for the whole model, layers in :func:`prunable_layers` order).
        pole: the name stored in the mask's config.
    """
    sparsity = check_mask_args(model, sparsity, modules)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for l in prunable_layers(model, modules):
        d_out, d_in = l.shape
        out[l.name] = topk_rows(torch.rand(d_out, d_in, generator=g), keep_count(d_in, sparsity))
    return Mask(out, _config(model, "random", sparsity, modules, seed=seed, pole=pole))
