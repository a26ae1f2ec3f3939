"""Bar charts as plain geometry for an inline SVG the template draws: no JavaScript, no library.

`bar_chart` turns one value per day into bars, a y scale with round gridlines, and a few date
labels; the template only places what it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

WIDTH = 640
HEIGHT = 170
LEFT = 44  # room for the y labels
BOTTOM = 22  # room for the date labels
TOP = 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    value: int


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    text: str
    anchor: str = "middle"  # SVG text-anchor; the last one ends at the plot's right edge


@dataclass
class BarChart:
    key: str  # CSS class of the series
    title: str
    total: int
    peak: int
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    labels: list[DayLabel] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    plot_right: int = WIDTH - 4
    baseline: float = HEIGHT - BOTTOM


def nice_step(peak: int, lines: int = 4) -> int:
    """A round gridline step (1, 2 or 5 times a power of ten) giving about `lines` lines."""
    if peak <= lines:
        return 1
    raw = peak / lines
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return int(factor * power)
    return int(10 * power)


def short_number(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return f"{value:,}"


def bar_chart(key: str, title: str, days: list[date], values: list[int]) -> BarChart:
    """One bar per day, scaled to the largest value rounded up to a gridline."""
    peak = max(values, default=0)
    step = nice_step(peak)
    top_value = max(step * math.ceil(peak / step), step)
    chart = BarChart(key=key, title=title, total=sum(values), peak=peak)
    plot_height = chart.baseline - TOP
    slot = (chart.plot_right - LEFT) / max(len(days), 1)
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        height = plot_height * value / top_value
        chart.bars.append(
            Bar(
                x=round(LEFT + index * slot + slot * 0.15, 2),
                y=round(chart.baseline - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                day=day,
                value=value,
            )
        )
        if (len(days) - 1 - index) % 7 == 0:  # today, and a week back each time
            if index == len(days) - 1:
                label = DayLabel(chart.plot_right, day.strftime("%d %b"), "end")
            else:
                label = DayLabel(round(LEFT + (index + 0.5) * slot, 2), day.strftime("%d %b"))
            chart.labels.append(label)
    for n in range(0, top_value + 1, step):
        chart.ticks.append(
            Tick(round(chart.baseline - plot_height * n / top_value, 2), short_number(n))
        )
    return chart
