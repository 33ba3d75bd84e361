"""`python -m bench`: run every benchmark against the emulator on loopback and write the results.

Writes bench/results/latest.md (a table) and latest.json (every number); exits 1 if a benchmark
broke, 0 otherwise (a missed target is reported, not an error).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

import anyio

from bench import catalog_cache, compare, concurrency, context_cost, first_progress, growth, launch, overhead, threads
from bench.harness import Bench, Benchmark, Counts
from bench.report import Results, now, write
from bench.stats import Figure
from bench.upstream import Emulator
from kyma_mcp.settings import Settings

BENCHMARKS: dict[str, Benchmark] = {
    "context": context_cost.run,
    "catalog": catalog_cache.run,
    "launch": launch.run,
    "overhead": overhead.run,
    "progress": first_progress.run,
    "concurrency": concurrency.run,
    "growth": growth.run,
    "threads": threads.run,
    "compare": compare.run,
}
RESULTS_DIR = Path(__file__).with_name("results")


async def run_benchmarks(names: Sequence[str], counts: Counts, *, with_uv: bool, out_dir: Path) -> Results:
    """Run the named benchmarks in order; one that breaks becomes a note, and the others still run."""
    figures: list[Figure] = []
    broken: list[str] = []
    with _server_log(out_dir) as server_log:
        async with Emulator.running() as emulator:
            bench = Bench(emulator, counts, Settings().default_model, server_log, with_uv=with_uv)
            for name in names:
                started = time.monotonic()
                _say(f"{name} …")
                try:
                    figures += await BENCHMARKS[name](bench)
                except Exception as exc:
                    broken.append(f"{name}: {_root_cause(exc)}")
                    traceback.print_exc(file=sys.stderr)
                finally:
                    await emulator.reset()
                _say(f"{name} done in {time.monotonic() - started:.0f} s")
    return Results(figures, bench.notes, bench.details, counts, now(), broken)


def _root_cause(exc: BaseException) -> str:
    """The first error inside task-group wrappers, which say nothing by themselves."""
    cause: BaseException = exc
    while isinstance(cause, BaseExceptionGroup):
        cause = cast(BaseExceptionGroup[BaseException], cause).exceptions[0]
    return f"{type(cause).__name__}: {cause}"


def _server_log(out_dir: Path) -> BinaryIO:
    """Where the servers' stderr goes: read it when a benchmark breaks."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return (out_dir / "servers.log").open("wb")


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--tiny", action="store_true", help="one run of each: checks the harness, measures nothing")
    parser.add_argument("--no-uv", action="store_true", help="skip the uv launch paths (they build a wheel)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for latest.md and latest.json")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)  # MCPServer() set INFO, which logs every control request
    if unknown := sorted(set(args.names) - set(BENCHMARKS)):
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    counts = Counts.tiny() if args.tiny else Counts()
    results = anyio.run(
        lambda: run_benchmarks(args.names or list(BENCHMARKS), counts, with_uv=not args.no_uv, out_dir=args.out)
    )
    markdown, _ = write(results, args.out)
    print(markdown.read_text(encoding="utf-8"))
    return 1 if results.broken else 0


if __name__ == "__main__":
    sys.exit(main())
