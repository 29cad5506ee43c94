"""Server-side SVG line charts for training curves (loss, reward, KL, accuracy per step).

Pure functions over plain lists: no ORM, no JavaScript. Pages stay readable without scripts and
the Content-Security-Policy (no inline styles) holds, because the SVG uses presentation
attributes only. Colours are the Okabe-Ito palette and every line also has its own dash pattern,
so series stay apart for colour-blind readers and in greyscale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")

# Which metric keys (the engine's names, see training/engine/__init__.py) share a chart.
CHART_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Loss", ("loss", "policy_loss", "value_loss")),
    (
        "Reward",
        ("reward_mean", "penalized_reward_mean", "chosen_reward", "rejected_reward", "margin"),
    ),
    ("KL", ("kl", "approx_kl")),
    ("Accuracy", ("accuracy", "eval_accuracy")),
)


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    series: tuple[Series, ...]


def is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def series_from_history(history: Sequence[dict], key: str, x_key: str = "step") -> Series:
    """(step, value) points of one metric; reports without it, or with None/NaN/inf, are skipped.

    A report without a step is placed at its position in the history (1-based).
    """
    points = []
    for index, report in enumerate(history, start=1):
        if not isinstance(report, dict) or not is_number(report.get(key)):
            continue
        x = report.get(x_key)
        points.append((float(x) if is_number(x) else float(index), float(report[key])))
    return Series(key, tuple(points))


def thin(points: Sequence[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    """At most `max_points` evenly spaced points, first and last kept: a long run's curve keeps its
    shape at a fraction of the markup (a 440-pixel-wide chart cannot show more anyway)."""
    if max_points < 2:
        raise ValueError("keep at least 2 points")
    n = len(points)
    if n <= max_points:
        return list(points)
    indices = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [points[i] for i in indices]


def nice_step(span: float, count: int) -> float:
    """A 1, 2, 2.5 or 5 times a power of ten that cuts `span` into about `count` parts."""
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def nice_ticks(low: float, high: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """Round tick values covering [low, high] (Heckbert 1990, "Nice numbers for graph labels").
    `whole` keeps the step a whole number, for axes that count steps."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick bounds must be finite")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    step = nice_step(high - low, count)
    if whole:
        step = max(1.0, float(math.ceil(step)))
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    n = int(round((last - first) / step))
    # Rounding to the step's decimals removes float noise such as 0.30000000000000004.
    decimals = max(0, -math.floor(math.log10(step)) + 1)
    return [round(first + i * step, decimals) for i in range(n + 1)]


def format_number(value: float, step: float | None = None) -> str:
    """Compact label: as many decimals as the tick step needs, scientific for tiny or huge values."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.2g}"
    if step is not None and step > 0:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        if step * 10**decimals % 1 > 1e-9:  # e.g. 2.5, 0.25
            decimals += 1
        return f"{value:.{decimals}f}"
    return f"{value:.4g}"


def pretty_label(key: str) -> str:
    """A metric key as people read it: "penalized_reward_mean" -> "penalized reward mean"."""
    return key.replace("_", " ")


def describe(series: Sequence[Series]) -> str:
    """A sentence for screen readers: each line's first and last value and its step range."""
    parts = []
    for line in series:
        if not line.points:
            continue
        (x0, y0), (x1, y1) = line.points[0], line.points[-1]
        parts.append(
            f"{pretty_label(line.label)} from {format_number(y0)} at step {format_number(x0)} "
            f"to {format_number(y1)} at step {format_number(x1)}"
        )
    return "; ".join(parts) + "." if parts else "No data."


def line_chart_svg(
    title: str,
    series: Sequence[Series],
    *,
    width: int = 440,
    height: int = 220,
    x_label: str = "step",
    chart_id: str = "chart",
    max_points: int = 400,
) -> str:
    """An accessible SVG line chart (role="img" with a title and a text description).

    Axes span every point; each line draws at most `max_points` of them (see `thin`).
    """
    drawn = [line for line in series if line.points]
    margin_left, margin_right, margin_top, margin_bottom = 52, 12, 30, 34
    legend_height = 18 if len(drawn) > 1 else 0
    plot_w = width - margin_left - margin_right
    plot_h = height - margin_top - margin_bottom - legend_height
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="{title_id} {desc_id}">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(describe(drawn))}</desc>',
        f'<text x="{margin_left}" y="18" class="chart-title" font-size="13" font-weight="600" '
        f'fill="#1d1f21">{escape(title)}</text>',
    ]
    if not drawn:
        out.append(
            f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" font-size="12" '
            'fill="#5f6368">No data yet</text></svg>'
        )
        return "".join(out)

    xs = [x for line in drawn for x, _ in line.points]
    ys = [y for line in drawn for _, y in line.points]
    x_ticks = nice_ticks(min(xs), max(xs), 5, whole=True)
    y_ticks = nice_ticks(min(ys), max(ys), 4)
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else None
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else None

    def sx(x: float) -> float:
        return margin_left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return margin_top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h

    bottom = margin_top + plot_h
    out.append('<g class="chart-grid" stroke="#e3e4e0" stroke-width="1">')
    for y in y_ticks:
        out.append(
            f'<line x1="{margin_left}" x2="{margin_left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
        )
    out.append("</g>")
    out.append('<g class="chart-axis" font-size="11" fill="#5f6368">')
    for y in y_ticks:
        out.append(
            f'<text x="{margin_left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">'
            f"{escape(format_number(y, y_step))}</text>"
        )
    for x in x_ticks:
        out.append(
            f'<text x="{sx(x):.1f}" y="{bottom + 15}" text-anchor="middle">'
            f"{escape(format_number(x, x_step))}</text>"
        )
    out.append(
        f'<text x="{margin_left + plot_w}" y="{bottom + 29}" text-anchor="end">{escape(x_label)}</text>'
    )
    out.append("</g>")
    out.append(
        f'<line x1="{margin_left}" x2="{margin_left + plot_w}" y1="{bottom}" y2="{bottom}" '
        'stroke="#9aa0a6" stroke-width="1"/>'
    )
    for index, line in enumerate(drawn):
        colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in thin(line.points, max_points))
        if len(line.points) == 1:
            x, y = line.points[0]
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        else:
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2" '
                f'stroke-linejoin="round" stroke-linecap="round"{dash_attr}>'
                f"<title>{escape(pretty_label(line.label))}</title></polyline>"
            )
    if legend_height:
        out.append(
            f'<g class="chart-legend" font-size="11" fill="#1d1f21" transform="translate({margin_left},{height - 8})">'
        )
        offset = 0
        for index, line in enumerate(drawn):
            colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<line x1="{offset}" x2="{offset + 18}" y1="-4" y2="-4" stroke="{colour}" '
                f'stroke-width="2"{dash_attr}/>'
                f'<text x="{offset + 22}" y="0">{escape(pretty_label(line.label))}</text>'
            )
            offset += 30 + 7 * len(line.label)
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def training_charts(
    history: Sequence[dict],
    *,
    groups: Iterable[tuple[str, tuple[str, ...]]] = CHART_GROUPS,
    chart_id: str = "chart",
) -> list[Chart]:
    """One chart per metric group that has data in `history` (groups without data are left out)."""
    charts = []
    for index, (title, keys) in enumerate(groups):
        series = [series_from_history(history, key) for key in keys]
        series = tuple(line for line in series if line.points)
        if not series:
            continue
        svg = line_chart_svg(title, series, chart_id=f"{chart_id}-{index}")
        charts.append(Chart(title, svg, series))
    return charts
