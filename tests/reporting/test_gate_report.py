import copy
import math

import pytest

from persona_circuits.reporting.report import build_report
from persona_circuits.reporting.report.gate import difference, efficiency, gate_section, pooled
from persona_circuits.results import MatchedRow, load_results

from ..results_fixtures import SMOLLM, v2


@pytest.fixture(scope="module")
def raw_v2():
    return v2()


def _row(shift, ci, kl):
    return MatchedRow(method="projection-gate", target_kl=0.02, reached=True, damage_kl=kl, shift=shift, shift_ci95=ci)


def test_efficiency_pooled_and_difference_by_hand():
    e = efficiency(_row(0.4, [0.3, 0.5], 0.04))
    assert e[0] == pytest.approx(2.0) and e[1] == pytest.approx((1.5, 2.5))
    assert efficiency(MatchedRow(method="steering", target_kl=0.02, reached=False)) is None
    se = 0.5 / 1.959963984540054
    p = pooled([e, (4.0, (3.5, 4.5))])
    assert p[0] == pytest.approx(3.0) and p[1][1] - p[0] == pytest.approx(1.959963984540054 * math.sqrt(2 * se ** 2) / 2)
    d = difference((4.0, (3.5, 4.5)), e)
    assert d[0] == pytest.approx(2.0) and d[1][0] == pytest.approx(2.0 - 1.959963984540054 * math.sqrt(2) * se)


def test_section_is_absent_without_the_gate():
    assert gate_section(load_results(SMOLLM)) == []


def test_section_counts_follow_the_numbers(raw_v2):
    lines = gate_section(load_results(raw_v2))
    text = "\n".join(lines)
    assert "### Projection gate against steering at equal damage" in text
    assert "At KL 0.3, the gate's efficiency against one-layer steering: higher on 7 set(s)" in text
    d = copy.deepcopy(raw_v2)  # make the gate weaker than steering on mbti-ei at 0.3
    for r in d["sets"]["mbti-ei"]["headline"]["matched"]:
        if r["method"] == "projection-gate" and r["target_kl"] == 0.3:
            r["shift"], r["shift_ci95"] = 0.1, [0.05, 0.15]
        if r["method"] == "gate-bias" and r["target_kl"] == 0.3:
            r["shift"], r["shift_ci95"] = 2.0, [1.9, 2.1]
    text = "\n".join(gate_section(load_results(d)))
    assert "At KL 0.3, the gate's efficiency against one-layer steering: higher on 6 set(s)" in text
    assert "lower on 1 set(s) (mbti-ei)" in text
    assert "beats its own mean push (a bias per writer) on 6 of 7 set(s); on mbti-ei the mean push does as well" in text
    assert "across personas: 3 of 3".lower() in text.lower()
    assert "### Projection gate" in build_report(load_results(d))
