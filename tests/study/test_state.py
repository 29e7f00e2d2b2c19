import pytest






def test_output_folder_parents_are_created(tmp_path):
    # a fresh clone has no runs/ folder: `reproduce --out runs/quick` creates it
    from persona_circuits.study import STUDY_FILE
    from persona_circuits.study.state import claim_output

    out = tmp_path / "runs" / "deeper" / "quick"
    claim_output(out, {"model": "m", "config": {}, "format": 2}).release()
    assert (out / STUDY_FILE).is_file()


def test_a_second_writer_of_one_output_folder_is_refused(tmp_path):
    import subprocess
    import sys

    from persona_circuits.study.state import claim_output

    lock = claim_output(tmp_path / "out", {"model": "m", "config": {}, "format": 2})
    code = ("import sys; from pathlib import Path; from persona_circuits.study.state import claim_output\n"
            "try:\n    claim_output(Path(sys.argv[1]), {'model': 'm', 'config': {}, 'format': 2})\n"
            "except Exception as e:\n    print(type(e).__name__, e)")
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True)
    assert "StudyError" in other.stdout and "being written by process" in other.stdout
    lock.release()
    again = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True)
    assert again.stdout.strip() == ""  # released: the folder can be resumed


def test_seed_from_adds_only_missing_entries_as_links_and_refuses_a_folder_without_a_cache(tmp_path):
    from persona_circuits.study.config import StudyError
    from persona_circuits.study.state import StageCache

    a, b = StageCache(tmp_path / "a" / "cache"), StageCache(tmp_path / "b" / "cache")
    assert a.get_or_compute("x", "1", lambda: {"v": 1}) == {"v": 1}
    a.get_or_compute("y", "2", lambda: {"v": 2})
    b.get_or_compute("x", "1", lambda: {"v": "mine"})
    assert b.seed_from(tmp_path / "a") == 1  # y only: b's own x is kept
    assert b.get_or_compute("x", "1", lambda: 0) == {"v": "mine"}
    assert b.get_or_compute("y", "2", lambda: pytest.fail("recomputed a seeded entry")) == {"v": 2}
    assert b.seed_from(tmp_path / "a") == 0
    with pytest.raises(StudyError, match="holds no stage cache"):
        b.seed_from(tmp_path / "nothing")


def test_checkpoint_run_log_counts_runs_and_says_when_it_began_late(tmp_path):
    """Each attach adds a run to the checkpoint's runs.json, whose seconds grow with each stage result; a checkpoint
    that already held results without a log (written by code before the log) gives an incomplete log."""
    import json

    from persona_circuits.study.state import StageCache, remove_checkpoint

    ident = {"shard": "s", "model": "m"}
    ckpt = tmp_path / "ckpt"
    a = StageCache(tmp_path / "a")
    a.attach_checkpoint(ckpt, ident)
    a.get_or_compute("stage", "k1", lambda: {"x": 1})
    log = json.loads((ckpt / "runs.json").read_text())
    assert log["complete"] is True and len(log["runs"]) == 1 and {"started", "cpu", "threads", "seconds"} <= set(log["runs"][0])
    b = StageCache(tmp_path / "b")
    b.attach_checkpoint(ckpt, ident)
    assert b.get_or_compute("stage", "k1", lambda: {"x": 2}) == {"x": 1}  # restored, the log is not a stage result
    assert not (tmp_path / "b" / "runs.json").exists()
    run = b.run_log()
    assert run["complete"] is True and len(run["runs"]) == 2
    assert StageCache(tmp_path / "c").run_log() is None  # no checkpoint, no log
    # a checkpoint written before the log: results there, no runs.json
    old = tmp_path / "old"
    c = StageCache(tmp_path / "c2")
    c.attach_checkpoint(old, ident)
    c.get_or_compute("stage", "k9", lambda: {"x": 9})
    (old / "runs.json").unlink()
    d = StageCache(tmp_path / "d")
    d.attach_checkpoint(old, ident)
    assert d.run_log()["complete"] is False and len(d.run_log()["runs"]) == 1
    assert remove_checkpoint(old) == 1 and not old.exists()
