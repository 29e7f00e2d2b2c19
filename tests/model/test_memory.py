"""Large tensors kept in the heap (persona_circuits.model.memory): set once per process, only with glibc, and
left alone on request; no number changes (the benchmark checks that on the models, bench_malloc.py)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

_CHILD = """
import json, torch
from persona_circuits.model.memory import keep_large_allocations
first = keep_large_allocations()
again = keep_large_allocations()
g = torch.Generator().manual_seed(0)
z = torch.randn(64, 300_000, generator=g)  # 77 MB: above glibc's default mmap threshold
print(json.dumps({"first": first, "again": again, "lse": [float(v).hex() for v in z.logsumexp(-1)[:4]]}))
"""


def _child(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop("PERSONA_MALLOC", None)
    if env_value is not None:
        env["PERSONA_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_thresholds_set_once_and_left_alone_on_request_with_the_same_numbers():
    kept, default = _child(None), _child("default")
    assert kept["first"] is True and kept["again"] is True
    assert default["first"] is False and default["again"] is False
    assert kept["lse"] == default["lse"]  # where memory lives changes no number


def test_off_glibc_nothing_is_set(monkeypatch):
    from persona_circuits.model import memory

    monkeypatch.setattr(memory, "_DONE", [])
    monkeypatch.setattr(memory.platform, "system", lambda: "Darwin")
    assert memory.keep_large_allocations() is False
