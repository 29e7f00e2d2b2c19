"""The weights' dtype: names, ``auto`` resolution, and the dtype recorded in every artefact.

``auto`` (the default of :func:`~persona_circuits.model.loading.load_model` and of ``--dtype``) is bfloat16 where
the hardware computes it natively, float32 elsewhere:

* CPU: bfloat16 when the CPU has AVX512-BF16 or AMX-BF16 (the ``avx512_bf16`` / ``amx_bf16`` flags of
  ``/proc/cpuinfo`` on Linux; elsewhere torch's own CPU probes), whose bfloat16 matrix multiplies run
  about twice as many operations per cycle as float32 FMAs; without them torch emulates bfloat16 by
  converting to float32, which is slower than float32 itself;
* CUDA: bfloat16 when the device supports it natively (compute capability 8.0 or later, e.g. A100, H100;
  ``torch.cuda.is_bf16_supported(including_emulation=False)``);
* any other device (MPS, meta...): float32.

An already-loaded model passed to ``load_model`` keeps its own dtype under ``auto``. Activation
statistics are accumulated in float64 and choice log-probabilities in float32/float64 whatever the dtype;
``--dtype float32`` reproduces the float32 numbers exactly. The agreement of bfloat16 with float32
(identical choices, largest per-token margin difference) is measured in ``benchmarks/bench_scoring_paths.py``
(BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..options import DTYPES

if TYPE_CHECKING:
    import torch

_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
#: the CPU flags (``/proc/cpuinfo`` names) that make bfloat16 native
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_FLAG_LABELS = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16"}


@dataclass(frozen=True)
class DtypeChoice:
    """A resolved dtype and why it was chosen (printed by the CLI, e.g. ``auto: CPU has AMX-BF16``)."""

    dtype: "torch.dtype"
    reason: str

    @property
    def name(self) -> str:
        return dtype_name(self.dtype)


def dtype_name(x: Any) -> str:
    """``"bfloat16"`` for ``torch.bfloat16``, a model (its first parameter's dtype) or a dtype name."""
    import torch

    if isinstance(x, str):
        return _ALIASES.get(x, x)
    if isinstance(x, torch.nn.Module):
        x = next(x.parameters()).dtype
    return str(x).replace("torch.", "")


def parse_dtype(dtype: "str | torch.dtype") -> "torch.dtype":
    """A concrete dtype from its name (``float32``, ``bfloat16``, ``float16`` or ``fp32``/``bf16``/``fp16``)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    name = _ALIASES.get(dtype, dtype)
    if name not in DTYPES or name == "auto":
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES[1:] + tuple(_ALIASES))}")
    return getattr(torch, name)


def bf16_flags(cpuinfo: str) -> frozenset[str] | None:
    """The :data:`CPU_BF16_FLAGS` in the first ``flags`` line of ``/proc/cpuinfo`` text (``None`` without one)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(set(line.split(":", 1)[-1].split()) & set(CPU_BF16_FLAGS))
    return None


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """This CPU's model: ``model name (family F, model M, stepping S)`` from the first processor of
    ``/proc/cpuinfo``; ``platform.processor()`` elsewhere; ``None`` when neither says. Recorded with a study:
    bfloat16 matrix multiplies are exactly reproducible on one CPU model, not across models (the kernels'
    blocking and accumulation differ). A virtual machine may report a generic name and made-up numbers."""
    import platform

    text = cpuinfo
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return platform.processor() or None
    first: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        k, _, v = line.partition(":")
        first.setdefault(k.strip(), v.strip())
    name = first.get("model name") or platform.processor() or None
    ids = ", ".join(f"{k} {first[k]}" for k in ("cpu family", "model", "stepping") if first.get(k))
    return f"{name} ({ids})" if name and ids else name


@functools.lru_cache(maxsize=1)
def cpu_bf16_features() -> frozenset[str]:
    """The native-bfloat16 features of this CPU among :data:`CPU_BF16_FLAGS` (``/proc/cpuinfo`` on Linux,
    else torch's CPU probes where this torch has them)."""
    if sys.platform.startswith("linux"):
        try:
            found = bf16_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
        except OSError:
            found = None
        if found is not None:
            return found
    import torch

    probes = {"avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
    cpu = getattr(torch._C, "_cpu", None)
    found = set()
    for flag, fn in probes.items():
        try:
            if cpu is not None and getattr(cpu, fn)():
                found.add(flag)
        except (AttributeError, RuntimeError):
            pass
    return frozenset(found)


def _cuda_bf16(index: int | None) -> bool:
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch: no emulation argument
        native = torch.cuda.is_bf16_supported()
    major, _ = torch.cuda.get_device_capability(index)
    return bool(native) and major >= 8


def choose_dtype(dtype: "str | torch.dtype" = "auto", device: "str | torch.device" = "cpu") -> DtypeChoice:
    """Resolve ``dtype`` for ``device``: a concrete dtype is returned as it is; ``"auto"`` follows the
    rules of this module's docstring."""
    if not (isinstance(dtype, str) and dtype == "auto"):
        d = parse_dtype(dtype)
        return DtypeChoice(d, f"--dtype {dtype_name(d)}")
    import torch

    dev = torch.device(device)
    if dev.type == "cpu":
        found = cpu_bf16_features()
        if found:
            return DtypeChoice(torch.bfloat16, "auto: CPU has " + " and ".join(_FLAG_LABELS[f] for f in sorted(found)))
        return DtypeChoice(torch.float32, "auto: CPU has neither AVX512-BF16 nor AMX-BF16")
    if dev.type == "cuda":
        if _cuda_bf16(dev.index):
            return DtypeChoice(torch.bfloat16, "auto: CUDA device with native bfloat16")
        return DtypeChoice(torch.float32, "auto: CUDA device without native bfloat16")
    return DtypeChoice(torch.float32, f"auto: float32 on {dev.type}")


def resolve_dtype(dtype: "str | torch.dtype" = "auto", device: "str | torch.device" = "cpu") -> "torch.dtype":
    """The dtype ``load_model`` uses for ``dtype`` on ``device`` (``"auto"``: bfloat16 where native)."""
    return choose_dtype(dtype, device).dtype


def device_of_map(device_map: Any) -> str:
    """The device whose ``auto`` dtype a ``device_map`` load gets: the first CUDA device named in the map,
    or CUDA for accelerate's named strategies when CUDA is available, else the CPU."""
    import torch

    if isinstance(device_map, dict):
        for v in device_map.values():
            s = str(v) if not isinstance(v, int) else f"cuda:{v}"
            if s.startswith("cuda"):
                return s
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"
