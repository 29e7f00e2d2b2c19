"""``persona-circuits figures RESULTS --out DIR [--only NAME] [--format png,pdf,svg]``."""

from __future__ import annotations

import pytest

from persona_circuits.cli import main

from ..results_fixtures import SMOLLM


def test_figures_command_writes_each_format(tmp_path, capsys):
    out = tmp_path / "new" / "figs"
    assert main(["figures", str(SMOLLM), "--out", str(out), "--only", "sweeps,stability", "--format", "pdf,svg,png"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{f}" for n in ("sweeps", "stability")
                                                            for f in ("png", "pdf", "svg"))
    assert len(capsys.readouterr().out.splitlines()) == 6


@pytest.mark.parametrize("args, message", [(["--format", "jpg"], "--format takes"), (["--only", "nope"], "--only takes")])
def test_figures_command_refuses_bad_options(tmp_path, capsys, args, message):
    assert main(["figures", str(SMOLLM), "--out", str(tmp_path / "f"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("persona-circuits: error: ") and message in err and not (tmp_path / "f").exists()


def test_figures_command_reports_unreadable_results(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["figures", str(tmp_path / "bad.json"), "--out", str(tmp_path / "f")]) == 2
    assert "cannot read" in capsys.readouterr().err
