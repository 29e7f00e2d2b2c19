"""The benchmark scripts still run (tiny sizes, no assertions on timings)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: with another process on the cores, OpenMP threads wait on each other and a
    smoke test of tiny sizes would take minutes; restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ok(res):
    assert res.rows and res.checks
    for r in res.rows:
        assert r.value == r.value  # not NaN


@pytest.mark.slow
def test_recording_and_released(real_model):
    import bench_recording
    import bench_released_stats

    _ok(bench_recording.run(quick=True, repeats=1, model=real_model, n_texts=2))
    _ok(bench_released_stats.run(quick=True, repeats=1, model=real_model, n_texts=2))


@pytest.mark.slow
def test_masks_switch_storage(real_model):
    import bench_masks
    import bench_storage
    import bench_switch

    _ok(bench_masks.run(quick=True, repeats=1, model=real_model, calib_size=2))
    _ok(bench_switch.run(quick=True, repeats=1, model=real_model, reload=False))
    _ok(bench_storage.run(quick=True, repeats=1, model=real_model, memory=False))


@pytest.mark.slow
def test_choices_inference_scaling(real_model):
    import bench_choices
    import bench_inference
    import bench_scaling

    _ok(bench_choices.run(quick=True, repeats=1, model=real_model, n_items=1))
    _ok(bench_inference.run(quick=True, repeats=1, model=real_model, n_items=1))
    res = bench_scaling.run(quick=True, repeats=1, model=real_model, models=(), calib_sizes=(2,))
    assert res.tables


def test_markdown_render():
    import argparse

    import run_all
    from _common import Result, machine

    r = Result("x", "X", "cmd", timings={"a": [0.1, 0.2, 0.3]}, runs=3)
    r.add("speed-up", 3.0, "x", 5, ">=")
    r.misses.append("because")
    md = run_all.render([r], machine(), argparse.Namespace(quick=True, threads=None), "now", 1.0, 0.0)
    assert "| X | speed-up: **3.00 x** | >= 5 x | **no** |" in md and "because" in md


@pytest.mark.slow
def test_throughput_benchmarks(real_model):
    """Issue 9's benchmarks (scoring paths, bfloat16, pole switch, model load) run at tiny sizes."""
    import bench_bf16_recording
    import bench_model_load
    import bench_pole_switch
    import bench_scoring_paths

    _ok(bench_scoring_paths.run(quick=True, repeats=1, model=real_model, n_items=2, calib_size=2))
    _ok(bench_bf16_recording.run(quick=True, repeats=1, model=real_model, calib_size=2))
    _ok(bench_pole_switch.run(quick=True, repeats=1, model=real_model, calib_size=2))
    _ok(bench_model_load.run(quick=True, repeats=1))


@pytest.mark.slow
def test_cli_benchmark():
    """Issue 16's whole-process CLI benchmark runs (one timed run of each process)."""
    import bench_cli

    res = bench_cli.run(quick=True, repeats=1)
    _ok(res)
    assert res.tables and any(r.metric.startswith("--help") for r in res.rows)


def test_study_stage_table_and_floor_from_a_results_file():
    """The study benchmark's stage table sums a run's own stage times over sets; its floor counts the null
    draws' scorings of every item (both poles, label-swapped and random-direction draws)."""
    import bench_study

    res = {"meta": {"seconds": 100.0},
           "timings": {"a: calibration": 10.0, "b: calibration": 5.0, "a: steering matched-damage nulls": 40.0},
           "sets": {"a": {"family": "mbti", "headline": {"matched": [
               {"reached": True, "n": 80, "null_items": 80, "null_draws": 10, "random_direction_null": {"null_draws": 4}},
               {"reached": False}, {"reached": True, "n": 80, "null_items": 12, "null_draws": 2}]}}}}
    table, sums = bench_study.stage_table(res)
    assert sums == {"calibration": 15.0, "steering matched-damage nulls": 40.0}
    assert table.splitlines()[2].startswith("| steering matched-damage nulls | 40 | 40.0 %")
    assert bench_study.null_scorings(res) == {"mbti": 28}  # v1 rows (nulls on fewer items) are not counted


def test_study_design_floor_scales_each_familys_largest_full_size_set():
    """The seven-set floor: every set of a family needs what that family's full-size sets needed (the most
    seen over the runs given); a family never run at full size gives no floor."""
    import bench_study

    def row(draws, rnd=0, items=80):
        return {"reached": True, "n": items, "null_items": items, "null_draws": draws,
                **({"random_direction_null": {"null_draws": rnd}} if rnd else {})}

    mbti = {"sets": {"a": {"family": "mbti", "headline": {"matched": [row(10, 4), row(10)]}},
                     "b": {"family": "mbti", "headline": {"matched": [row(10)]}}}}
    ai = {"sets": {"power": {"family": "ai", "headline": {"matched": [row(10, 4, 200), row(10, 0, 200)]}}}}
    assert bench_study.design_scorings([mbti, ai], {"mbti": 4, "ai": 3}) == {"mbti": 4 * 48, "ai": 3 * 48}
    assert bench_study.design_scorings([mbti], {"mbti": 4, "ai": 3}) is None


@pytest.mark.slow
def test_kl_rows_benchmark(real_model):
    import bench_kl_rows

    res = bench_kl_rows.run(quick=True, repeats=1, model=real_model, models=(None,), n_texts=2, n_items=3)
    _ok(res)
    assert len(res.checks) == 2 and all(c.endswith(": True") for c in res.checks), res.checks  # identical sums


@pytest.mark.slow
def test_bf16_upcast_benchmark(real_model):
    import bench_bf16_upcast

    res = bench_bf16_upcast.run(quick=True, repeats=1, model=real_model, models=(None,), n_texts=2)
    _ok(res)
    assert all(c.endswith(": True") for c in res.checks), res.checks  # the float32-product path is deterministic
    kern = next(r.value for r in res.rows if "products in float32 vs bfloat16 kernels" in r.metric)
    assert kern < 0.05  # the same arithmetic: a rounding difference, not another computation


@pytest.mark.slow
def test_malloc_benchmark():
    import bench_malloc

    res = bench_malloc.run(quick=True, repeats=1, models=(("smollm2-135m-instruct", "float32"),), n_texts=2, n_items=2)
    _ok(res)
    assert len(res.checks) == 1 and "bit for bit in all 2 processes: True" in res.checks[0], res.checks
