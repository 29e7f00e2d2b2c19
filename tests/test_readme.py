"""The README's quick start runs as written (on the real default model, in a fresh folder)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the README has no python block"
    return blocks[0]


def test_the_quick_start_is_the_first_python_block():
    code = quick_start()
    assert "pc.load_model()" in code and "pc.build_masks" in code and ".save(" in code


@pytest.mark.slow
def test_the_readme_quick_start_runs_as_written(tmp_path):
    script = tmp_path / "quick_start.py"
    script.write_text(quick_start(), encoding="utf-8")
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ChoiceRow(" in done.stdout
    saved = [p for p in tmp_path.rglob("mask_config.json")]
    assert len(saved) == 1 and (saved[0].parent / "mask.safetensors").is_file()
