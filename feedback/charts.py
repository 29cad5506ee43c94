"""Small server-side SVG charts for the insight pages: no JavaScript, no CDN, readable without
colour (every mark has a text label or a <title> tooltip). Inputs are plain numbers; labels are
escaped here, so templates can mark the result safe."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from html import escape

FONT = 'font-family="system-ui, sans-serif" font-size="12"'
# The server cannot measure text, so margins come from advance widths at 12 px that are at or a
# little above those of common sans-serif faces (DejaVu Sans, Helvetica, Segoe UI).
NARROW, WIDE = frozenset("fijlrtI.,:;'|!()[]/- "), frozenset("mwMW@%")
LONGEST_LABEL = 260  # px; longer labels (hub ids with suffixes) are cut, whole in the tooltip


def char_width(c: str) -> float:
    if c in NARROW:
        return 5.0
    if c in WIDE or unicodedata.east_asian_width(c) in "WF":  # CJK and full-width: one em
        return 12.0
    return 9.0 if c.isupper() else 7.7


def text_width(text: str) -> float:
    """Estimated width in px of `text` at the charts' font size."""
    return sum(map(char_width, text))


def fit_label(text: str, room: float = LONGEST_LABEL) -> str:
    """`text`, cut with an ellipsis to fit `room` px."""
    if text_width(text) <= room:
        return text
    while text and text_width(text + "…") > room:
        text = text[:-1]
    return text + "…"


def axis_label(text: str, **attributes: str) -> str:
    """A <text> of a label cut to fit, with the whole label as its tooltip."""
    attrs = " ".join(f'{name.replace("_", "-")}="{value}"' for name, value in attributes.items())
    return f"<text {attrs}><title>{escape(text)}</title>{escape(fit_label(text))}</text>"


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
    breaks: Sequence[int] = (),
) -> str:
    """Horizontal confidence-interval plot: one row per label, a dot at the point estimate; a
    dashed rule above each row in `breaks` (where a group of rows not comparable to the ones
    above starts)."""
    if not labels:
        return ""
    longest = max(text_width(fit_label(label)) for label in labels)
    row_height, left, right, top = 26, max(80, round(longest) + 20), 30, 30
    # Drawn scaled to the card: a fixed width keeps the text the same size whatever the labels.
    width = max(720, left + 460)
    height = top + row_height * len(labels) + 40
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
    for i in breaks:
        parts.append(
            f'<line x1="10" x2="{width - 10}" y1="{top + row_height * i}" '
            f'y2="{top + row_height * i}" stroke="#80868b" stroke-dasharray="6 4"/>'
        )
    for i, (label, point, lo, hi) in enumerate(zip(labels, points, lows, highs, strict=True)):
        y = top + row_height * i + row_height / 2
        tip = f"{label}: {point:.1f} {unit} ({lo:.1f} to {hi:.1f})"
        parts.append(
            # The group's tooltip names the version in full where the label is cut.
            f"<g><title>{escape(tip)}</title>"
            f'<text x="{left - 10}" y="{y + 4:.1f}" text-anchor="end">{escape(fit_label(label))}</text>'
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
    # Margins from the longest label (its width, or 0.71 of it each way at 45 degrees), and drawn
    # at its own size: stretched to the page, four versions made cells 100 px wide.
    longest = max(text_width(fit_label(label)) for label in labels)
    cell, left, top = 54, round(16 + longest), round(20 + 0.71 * longest)
    width = left + cell * n + max(10, round(0.71 * longest) - cell // 2 + 8)
    height = top + cell * n + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" class="chart" {FONT}>',
        f"<title>{escape(title)}</title>",
    ]
    for j, label in enumerate(labels):
        cx = left + cell * j + cell / 2
        parts.append(axis_label(label, transform=f"translate({cx:.1f},{top - 8}) rotate(-45)"))
    for i, row_label in enumerate(labels):
        y = top + cell * i
        parts.append(
            axis_label(row_label, x=f"{left - 8}", y=f"{y + cell / 2 + 4:.1f}", text_anchor="end")
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
