"""Writing the results: a Markdown table for people, JSON with every number for tools."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.harness import Counts
from bench.stats import Figure, Unit, format_value

MARKS = {True: "✅", False: "❌", None: "-"}


@dataclass(frozen=True)
class Results:
    figures: Sequence[Figure]
    notes: Sequence[str]
    details: Mapping[str, Any]
    counts: Counts
    finished_at: datetime
    broken: Sequence[str] = ()
    """Benchmarks that raised instead of measuring: the harness needs fixing."""

    @property
    def failed_targets(self) -> list[Figure]:
        return [figure for figure in self.figures if figure.met is False]


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "mcp": _version("mcp"),
        "kyma-mcp": _version("kyma-mcp"),
        "executable": sys.executable,
    }


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def to_json(results: Results) -> dict[str, Any]:
    return {
        "finished_at": results.finished_at.isoformat(timespec="seconds"),
        "machine": machine(),
        "counts": asdict(results.counts),
        "figures": [figure.to_json() for figure in results.figures],
        "notes": list(results.notes),
        "broken": list(results.broken),
        "details": dict(results.details),
    }


def to_markdown(results: Results) -> str:
    about = machine()
    lines = [
        "# kyma-mcp benchmarks",
        "",
        f"{results.finished_at:%Y-%m-%d %H:%M} UTC · Python {about['python']} · mcp {about['mcp']} · "
        f"kyma-mcp {about['kyma-mcp']} · {about['platform']} · {about['cpus']} CPUs. "
        "Each baseline was measured in the same run, its samples interleaved with the figure's. "
        "Ratio = median ÷ baseline median (and p90 ÷ baseline p90 where the target reads both).",
        "",
        "| benchmark | figure | n | median | p90 | range | baseline | baseline median | ratio | target | met |",
        "|---|---|--:|--:|--:|--:|---|--:|--:|---|:-:|",
    ]
    lines.extend(_row(figure) for figure in results.figures)
    if tools := results.details.get("tools_list"):
        lines += ["", "`tools/list`, bytes per tool (compact JSON, as on the wire):", ""]
        lines += ["| tool | total | description | inputSchema | outputSchema | name, title, annotations |"]
        lines += ["|---|--:|--:|--:|--:|--:|"]
        lines.extend(
            f"| `{t['name']}` | {t['total']:,} | {t['description']:,} | {t['inputSchema']:,} | "
            f"{t['outputSchema']:,} | {t['other']:,} |"
            for t in tools
        )
    if chat := results.details.get("chat_result"):
        members = ", ".join(f"{key} {value:,}" for key, value in chat["members"].items())
        fields = ", ".join(f"{key} {value:,}" for key, value in chat["structured_fields"].items())
        lines += ["", f"Short `chat` result, bytes per member: {members}; structuredContent fields: {fields}."]
    if results.notes or results.broken:
        lines += ["", "Notes:", ""]
        lines.extend(f"- BROKEN: {failure}" for failure in results.broken)
        lines.extend(f"- {note}" for note in results.notes)
    return "\n".join(lines) + "\n"


def _row(figure: Figure) -> str:
    value, unit = figure.value, figure.unit
    spread = (
        format_value(value.min, unit) if value.n == 1 else f"{_bare(value.min, unit)}-{format_value(value.max, unit)}"
    )
    baseline = figure.baseline
    ratio = "" if figure.ratio is None else f"{figure.ratio:.2f}x"
    if figure.target is not None and figure.target.on == "ratios" and figure.ratio_p90 is not None:
        ratio += f" / {figure.ratio_p90:.2f}x"
    name = figure.name + (f" ({figure.note})" if figure.note else "")
    cells = [
        figure.benchmark,
        name,
        str(value.n),
        format_value(value.median, unit),
        "" if value.n == 1 else format_value(value.p90, unit),
        spread,
        "" if baseline is None else baseline.name,
        "" if baseline is None else format_value(baseline.value.median, unit),
        ratio,
        "" if figure.target is None else figure.target.text,
        MARKS[figure.met],
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _bare(value: float, unit: Unit) -> str:
    """A range's lower end without its unit (the upper end carries it)."""
    return format_value(value, unit).rsplit(" ", 1)[0]


def write(results: Results, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, data = out_dir / "latest.md", out_dir / "latest.json"
    markdown.write_text(to_markdown(results), encoding="utf-8")
    data.write_text(json.dumps(to_json(results), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return markdown, data


def now() -> datetime:
    return datetime.now(UTC)
