"""analyses/model_compare.py: two models' matched rows side by side, only the rows both have."""

import json
import math


def _row(method, target, shift, kl, z, adj, swap="balanced"):
    return {"method": method, "target_kl": target, "reached": True, "shift": shift, "damage_kl": kl, "z": z,
            "persona_specific_adjusted": adj, "null_shifts": [0.1, -0.1], "null_swap": swap}


def _study(model, rows, calibration=None):
    return {"meta": {"model": model, "dtype": "bfloat16"}, "sets": {"s": {"headline": {"matched": rows}}},
            "calibration": calibration or {}}


def test_shared_rows_efficiency_and_verdicts(analysis_script, tmp_path, capsys):
    mc = analysis_script("model_compare")
    cal = {"steering": {"by_target": [{"false_positives": 1, "placebos": 20}, {"false_positives": 0, "placebos": 20}]}}
    a = _study("m1", [_row("steering", 0.02, 0.3, 0.04, 5.0, True), _row("soft-mask", 0.02, 0.1, 0.04, 1.0, False)], cal)
    b = _study("m2", [_row("steering", 0.02, 0.2, 0.01, 2.0, False), _row("gate-bias", 0.3, 0.5, 0.25, 3.0, True)])
    recs = mc.compare(a, b)
    assert [(r["set"], r["method"], r["target_kl"]) for r in recs] == [("s", "steering", 0.02)]  # only the shared row
    r = recs[0]
    assert math.isclose(r["eff_a"], 1.5) and math.isclose(r["eff_b"], 2.0)
    assert (r["verdict_a"], r["verdict_b"]) == ("yes", "no")
    assert mc.ranking(a, 0.02)["s"][0][0] == "steering"  # 1.5 > 0.5
    assert mc.placebo_rates(a) == {"steering": (1, 40)}
    fa, fb = tmp_path / "a.json", tmp_path / "b.json"
    fa.write_text(json.dumps(a))
    fb.write_text(json.dumps(b))
    assert mc.main(["--a", str(fa), "--b", str(fb)]) == 0
    out = capsys.readouterr().out
    assert "| s | steering | 0.02 | +0.300 | +0.200 |" in out and "Holm verdicts equal in 0 of 1 shared rows." in out
    assert "| steering | 1 of 40 | n/a |" in out


def test_refuses_disjoint_or_differently_nulled_studies(analysis_script, tmp_path, capsys):
    mc = analysis_script("model_compare")
    a = _study("m1", [_row("steering", 0.02, 0.3, 0.04, 5.0, True)])
    fa, fb = tmp_path / "a.json", tmp_path / "b.json"
    fa.write_text(json.dumps(a))
    fb.write_text(json.dumps(_study("m2", [_row("steering", 0.3, 0.3, 0.04, 5.0, True)])))
    assert mc.main(["--a", str(fa), "--b", str(fb)]) == 2
    assert capsys.readouterr().err.startswith("model_compare: the two studies share no")
    fb.write_text(json.dumps(_study("m2", [_row("steering", 0.02, 0.3, 0.04, 5.0, True, swap="coins")])))
    assert mc.main(["--a", str(fa), "--b", str(fb)]) == 2
    assert "null designs differ" in capsys.readouterr().err
