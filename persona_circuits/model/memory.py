"""Large CPU tensors allocated without page faults: glibc's ``mallopt`` for a process that computes with them.

A chunk of logits is tens to hundreds of MB (64 rows of Gemma-3-270M's 262,144-token vocabulary in float32:
67 MB). glibc serves an allocation above its mmap threshold (at most 32 MB by default) with a fresh ``mmap``
and returns it at ``free``, so every new tensor of that size faults its pages in again (the kernel zeroes each
4 kB page on first touch). The elementwise passes over logits (``exp``, ``logsumexp``, a product with the
dense distribution, the rounding to bfloat16) then cost several times their arithmetic
(``benchmarks/bench_malloc.py`` times the KL damage and the choice scoring with and without).

:func:`keep_large_allocations` raises the mmap threshold and the trim threshold to 1 GiB, so such blocks come
from the heap and are reused after ``free``. It changes where memory lives, never a number: every result is
the same bit for bit. The cost is that freed memory stays with the process up to the thresholds, instead of
going back to the system at once. The command line (every command that loads a model) and each Ray shard
task call it; ``PERSONA_MALLOC=default`` leaves glibc's settings alone. In a notebook::

    from persona_circuits.model.memory import keep_large_allocations
    keep_large_allocations()
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: the environment variable that leaves glibc's settings alone (``default``)
ENV = "PERSONA_MALLOC"
#: the thresholds set (bytes): above the largest chunk of logits the study allocates (256 x 262,144 float32)
THRESHOLD = 1 << 30

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_DONE: list[bool] = []


def keep_large_allocations(threshold: int = THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds to ``threshold`` bytes (once per process; see the module
    docstring). Returns whether they are set: ``False`` off Linux with glibc, where glibc refuses the value,
    or with ``PERSONA_MALLOC=default``."""
    if _DONE:
        return _DONE[0]
    ok = False
    if os.environ.get(ENV, "").strip().lower() != "default" and platform.system() == "Linux" \
            and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold))) and \
                bool(libc.mallopt(_M_TRIM_THRESHOLD, int(threshold)))
        except (OSError, AttributeError):
            ok = False
    _DONE.append(ok)
    return ok
