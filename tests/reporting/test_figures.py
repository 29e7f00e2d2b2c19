"""Every figure drawn from the committed results (and the optional ones from version-2 results): returns a
Figure, text >= 8 pt at the saved size, a legend wherever markers need one, PNG/PDF/SVG written; the headline's
verdict markers agree with the matched-damage table."""

from __future__ import annotations

import copy

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from persona_circuits.reporting.figures import FIGURES, OPTIONAL, FigureDataMissing, draw, write_figure, write_figures
from persona_circuits.reporting.figures.style import METHOD_COLOR, small_fonts
from persona_circuits.results import load_results, upgrade

from ..results_fixtures import GEMMA, SMOLLM, raw, v2


@pytest.fixture(scope="module")
def smollm():
    return load_results(SMOLLM)


@pytest.fixture(scope="module")
def full_v2():
    return load_results(v2())


def _legends(fig: Figure) -> int:
    return len(fig.legends) + sum(ax.get_legend() is not None for ax in fig.axes)


@pytest.mark.parametrize("name", [n for n in FIGURES if n not in OPTIONAL])
def test_each_figure_draws_from_the_committed_results(name, smollm, tmp_path):
    fig = draw(smollm, name)
    try:
        assert isinstance(fig, Figure) and fig.axes
        assert small_fonts(fig) == []
        if name not in ("pole_contrast", "sweeps"):  # bars named on their axis; one series per panel
            assert _legends(fig) >= 1, name
    finally:
        plt.close(fig)
    paths = write_figure(smollm, name, tmp_path, ("png", "pdf", "svg"))
    assert [p.suffix for p in paths] == [".png", ".pdf", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("name", list(FIGURES))
def test_each_figure_draws_from_version_2_results(name, full_v2):
    fig = draw(full_v2, name)
    try:
        assert small_fonts(fig) == []
    finally:
        plt.close(fig)


def test_optional_figures_are_skipped_without_their_data(smollm, tmp_path, capsys):
    for name in OPTIONAL:
        with pytest.raises(FigureDataMissing):
            draw(smollm, name)
    paths = write_figures(smollm, tmp_path, only=[*OPTIONAL, "sweeps"])
    assert [p.name for p in paths] == ["sweeps.png"] and capsys.readouterr().err.count("skipped") == len(OPTIONAL)


def test_figures_skip_parts_an_older_study_lacks(tmp_path, capsys):
    d = upgrade(raw())
    for s in d["sets"].values():
        for key in ("probes", "similarity", "neutral_decoding", "headline"):
            s.pop(key)
    d["analysis"].pop("restore")
    paths = write_figures(d, tmp_path)
    skipped = {"headline", "effect_damage", "matched_damage", "probes", "similarity", "neutral_decoding", "ablation",
               *OPTIONAL}
    assert {p.stem for p in paths} == set(FIGURES) - skipped
    assert capsys.readouterr().err.count("skipped") == len(skipped)


def _verdict_markers(fig: Figure) -> tuple[int, int]:
    """(filled, hollow) round markers of the headline's matched rows."""
    filled = hollow = 0
    method_colors = {to_rgba(c) for c in METHOD_COLOR.values()}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_marker() == "o" and len(line.get_xdata()) == 1 and to_rgba(line.get_color()) in method_colors:
                if to_rgba(line.get_markerfacecolor()) == to_rgba("white"):
                    hollow += 1
                else:
                    filled += 1
    return filled, hollow


@pytest.mark.parametrize("source", ["v1", "v2", "gemma"])
def test_headline_verdicts_agree_with_the_table(source, smollm, full_v2):
    res = {"v1": smollm, "v2": full_v2}.get(source) or load_results(GEMMA)
    rows = [r for h in res.headlines().values() for r in h.reached()]
    fig = draw(res, "headline")
    try:
        assert _verdict_markers(fig) == (sum(bool(r.specific) for r in rows), sum(not r.specific for r in rows))
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert {"steering", "contrastive-wanda", "soft-mask", "null draws", "target damage", "target not reached"} <= set(labels)
        assert any(t.startswith("null band") for t in labels) and any(t.startswith("persona-specific") for t in labels)
    finally:
        plt.close(fig)
    d = copy.deepcopy(res.to_dict())  # every row persona-specific: every marker filled
    for s in d["sets"].values():
        for r in s["headline"]["matched"]:
            r["persona_specific"] = True
            r.pop("persona_specific_adjusted", None)
    fig = draw(d, "headline")
    try:
        assert _verdict_markers(fig) == (len(rows), 0)
    finally:
        plt.close(fig)


def test_gemma_figures_include_the_restore_panel(tmp_path):
    fig = draw(GEMMA, "ablation")
    try:
        assert len(fig.axes) == 2
    finally:
        plt.close(fig)
    fig = draw(SMOLLM, "ablation")  # restore not computed: its panel is left out, not drawn empty
    try:
        assert len(fig.axes) == 1 and "restore not computed" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
    assert {p.stem for p in write_figures(GEMMA, tmp_path)} == set(FIGURES) - set(OPTIONAL)


def test_saved_bytes_do_not_depend_on_the_time(smollm, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first = write_figure(smollm, "stability", a, ("png", "pdf", "svg"))
    second = write_figure(smollm, "stability", b, ("png", "pdf", "svg"))
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def _bands(fig: Figure) -> list[tuple[float, float]]:
    """(bottom, top) of every shaded null band of the headline."""
    from matplotlib.collections import PolyCollection

    out = []
    for ax in fig.axes:
        for c in ax.collections:
            if isinstance(c, PolyCollection) and c.get_paths():
                y = c.get_paths()[0].vertices[:, 1]
                out.append((round(float(y.min()), 9), round(float(y.max()), 9)))
    return out


def test_headline_band_is_the_test_each_row_used(full_v2):
    rows = [r for h in full_v2.headlines().values() for r in h.reached()]
    want = sorted((round(min(0.0, r.null_threshold), 9), round(max(0.0, r.null_threshold), 9)) for r in rows)
    fig = draw(full_v2, "headline")
    try:
        assert sorted(_bands(fig)) == want  # zero-centred: from 0 to the bound
        labels = [x.get_text() for x in fig.legends[0].get_texts()]
        assert "null band: 0 to zero-centred 95 % bound" in labels and "label-swapped" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
    d = copy.deepcopy(full_v2.to_dict())
    for s in d["sets"].values():
        for r in s["headline"]["matched"]:
            if r["reached"]:
                r["null_center"] = "estimated"
    fig = draw(d, "headline")
    try:
        assert sorted(_bands(fig)) == sorted((round(min(r.null_shift_mean, r.null_threshold), 9),
                                              round(max(r.null_shift_mean, r.null_threshold), 9)) for r in rows)
        assert "null band: mean to 95 % bound" in [x.get_text() for x in fig.legends[0].get_texts()]
    finally:
        plt.close(fig)


def test_matched_damage_legend_names_each_null(full_v2, smollm):
    fig = draw(full_v2, "matched_damage")
    try:
        labels = [x.get_text() for ax in fig.axes if ax.get_legend() for x in ax.get_legend().get_texts()]
        assert "label-swapped null: one-sided 95 % bound, zero centre (the bar's items)" in labels
        assert "steering: random-direction bound (beside)" in labels
        assert any("outside" in x.get_text() for ax in fig.axes for x in ax.get_xticklabels())
    finally:
        plt.close(fig)
    fig = draw(smollm, "matched_damage")  # version 1: no damage-matched null, no random directions named
    try:
        labels = [x.get_text() for ax in fig.axes if ax.get_legend() for x in ax.get_legend().get_texts()]
        assert "null: one-sided 95 % bound (the bar's items)" in labels and not any("random" in x for x in labels)
    finally:
        plt.close(fig)


def _marks(fig: Figure, mark: str) -> int:
    return sum(t.get_text().endswith(mark) for ax in fig.axes for t in ax.texts)


def test_types_and_atlas_figures_mark_the_holm_verdicts(full_v2):
    fig = draw(full_v2, "types")
    try:
        holm = sum(bool(t.verdict(r, c)) for t in full_v2.types for r in t.rows for c in r.contrasts)
        assert len(fig.axes) == len(full_v2.types) + 1 and _marks(fig, "*") == holm > 0  # + the colour bar
    finally:
        plt.close(fig)
    fig = draw(full_v2, "atlas")
    try:
        shared = sum(bool(p.shared) for p in full_v2.atlas.pairs)
        assert _marks(fig, "*") == 2 * 2 * shared  # both halves of the symmetric matrix, in both panels
    finally:
        plt.close(fig)
    fig = draw(full_v2, "atlas_steering")
    try:
        assert _marks(fig, "*") == sum(len(p.steering_shared_layers) for p in full_v2.atlas.pairs)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("name", list(FIGURES))
def test_each_figure_draws_rows_without_a_test(name):
    from .test_report import untested_v2

    fig = draw(untested_v2(), name)
    plt.close(fig)


def test_the_headline_figure_leads_with_the_primary_family(full_v2, smollm):
    from persona_circuits.reporting.figures.headline import primary_line

    line = primary_line(full_v2)
    per = {t.method for t in full_v2.primary}
    assert line.startswith("\nPrimary family") and all(f"{m} persona-specific at" in line for m in per)
    n_yes = sum(t.persona_specific for t in full_v2.primary if t.method == "steering")
    assert f"steering persona-specific at {n_yes} of " in line
    assert primary_line(smollm) == ""  # results without a primary family: the title is unchanged
    fig = draw(full_v2, "headline")
    try:
        assert "Primary family" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
