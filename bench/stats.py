"""Figures: a measured distribution, the baseline it is read against, and the target it must meet.

Absolute times on a shared 2-core machine are noisy, so a figure is usually a ratio of two
distributions measured in the same run with their samples interleaved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Unit = Literal["ms", "MiB", "bytes"]


@dataclass(frozen=True)
class Summary:
    """Median, 90th percentile and range of some samples."""

    median: float
    p90: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        """Raises: ValueError: no samples."""
        if not samples:
            raise ValueError("a summary needs at least one sample")
        ordered = sorted(samples)
        return cls(
            median=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            min=ordered[0],
            max=ordered[-1],
            n=len(ordered),
        )

    def to_json(self) -> dict[str, float | int]:
        return {"median": self.median, "p90": self.p90, "min": self.min, "max": self.max, "n": self.n}


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted samples, interpolating linearly between ranks."""
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Target:
    """What a figure must stay under: its ratio to the baseline (median, optionally p90 too) or its own value."""

    limit: float
    on: Literal["ratio", "ratios", "median"]
    text: str

    def met(self, figure: Figure) -> bool | None:
        """Whether `figure` meets it; None when the figure lacks what the target reads."""
        if self.on == "median":
            return figure.value.median <= self.limit
        if figure.ratio is None:
            return None
        if self.on == "ratio":
            return figure.ratio <= self.limit
        return figure.ratio <= self.limit and figure.ratio_p90 is not None and figure.ratio_p90 <= self.limit


def ratio_at_most(limit: float) -> Target:
    return Target(limit, "ratio", f"≤ {limit:.2f}x")


def ratios_at_most(limit: float) -> Target:
    return Target(limit, "ratios", f"≤ {limit:.2f}x (median and p90)")


def median_at_most(limit: float, unit: Unit, shown: str | None = None) -> Target:
    return Target(limit, "median", f"≤ {shown or format_value(limit, unit)}")


@dataclass(frozen=True)
class Baseline:
    name: str
    value: Summary


@dataclass(frozen=True)
class Figure:
    """One row of the results table."""

    benchmark: str
    name: str
    unit: Unit
    value: Summary
    baseline: Baseline | None = None
    target: Target | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline.value.median <= 0:
            return None
        return self.value.median / self.baseline.value.median

    @property
    def ratio_p90(self) -> float | None:
        if self.baseline is None or self.baseline.value.p90 <= 0:
            return None
        return self.value.p90 / self.baseline.value.p90

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "figure": self.name,
            "unit": self.unit,
            **self.value.to_json(),
            "baseline": None
            if self.baseline is None
            else {"name": self.baseline.name, **self.baseline.value.to_json()},
            "ratio": self.ratio,
            "ratio_p90": self.ratio_p90,
            "target": None if self.target is None else self.target.text,
            "met": self.met,
            "note": self.note,
        }


def single(value: float) -> Summary:
    """A figure measured once (a byte count): its median, p90, min and max are the value."""
    return Summary.of([value])


def format_value(value: float, unit: Unit) -> str:
    if unit == "bytes":
        return f"{value:,.0f} B"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.3f} ms" if abs(value) < 1 else f"{value:,.1f} ms" if abs(value) < 100 else f"{value:,.0f} ms"
