"""Small server-side SVG charts for the insight pages: no JavaScript, no CDN, readable without
colour (every mark has a text label or a <title> tooltip). Inputs are plain numbers; labels are
escaped here, so templates can mark the result safe."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (steps of 1, 2 or 5 times a power of ten) within [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def interval_plot(
    labels: Sequence[str],
    points: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    title: str,
    unit: str = "",
) -> str:
    """Horizontal confidence-interval plot: one row per label, a dot at the point estimate."""
    row_height, left, right, top = 26, 180, 30, 30
    width = 720
    height = top + row_height * len(labels) + 40
    if not labels:
        return ""
    low = min(lows)
    high = max(highs)
    pad = (high - low) * 0.05 or 1.0
    low, high = low - pad, high + pad
    ticks = nice_ticks(low, high)
    span = width - left - right

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart" {FONT}>',
        f"<title>{escape(title)}</title>",
    ]
    axis_y = top + row_height * len(labels) + 6
    for tick in ticks:
        if low <= tick <= high:
            parts.append(
                f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 10}" y2="{axis_y}" stroke="#e2e3df"/>'
                f'<text x="{x(tick):.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#5f6368">{tick:g}</text>'
            )
    for i, (label, point, lo, hi) in enumerate(zip(labels, points, lows, highs, strict=True)):
        y = top + row_height * i + row_height / 2
        tip = f"{label}: {point:.1f} {unit} ({lo:.1f} to {hi:.1f})"
        parts.append(
            f"<g><title>{escape(tip)}</title>"
            f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>'
            f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#2457c5" stroke-width="3"/>'
            f'<circle cx="{x(point):.1f}" cy="{y:.1f}" r="5" fill="#1d1f21"/></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def heat_colour(value: float) -> str:
    """Blue (0) through white (0.5) to orange (1)."""
    value = min(1.0, max(0.0, value))
    if value < 0.5:
        t = value / 0.5
        r, g, b = 36 + (255 - 36) * t, 87 + (255 - 87) * t, 197 + (255 - 197) * t
    else:
        t = (value - 0.5) / 0.5
        r, g, b = 255 - (255 - 214) * t, 255 - (255 - 110) * t, 255 - 255 * t
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def heatmap(labels: Sequence[str], matrix: Sequence[Sequence[float | None]], *, title: str) -> str:
    """Square matrix of shares (row over column) with the value written in each cell."""
    n = len(labels)
    if n == 0:
        return ""
    # Margins from the longest label (about 7 px a character at 12 px; 5 each way at 45 degrees),
    # and drawn at its own size: stretched to the page, four versions made cells 100 px wide.
    longest = max(len(label) for label in labels)
    cell, left, top = 54, 16 + 7 * longest, 16 + 5 * longest
    width = left + cell * n + max(10, 5 * longest - cell // 2)
    height = top + cell * n + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" class="chart" {FONT}>',
        f"<title>{escape(title)}</title>",
    ]
    for j, label in enumerate(labels):
        cx = left + cell * j + cell / 2
        parts.append(
            f'<text transform="translate({cx:.1f},{top - 8}) rotate(-45)">{escape(label)}</text>'
        )
    for i, row_label in enumerate(labels):
        y = top + cell * i
        parts.append(
            f'<text x="{left - 8}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{escape(row_label)}</text>'
        )
        for j, value in enumerate(matrix[i]):
            x = left + cell * j
            if value is None:
                fill, text = "#f0f0ee", "–"
            else:
                fill, text = heat_colour(value), f"{value:.2f}"
            tip = f"{row_label} vs {labels[j]}: {text}"
            parts.append(
                f'<g><title>{escape(tip)}</title><rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{fill}"/><text x="{x + cell / 2 - 1:.1f}" y="{y + cell / 2 + 4:.1f}" '
                f'text-anchor="middle">{text}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    low: float = 0.0,
    high: float = 1.0,
) -> str:
    """A line over evenly spaced periods (e.g. weeks); gaps where a value is None."""
    if not labels:
        return ""
    width, height, left, right, top, bottom = 720, 260, 50, 20, 20, 50
    span_x, span_y = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (span_x * i / (len(labels) - 1) if len(labels) > 1 else span_x / 2)

    def y(value: float) -> float:
        return top + span_y * (1 - (value - low) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart" {FONT}>',
        f"<title>{escape(title)}</title>",
    ]
    for tick in nice_ticks(low, high, 4):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e2e3df"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#5f6368">{tick:g}</text>'
        )
    step = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % step == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 18}" text-anchor="middle" fill="#5f6368">{escape(label)}</text>'
            )
    segment: list[str] = []
    for i, value in enumerate([*values, None]):
        if value is not None:
            segment.append(f"{x(i):.1f},{y(value):.1f}")
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" fill="#2457c5">'
                f"<title>{escape(labels[i])}: {value:.3f}</title></circle>"
            )
        elif segment:
            parts.append(
                f'<polyline points="{" ".join(segment)}" fill="none" stroke="#2457c5" stroke-width="2"/>'
            )
            segment = []
    parts.append("</svg>")
    return "".join(parts)
