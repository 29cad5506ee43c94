"""training.charts: metric series, tick choice and the SVG they make, on hand-made histories."""

import math
import xml.etree.ElementTree as ET

import pytest

from training.charts import (
    Series,
    format_number,
    line_chart_svg,
    nice_ticks,
    series_from_history,
    thin,
    training_charts,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def polyline_points(element: ET.Element) -> list[list[tuple[float, float]]]:
    return [
        [tuple(float(v) for v in pair.split(",")) for pair in line.get("points").split()]
        for line in element.iter(f"{SVG}polyline")
    ]


def test_series_skip_reports_without_a_finite_value_and_fall_back_to_the_position():
    history = [
        {"step": 1, "loss": 0.9},
        {"step": 2, "loss": None},
        {"step": 3, "loss": float("nan")},
        {"step": 4, "accuracy": 0.5},
        {"loss": 0.4},  # no step: its 1-based position, 5
        {"step": 6, "loss": float("inf")},
        {"step": 7, "loss": True},  # a flag, not a measurement
        {"step": 8, "loss": 0.25},
    ]
    assert series_from_history(history, "loss").points == ((1.0, 0.9), (5.0, 0.4), (8.0, 0.25))
    assert series_from_history(history, "kl").points == ()


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (3.0, 97.0, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]),
        (0.31, 0.69, [0.3, 0.4, 0.5, 0.6, 0.7]),
        (-1.2, 0.3, [-1.5, -1.0, -0.5, 0.0, 0.5]),
        (1.0, 120.0, [0.0, 25.0, 50.0, 75.0, 100.0, 125.0]),
    ],
)
def test_ticks_are_round_numbers_covering_the_range(low, high, expected):
    assert nice_ticks(low, high, 5) == pytest.approx(expected)


def test_a_constant_series_still_gets_a_range_around_its_value():
    ticks = nice_ticks(2.0, 2.0, 4)
    assert ticks[0] < 2.0 < ticks[-1]
    assert nice_ticks(0.0, 0.0, 4)[0] < 0.0 < nice_ticks(0.0, 0.0, 4)[-1]


def test_tick_labels_carry_the_decimals_of_their_step():
    assert format_number(0.25, 0.25) == "0.25"
    assert format_number(0.5, 0.25) == "0.50"
    assert format_number(40.0, 20.0) == "40"
    assert format_number(7.5, 2.5) == "7.5"
    assert format_number(0.00002) == "2e-05"
    assert format_number(0.0) == "0"


def test_chart_is_valid_svg_with_an_accessible_name_and_one_line_per_series():
    loss = Series("loss", ((0.0, 1.0), (10.0, 0.5), (20.0, 0.0)))
    value = Series("value_loss", ((0.0, 0.2), (20.0, 0.6)))
    root = parse(line_chart_svg("Loss", [loss, value], width=440, height=220, chart_id="c"))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c-title c-desc"
    assert root.find(f"{SVG}title").text == "Loss"
    desc = root.find(f"{SVG}desc").text
    assert "loss from 1 at step 0 to 0 at step 20" in desc
    lines = polyline_points(root)
    assert len(lines) == 2
    # Ticks are 0..20 on x and 0..1 on y, so the first loss point sits at the plot's left edge
    # (margin 52) at the top (margin 30) and the last at the right edge (440 - 12) at the bottom
    # (220 - 34 bottom margin - 18 legend).
    assert lines[0][0] == (52.0, 30.0)
    assert lines[0][-1] == (428.0, 168.0)
    assert lines[0][1] == (240.0, 99.0)
    # A legend names both series when there are several.
    legend = [t.text for t in root.iter(f"{SVG}text") if t.text in ("loss", "value loss")]
    assert legend == ["loss", "value loss"]  # keys read as words


def test_points_stay_inside_the_viewbox_for_awkward_values():
    series = Series("kl", ((3.0, -0.013), (4.0, 7.9), (1000.0, 1e-4)))
    root = parse(line_chart_svg("KL", [series], width=300, height=200))
    for x, y in polyline_points(root)[0]:
        assert 0 <= x <= 300 and 0 <= y <= 200


def test_one_point_is_drawn_as_a_dot_and_no_points_as_a_note():
    dot = parse(line_chart_svg("Accuracy", [Series("accuracy", ((5.0, 0.75),))]))
    assert len(list(dot.iter(f"{SVG}circle"))) == 1
    assert not list(dot.iter(f"{SVG}polyline"))
    empty = parse(line_chart_svg("Reward", [Series("reward_mean", ())]))
    assert "No data yet" in [t.text for t in empty.iter(f"{SVG}text")]
    assert empty.find(f"{SVG}desc").text == "No data."


def test_thinning_keeps_the_ends_and_spaces_the_rest_evenly():
    points = [(float(i), float(i * i)) for i in range(11)]
    assert thin(points, 20) == points
    assert thin(points, 3) == [(0.0, 0.0), (5.0, 25.0), (10.0, 100.0)]
    assert [x for x, _ in thin(points, 6)] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    with pytest.raises(ValueError):
        thin(points, 1)


def test_a_long_run_draws_a_bounded_line_on_axes_that_span_every_point():
    series = Series("loss", tuple((float(s), 1.0 / s) for s in range(1, 10_001)))
    root = parse(line_chart_svg("Loss", [series], width=440, height=220, max_points=100))
    (line,) = polyline_points(root)
    assert len(line) == 100
    assert line[0] == (52.0, 30.0)  # step 1 at the top left: y ticks run 0..1, x ticks 0..10000
    assert line[-1][0] == 428.0


def test_labels_are_escaped():
    svg = line_chart_svg('<b>"R&D"</b>', [Series("a<b", ((0.0, 1.0), (1.0, 2.0)))])
    root = parse(svg)  # would raise on unescaped markup
    assert root.find(f"{SVG}title").text == '<b>"R&D"</b>'
    assert "<b>" not in svg


def test_training_charts_group_the_engines_metrics_and_leave_out_empty_groups():
    history = [
        {"step": 1, "loss": 0.69, "accuracy": 0.5, "margin": 0.0, "learning_rate": 1e-4},
        {"step": 2, "loss": 0.60, "accuracy": 0.75, "margin": 0.3, "learning_rate": 1e-4},
    ]
    charts = training_charts(history, chart_id="job-7")
    assert [c.title for c in charts] == ["Loss", "Reward", "Accuracy"]
    assert [s.label for s in charts[1].series] == ["margin"]
    ids = [parse(c.svg).find(f"{SVG}title").get("id") for c in charts]
    assert len(set(ids)) == 3  # unique ids, several charts share one page
    ppo = [
        {"step": s, "kl": 0.01 * s, "approx_kl": 0.002 * s, "reward_mean": math.sin(s)}
        for s in range(1, 5)
    ]
    assert [c.title for c in training_charts(ppo)] == ["Reward", "KL"]
    assert training_charts([]) == []


def test_step_axis_ticks_are_whole_numbers():
    from training.charts import nice_ticks

    assert nice_ticks(1, 2, 5, whole=True) == [1.0, 2.0]
    assert all(float(t).is_integer() for t in nice_ticks(0, 7, 5, whole=True))
