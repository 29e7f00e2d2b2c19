"""Study shards: each set's shard and the cross shard computed apart (fresh caches), merged, equal the
one-process study number for number; merge refuses shards of other studies, duplicates and gaps; a local
Ray with 2 workers gives the same results."""

import copy
import json
from dataclasses import replace
from functools import partial

import pytest

from persona_circuits.study import StudyConfig
from persona_circuits.study.merge import check_shards, merge_shards
from persona_circuits.study.shard_format import CROSS, SHARD_FILE, ShardError, first_difference, read_shard, write_shard
from persona_circuits.study.shards import compute_shard

SETS = ("mbti-ei", "mbti-jp")


def shard_config() -> StudyConfig:
    """A micro study of two MBTI axes (the atlas joins them in the cross shard)."""
    c = StudyConfig.quick_preset()
    c.sets = replace(c.sets, sets=SETS, calib_size=6, calib_record=6, test_size_mbti=3, test_size_ai=3)
    c.analysis = replace(c.analysis, analysis_items=2, capability_texts=2, capability_items=2, similarity_permutations=20)
    c.headline = replace(c.headline, matched_damages=(0.002,))
    return c


def _load(path):
    from persona_circuits import load_model

    return load_model(str(path), dtype="float32")


def _no_wall_times(v):
    if isinstance(v, dict):
        return {k: _no_wall_times(x) for k, x in v.items() if k != "seconds"}
    return [_no_wall_times(x) for x in v] if isinstance(v, list) else v


def _comparable(path) -> dict:
    """A study's results without what the clock decides (meta, timings, the ``seconds`` of a LoRA fit)."""
    d = json.loads(path.read_text())
    return _no_wall_times({k: v for k, v in d.items() if k not in ("meta", "timings")})


@pytest.fixture(scope="module")
def studies(tiny_model_dir, tmp_path_factory):
    """The one-process study, and the same study as shards computed each in its own fresh work folder."""
    from persona_circuits.study import run_study

    tmp = tmp_path_factory.mktemp("shards")
    model, cfg = _load(tiny_model_dir), shard_config()
    run_study(model, tmp / "one", cfg=cfg, progress=False)
    for name in SETS:
        write_shard(tmp / "shards" / name, compute_shard(model, cfg=cfg, data_root=None, shard=name,
                                                         work=tmp / "work" / name, progress=False))
    payloads = [read_shard(tmp / "shards" / n) for n in SETS]
    write_shard(tmp / "shards" / CROSS, compute_shard(model, cfg=cfg, data_root=None, shard=CROSS, work=tmp / "work" / CROSS,
                                                      set_payloads=payloads, progress=False))
    folders = [tmp / "shards" / n for n in (CROSS, *SETS)]  # any order
    merge_shards(folders, tmp / "merged", command="merge")
    return tmp, folders


def test_merged_shards_equal_the_one_process_study(studies):
    tmp, folders = studies
    one, merged = _comparable(tmp / "one" / "results.json"), _comparable(tmp / "merged" / "results.json")
    assert list(merged["sets"]) == list(SETS) and "atlas" in merged and merged["analysis"]["set"] == "mbti-ei"
    assert first_difference(one, merged) is None
    assert one == merged
    assert (tmp / "merged" / "REPORT.md").read_text().count("\n") > 50
    meta = json.loads((tmp / "merged" / "results.json").read_text())["meta"]
    assert [s["shard"] for s in meta["shards"]] == [CROSS, *SETS] and meta["command"] == "merge"
    for f in folders:  # the stage cache is not in the shard folder
        assert sorted(p.name for p in f.iterdir()) == [SHARD_FILE]
    ei = read_shard(folders[1])
    assert ei.shard.set["name"] == "mbti-ei" and ei.identity["sets"] == list(SETS)
    assert ei.identity["code"]["stages"] and ei.meta.seconds > 0 and ei.analysis is not None
    assert ei.meta.git_commit is None or len(ei.meta.git_commit) >= 40
    assert read_shard(folders[2]).analysis is None and ei.set_results().family == "mbti"
    assert read_shard(folders[0]).cross_results().atlas is not None


def test_merge_refuses_shards_of_other_studies(studies):
    _, folders = studies
    payloads = [read_shard(f) for f in folders]
    where = [str(f) for f in folders]
    other = copy.deepcopy(payloads)
    other[2].identity["config"]["masks"]["sparsity"] = 0.3
    with pytest.raises(ShardError, match=r"mbti-jp is not a shard of the study of .*: config\.masks\.sparsity: 0\.5 vs 0\.3"):
        check_shards(other, where)
    other = copy.deepcopy(payloads)
    other[1].identity["dtype"] = "bfloat16"
    with pytest.raises(ShardError, match="dtype: \"float32\" vs \"bfloat16\""):
        check_shards(other, where)
    with pytest.raises(ShardError, match="duplicate shards: mbti-ei"):
        check_shards([*payloads, payloads[1]], [*where, "copy"])
    with pytest.raises(ShardError, match=r"missing shards: mbti-jp \(--partial merges the shards there are\)$"):
        check_shards(payloads[:2], where[:2])
    with pytest.raises(ShardError, match=r"missing shards: cross \(--partial merges the shards there are\)$"):
        check_shards(payloads[1:], where[1:])
    other = copy.deepcopy(payloads)
    other[0].shard.sets[0]["items"] = "0" * 16
    with pytest.raises(ShardError, match="other contents of set mbti-ei.items"):
        check_shards(other, where)


def test_merge_cli(studies, tmp_path, capsys):
    from persona_circuits.cli import main

    _, folders = studies
    assert main(["merge", *map(str, folders[1:]), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["persona-circuits: error: missing shards: cross (--partial merges the shards there are)"]
    assert main(["merge", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "not a study shard" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_merging_twice_writes_the_same_files(studies, tmp_path):
    """Same shards, same files: the merge's time is the last shard's finishing time (not the clock's), and the
    report rewritten from results.json (a JSON round trip may reorder keys) equals the one the merge wrote."""
    from persona_circuits.reporting.report import write_report

    _, folders = studies
    for name in ("a", "b"):
        merge_shards(folders, tmp_path / name, command="merge")
    for f in ("results.json", "REPORT.md"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    meta = json.loads((tmp_path / "a" / "results.json").read_text())["meta"]
    assert meta["finished"] == max(read_shard(d).meta.finished for d in folders)
    write_report(tmp_path / "a" / "results.json", tmp_path / "again.md")
    assert (tmp_path / "again.md").read_text() == (tmp_path / "a" / "REPORT.md").read_text()


def test_partial_merge_names_what_is_missing(studies, tmp_path):
    from persona_circuits.cli import main

    tmp, folders = studies
    one = json.loads((tmp / "one" / "results.json").read_text())
    assert main(["merge", str(folders[1]), "--out", str(tmp_path / "p"), "--partial"]) == 0
    part = json.loads((tmp_path / "p" / "results.json").read_text())
    name = folders[1].name
    assert list(part["sets"]) == [name] and part["meta"]["missing_shards"] == [s for s in (*SETS, CROSS) if s != name]
    assert part["sets"][name]["conditions"] == one["sets"][name]["conditions"]
    assert "atlas" not in part or part["atlas"] is None
    assert "**Partial study**" in (tmp_path / "p" / "REPORT.md").read_text()
    assert "Partial study" not in (tmp / "one" / "REPORT.md").read_text()


def _shard_numbers(payload) -> dict:
    """A shard's payload without what the clock or the machine decides (meta, timings, LoRA fit seconds)."""
    d = json.loads(json.dumps(payload.to_dict()))
    return _no_wall_times({k: v for k, v in d.items() if k not in ("meta", "timings")})


class _Interrupted(Exception):
    pass


def test_checkpoint_resumes_an_interrupted_shard_elsewhere(studies, tiny_model_dir, tmp_path, monkeypatch):
    """A shard interrupted after some stages, resumed in a fresh work folder (another machine: nothing but the
    checkpoint survives), equals the shard computed in one go; the resumed run recomputes the calibration and
    the stages the first run had not finished, nothing else; the checkpoint holds no calibration statistics."""
    from persona_circuits.study import state
    from persona_circuits.study.config import StudyError

    tmp, folders = studies
    name = SETS[0]
    uninterrupted = read_shard(tmp / "shards" / name)
    model, cfg, ckpt = _load(tiny_model_dir), shard_config(), tmp_path / "ckpt" / name
    computed: list[str] = []
    real = state.StageCache.get_or_compute

    def counting(limit):
        def get_or_compute(self, stage_name, key, fn, *, store="json"):
            def compute():
                if limit is not None and len(computed) >= limit:
                    raise _Interrupted
                computed.append((stage_name, key))
                return fn()
            return real(self, stage_name, key, compute, store=store)
        return get_or_compute

    monkeypatch.setattr(state.StageCache, "get_or_compute", counting(12))
    with pytest.raises(_Interrupted):
        compute_shard(model, cfg=cfg, data_root=None, shard=name, work=tmp_path / "machine-a", progress=False, checkpoint=ckpt)
    first = list(computed)
    kept = sorted(p.name for p in ckpt.iterdir())
    assert "checkpoint.json" in kept and not any(k.startswith("calibration-") for k in kept)
    finished = {k for n, k in first if n != "calibration"}
    assert finished and {f"{n}-{k}" for n, k in first if n != "calibration"} == {k.rsplit(".", 1)[0] for k in kept} - {"checkpoint", "runs"}
    log1 = json.loads((ckpt / "runs.json").read_text())  # the run log: the interrupted run, the log complete
    assert log1["complete"] is True and len(log1["runs"]) == 1 and log1["runs"][0]["seconds"] > 0

    computed.clear()
    monkeypatch.setattr(state.StageCache, "get_or_compute", counting(None))
    resumed = compute_shard(model, cfg=cfg, data_root=None, shard=name, work=tmp_path / "machine-b", progress=False,
                            checkpoint=ckpt)
    assert _shard_numbers(resumed) == _shard_numbers(uninterrupted)
    assert not (tmp_path / "machine-b" / "cache" / "checkpoint.json").exists()  # the marker is not a stage result
    assert not (tmp_path / "machine-b" / "cache" / "runs.json").exists()  # nor is the run log
    # the shard's meta: both runs, their seconds together (this run's own time is the meta's seconds)
    m = resumed.meta
    assert (m.runs, m.runs_complete) == (2, True)
    assert m.seconds_all_runs == pytest.approx(log1["runs"][0]["seconds"] + m.seconds, abs=0.11)
    assert uninterrupted.meta.runs is None and uninterrupted.meta.seconds_all_runs is None  # no checkpoint, no log
    # the calibration is recomputed (not in the checkpoint); no stage the first run finished is computed again
    assert sorted(k for n, k in computed if n == "calibration") == sorted(k for n, k in first if n == "calibration")
    assert computed and not finished & {k for _, k in computed}

    # another study's shard (another seed) is refused, naming the difference; nothing is added to the folder
    before = sorted(p.name for p in ckpt.iterdir())
    with pytest.raises(StudyError, match=r"holds another shard's stage results \(config.seed: 0 vs 1\)"):
        compute_shard(model, cfg=replace(cfg, seed=1), data_root=None, shard=name, work=tmp_path / "machine-c",
                      progress=False, checkpoint=ckpt)
    assert sorted(p.name for p in ckpt.iterdir()) == before
    n, size = state.checkpoint_size(ckpt)
    assert n == len(before) - 2 and size == sum(p.stat().st_size for p in ckpt.iterdir()
                                                if p.name not in ("checkpoint.json", "runs.json"))
    (ckpt / ".matched-null-0123.json.x1y2.tmp").write_text("{")  # a write cut short by a killed process
    assert state.remove_checkpoint(ckpt) == len(before) - 2 and not ckpt.exists()


def test_shard_cli_checkpoint_flag(tmp_path, capsys):
    from persona_circuits.cli import main

    assert main(["reproduce", "--quick", "--sets", "mbti-ei", "--checkpoint", str(tmp_path / "c"),
                 "--out", str(tmp_path / "s")]) == 2
    assert "--checkpoint" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_a_shard_next_to_another_studys_shards_or_checkpoints_is_refused(studies, tmp_path):
    """The shards next to ``--out`` and the checkpoints next to ``--checkpoint`` are one study's: a shard of
    another study there (here another dtype) is refused, naming the difference; one of the same study passes."""
    import shutil

    from persona_circuits.cli.shard import check_siblings

    tmp, folders = studies
    ident = read_shard(folders[1]).identity
    shutil.copytree(folders[1], tmp_path / "shards" / "mbti-ei")
    check_siblings(tmp_path / "shards" / "mbti-jp", None, ident)  # same study
    check_siblings(tmp_path / "shards" / "mbti-ei", None, {**ident, "dtype": "bfloat16"})  # itself is not a sibling
    with pytest.raises(ShardError, match=r"shards/mbti-ei next to it holds a shard of another study \(dtype: \"float32\" vs \"bfloat16\"\)"):
        check_siblings(tmp_path / "shards" / "mbti-jp", None, {**ident, "dtype": "bfloat16"})
    (tmp_path / "ckpt" / "mbti-ei").mkdir(parents=True)
    (tmp_path / "ckpt" / "mbti-ei" / "checkpoint.json").write_text(json.dumps({"shard": "mbti-ei", **ident}))
    check_siblings(tmp_path / "elsewhere" / "mbti-jp", tmp_path / "ckpt" / "mbti-jp", ident)
    with pytest.raises(ShardError, match=r"ckpt/mbti-ei next to it holds a shard of another study \(config.seed: 0 vs 1\)"):
        check_siblings(tmp_path / "elsewhere" / "mbti-jp", tmp_path / "ckpt" / "mbti-jp",
                       {**ident, "config": {**ident["config"], "seed": 1}})


def test_shard_cli_refuses_before_computing_next_to_another_study(studies, tiny_model_dir, tmp_path, capsys):
    import shutil

    from persona_circuits.cli import main

    _, folders = studies
    shutil.copytree(folders[1], tmp_path / "shards" / "mbti-ei")  # the micro study's shard; the CLI runs the quick one
    assert main(["reproduce", "--quick", "--model", str(tiny_model_dir), "--dtype", "float32", "--sets", "mbti-ei,mbti-jp",
                 "--shard", "mbti-jp", "--out", str(tmp_path / "shards" / "mbti-jp"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "next to it holds a shard of another study (config." in errors[0]
    assert not (tmp_path / "shards" / "mbti-jp").exists()


def test_shard_cli_refuses_unknown_set_and_other_flags(tmp_path, capsys):
    from persona_circuits.cli import main

    assert main(["reproduce", "--quick", "--sets", "mbti-ei", "--shard", "mbti-jp", "--out", str(tmp_path / "s")]) == 2
    assert "not a set of this study" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--sets", "mbti-ei", "--shard", "mbti-ei", "--executor", "ray",
                 "--out", str(tmp_path / "s")]) == 2
    assert "takes no --executor" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_ray_executor_equals_the_sequential_study(studies, tiny_model_dir, tmp_path):
    """Equal number for number at the sequential run's torch thread count (at Ray's default of one thread per
    task the last digits differ, about 1e-8 relative: a CPU matmul's reduction order follows the count)."""
    pytest.importorskip("ray")
    import torch

    from persona_circuits.study.executors import run_ray

    tmp, _ = studies
    from persona_circuits import load_model

    run_ray(partial(load_model, str(tiny_model_dir), dtype="float32"), tmp_path / "ray", cfg=shard_config(), data_root=None, set_names=list(SETS),
            num_cpus=2, command="ray", threads=torch.get_num_threads())
    ray_res, one = _comparable(tmp_path / "ray" / "results.json"), _comparable(tmp / "one" / "results.json")
    assert ray_res == one, first_difference(ray_res, one)
    assert {p.name for p in (tmp_path / "ray" / "shards").iterdir()} == {*SETS, CROSS}


def test_dtype_auto_of_a_shard_is_its_studys(studies, tmp_path):
    """``--dtype auto`` for a shard: its own checkpoint's dtype first, else a sibling shard's or checkpoint's;
    nothing for a study's first shard."""
    import shutil

    from persona_circuits.cli.shard import study_dtype

    _, folders = studies
    ident = read_shard(folders[1]).identity
    assert ident["dtype"] == "float32"
    assert study_dtype(tmp_path / "shards" / "mbti-jp", tmp_path / "ckpt" / "mbti-jp") is None  # the first shard
    shutil.copytree(folders[1], tmp_path / "shards" / "mbti-ei")
    assert study_dtype(tmp_path / "shards" / "mbti-jp", None) == ("float32", tmp_path / "shards" / "mbti-ei")
    assert study_dtype(tmp_path / "shards" / "mbti-ei", None) is None  # itself is not a sibling
    own = tmp_path / "ckpt" / "mbti-jp"
    own.mkdir(parents=True)
    (own / "checkpoint.json").write_text(json.dumps({"shard": "mbti-jp", **ident, "dtype": "bfloat16"}))
    assert study_dtype(tmp_path / "shards" / "mbti-jp", own) == ("bfloat16", own)  # a resumed shard: its own first
    assert study_dtype(tmp_path / "elsewhere" / "mbti-sn", tmp_path / "ckpt" / "mbti-sn") == ("bfloat16", own)


def test_shard_cli_dtype_auto_joins_the_studys_dtype(studies, tiny_model_dir, tmp_path, capsys):
    """Next to a bfloat16 shard, ``--dtype auto`` loads the model in bfloat16 (on any CPU), says so, and the
    sibling check then compares like with like (here the settings differ: refused on them, not on the dtype)."""
    import shutil

    from persona_circuits.cli import main

    _, folders = studies
    sib = tmp_path / "shards" / "mbti-ei"
    shutil.copytree(folders[1], sib)
    d = json.loads((sib / "shard.json").read_text())
    d["identity"]["dtype"] = "bfloat16"
    (sib / "shard.json").write_text(json.dumps(d))
    assert main(["reproduce", "--quick", "--model", str(tiny_model_dir), "--sets", "mbti-ei,mbti-jp",
                 "--shard", "mbti-jp", "--out", str(tmp_path / "shards" / "mbti-jp"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--dtype auto: bfloat16, the dtype of this study's shards ({sib})" in err
    assert "dtype bfloat16 (--dtype bfloat16)" in err
    assert "next to it holds a shard of another study (config." in err and "dtype:" not in err.split("another study")[-1]
