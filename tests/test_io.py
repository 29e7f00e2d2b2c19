"""Byte-identical artefacts: the same inputs give the same bytes, in one process and across processes."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load

from persona_circuits._io import safetensors_bytes

_SAVE_MASK = """
import sys, torch
from persona_circuits.masks.build import Mask, MaskConfig
g = torch.Generator().manual_seed(0)
masks = {f"blocks.{i}.mlp.{r}": torch.rand(7, 13, generator=g) > 0.5 for i in range(3) for r in ("out", "in", "gate")}
cfg = MaskConfig(method="wanda", sparsity=0.5, model_id="m", fingerprint="f", poles=["a", "b"], extra={"z": 1, "y": 2})
for k in range(3):
    Mask(masks, cfg).save(f"{sys.argv[1]}/m{k}")
"""


def test_safetensors_bytes_are_canonical_and_loadable():
    t = {"b": torch.arange(10, dtype=torch.uint8), "a": torch.ones(3, dtype=torch.float64),
         "c": torch.zeros(2, dtype=torch.bfloat16)}
    meta = {"format": "x", "version": "1", "another": "key"}
    blobs = {safetensors_bytes(t, meta) for _ in range(12)}  # raw safetensors alternates key orders
    assert len(blobs) == 1
    blob = blobs.pop()
    assert int.from_bytes(blob[:8], "little") % 8 == 0
    back = load(blob)
    assert set(back) == set(t) and all(torch.equal(back[k], t[k]) for k in t)
    from safetensors import safe_open  # metadata survives

    p = Path(os.environ.get("TMPDIR", "/tmp")) / f"pc_io_{os.getpid()}.safetensors"
    try:
        p.write_bytes(blob)
        with safe_open(str(p), framework="pt") as fh:
            assert fh.metadata() == meta
    finally:
        p.unlink(missing_ok=True)


def test_identical_masks_are_saved_byte_identically_across_processes(tmp_path):
    digests = []
    for seed in ("0", "1", "random"):
        out = tmp_path / seed
        out.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed, OMP_NUM_THREADS="1")
        subprocess.run([sys.executable, "-c", _SAVE_MASK, str(out)], check=True, env=env)
        for k in range(3):
            for f in ("mask.safetensors", "mask_config.json"):
                digests.append(hashlib.sha256((out / f"m{k}" / f).read_bytes()).hexdigest())
    assert len(set(digests[0::2])) == 1 and len(set(digests[1::2])) == 1


def test_atomic_writes_give_the_usual_permissions_and_keep_a_replaced_files(tmp_path):
    from persona_circuits._io import atomic_directory, atomic_write_bytes, atomic_write_json

    old = os.umask(0o022)
    try:
        new = atomic_write_json(tmp_path / "r.json", {"a": 1})
        assert new.stat().st_mode & 0o777 == 0o644  # not the 0o600 of a temporary file
        os.chmod(new, 0o640)
        atomic_write_bytes(new, b"{}")
        assert new.stat().st_mode & 0o777 == 0o640 and new.read_bytes() == b"{}"  # the replaced file's mode
        os.umask(0o077)
        assert atomic_write_bytes(tmp_path / "private", b"x").stat().st_mode & 0o777 == 0o600  # the umask holds
        os.umask(0o022)
        with atomic_directory(tmp_path / "d") as d:
            (d / "f").write_text("x")
        assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(old)
    assert not list(tmp_path.glob(".*.tmp"))
