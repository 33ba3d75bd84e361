"""Compare: is the fan-out truly parallel? A 3-model `compare` against the slowest of the same three
models asked one at a time with `chat`, in the same run.

The emulator holds each model's first streamed chunk back by its own delay (`model_first_byte_ms`:
200, 400 and 600 ms), so the three single calls take clearly different times. Each round, in
rotating order, makes the three single `chat` calls and one `compare` of the three models on one
server. A parallel fan-out takes about as long as its slowest model; a serial one would take the
sum (about 2x here). Target: the compare's median ≤ 1.2x the median of each round's slowest single call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.harness import UNPACED, Bench, rotated, timed
from bench.stats import Baseline, Figure, Summary, ratio_at_most
from bench.upstream import PROMPT
from bench.wire import StdioServer

MODELS = ("llama-3.3-70b", "kimi-k2.6", "qwen-3.6-plus")
FIRST_BYTE_MS = (200.0, 400.0, 600.0)
"""Each model's extra wait before its first chunk, in the order of `MODELS`."""
TARGET = 1.2


async def run(bench: Bench) -> list[Figure]:
    rounds = bench.counts.compare_rounds
    delays = dict(zip(MODELS, FIRST_BYTE_MS, strict=True))
    async with (
        bench.emulator.switched(model_first_byte_ms=delays, token_interval_ms=1),
        StdioServer.launched(bench.kyma_module(**UNPACED), stderr=bench.server_log) as server,
    ):
        await server.handshake()
        await server.request("tools/list")
        singles: dict[str, Callable[[], Awaitable[object]]] = {
            model: (lambda model=model: server.call_tool("chat", {"prompt": PROMPT, "model": model}))
            for model in MODELS
        }
        fan_out = {"prompt": PROMPT, "models": list(MODELS)}
        variants = {**singles, "compare": lambda: server.call_tool("compare", fan_out)}
        for call in variants.values():  # warm-up: the catalog, the connection pool
            await call()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for turn in range(rounds):
            for name, call in rotated(list(variants.items()), turn):
                times[name].append(await timed(call))

    slowest = [max(times[model][i] for model in MODELS) for i in range(rounds)]
    summed = [sum(times[model][i] for model in MODELS) for i in range(rounds)]
    group = "compare"
    delays_text = ", ".join(f"{model} {delay:.0f} ms" for model, delay in delays.items())
    return [
        *[
            Figure(group, f"single `chat`, {model} ({delay:.0f} ms to first token)", "ms", Summary.of(times[model]))
            for model, delay in delays.items()
        ],
        Figure(
            group,
            f"3-model `compare` ({delays_text} to first token)",
            "ms",
            Summary.of(times["compare"]),
            Baseline("the slowest single `chat` of the same round", Summary.of(slowest)),
            ratio_at_most(TARGET),
        ),
        Figure(
            group,
            "3-model `compare`, against the three single calls one after another (reference: serial would be ~1x)",
            "ms",
            Summary.of(times["compare"]),
            Baseline("the three single `chat` calls of the round, summed", Summary.of(summed)),
        ),
    ]
