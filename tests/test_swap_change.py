"""analyses/swap_change.py: the before/after table of the null spreads reads the rows the two studies share."""

import json
import math


def _study(rows):
    return {"sets": {"s": {"headline": {"matched": rows}}}}


def test_spreads_before_and_after(analysis_script, tmp_path, capsys):
    sc = analysis_script("swap_change")
    before = _study([{"method": "steering", "target_kl": 0.02, "shift": 0.3, "null_shifts": [0.2, -0.2, 0.2, -0.2]},
                     {"method": "soft-mask", "target_kl": 0.3, "shift": 0.1, "null_shifts": [0.1, -0.1]}])
    after = _study([{"method": "steering", "target_kl": 0.02, "shift": 0.3, "null_shifts": [0.1, -0.1],
                     "null_swap": "balanced"}])
    recs = sc.compare(before, after)
    assert len(recs) == 1  # only the shared row
    r = recs[0]
    assert (r["swap_before"], r["swap_after"]) == ("coins", "balanced")
    assert math.isclose(r["ratio"], 0.5) and math.isclose(r["z_before"], 1.5) and math.isclose(r["z_after"], 3.0)
    b, a = tmp_path / "b.json", tmp_path / "a.json"
    b.write_text(json.dumps(before))
    a.write_text(json.dumps(after))
    assert sc.main(["--before", str(b), "--after", str(a)]) == 0
    assert "| s | steering | 0.02 | 0.200 | 0.100 | 0.50 |" in capsys.readouterr().out
    a.write_text(json.dumps(_study([])))
    assert sc.main(["--before", str(b), "--after", str(a)]) == 2
    assert capsys.readouterr().err.startswith("swap_change: the two studies share no")
