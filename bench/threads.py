"""Threads: what continuing a 50-turn conversation adds to a `chat` call, against a stateless call.

One kyma-mcp server with its store in a fresh SQLite file, and one with KYMA_STORE=off. Before
timing, the bench writes enough 50-turn threads straight into the file that each timed thread call
continues its own thread at exactly 50 turns. Each round makes, in rotating order: a stateless
chat on the store-off server, a stateless chat on the store server (it still records a new thread),
and a chat continuing a 50-turn thread. "Added" is a call's time minus the store-off call of the
same round; the thread's history (100 messages) also makes the request to the emulator larger,
which is part of what a thread costs and is counted.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from bench.harness import UNPACED, Bench, rotated, timed
from bench.stats import Baseline, Figure, Summary, median_at_most
from bench.wire import StdioServer
from kyma_mcp.settings import Settings
from kyma_mcp.store import open_store

TURNS = 50
TARGET_MS = 2.0
MAX_THREAD_CALLS = 300
"""Each timed call needs its own 50-turn thread; more than this adds writing time, not precision."""
REPLY = "Echo from the model: " + " ".join(["word"] * 20)


async def _prepare(path: Path, threads: int, model: str) -> list[str]:
    """`threads` conversations of `TURNS` complete turns each, written in one transaction."""
    store = await open_store(Settings.model_validate({"store_url": f"sqlite://{path}"}))
    await store.aclose()  # the schema, made by the store itself
    ids = [f"bench-thread-{index:05d}" for index in range(threads)]
    now = time.time()
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO conversations (id, title, created_at, updated_at, turns, models) VALUES (?, ?, ?, ?, ?, ?)",
            [(cid, "bench", now, now, TURNS, json.dumps([model])) for cid in ids],
        )
        connection.executemany(
            "INSERT INTO turns (conversation_id, seq, status, messages, model_requested, model_served, reply, "
            "prompt_tokens, completion_tokens, finish_reason, created_at, updated_at) "
            "VALUES (?, ?, 'complete', ?, ?, ?, ?, ?, 24, 'stop', ?, ?)",
            [
                (
                    cid,
                    seq,
                    json.dumps([{"role": "user", "content": f"question {seq} about the benchmark thread"}]),
                    model,
                    model,
                    REPLY,
                    60 * seq,
                    now,
                    now,
                )
                for cid in ids
                for seq in range(1, TURNS + 1)
            ],
        )
    return ids


async def run(bench: Bench) -> list[Figure]:
    calls = min(bench.counts.calls, MAX_THREAD_CALLS)
    warmups = bench.counts.warmup_calls
    with tempfile.TemporaryDirectory(prefix="kyma-bench-store-") as folder:
        path = Path(folder) / "store.sqlite3"
        threads = iter(await _prepare(path, calls + warmups, bench.model))
        async with AsyncExitStack() as stack:
            stored = await stack.enter_async_context(
                StdioServer.launched(
                    bench.kyma_module(**UNPACED, KYMA_STORE_URL=f"sqlite://{path}"), stderr=bench.server_log
                )
            )
            off = await stack.enter_async_context(
                StdioServer.launched(bench.kyma_module(**UNPACED, KYMA_STORE="off"), stderr=bench.server_log)
            )
            for server in (stored, off):
                await server.handshake()
                await server.request("tools/list")
            prompt = {"prompt": "and one more question", "model": bench.model}

            async def thread_call() -> object:
                return await stored.call_tool("chat", prompt | {"conversation_id": next(threads)})

            variants = {
                "stateless, store off": lambda: off.call_tool("chat", prompt),
                "stateless, store on": lambda: stored.call_tool("chat", prompt),
                "50-turn thread": thread_call,
            }
            for _ in range(warmups):
                for call in variants.values():
                    await call()
            times: dict[str, list[float]] = {name: [] for name in variants}
            for turn in range(calls):
                for name, call in rotated(list(variants.items()), turn):
                    times[name].append(await timed(call))

    def added(name: str, base: str) -> Summary:
        return Summary.of([a - b for a, b in zip(times[name], times[base], strict=True)])

    group = "threads"
    stateless = Baseline("stateless chat, same run", added("stateless, store on", "stateless, store off"))
    return [
        Figure(group, "stateless chat, KYMA_STORE=off", "ms", Summary.of(times["stateless, store off"])),
        Figure(group, "added by the store to a stateless chat (records a new thread)", "ms", stateless.value),
        Figure(
            group,
            f"added by continuing a {TURNS}-turn thread (SQLite), vs stateless with KYMA_STORE=off",
            "ms",
            added("50-turn thread", "stateless, store off"),
        ),
        Figure(
            group,
            f"added by continuing a {TURNS}-turn thread (SQLite), vs stateless with the store on",
            "ms",
            added("50-turn thread", "stateless, store on"),
            stateless,
            median_at_most(TARGET_MS, "ms"),
        ),
    ]
