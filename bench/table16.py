"""Issue 16's table: kyma-mcp checkouts against the SDK's floor, in one run, over a stub upstream.

    python -m bench.table16 [--kyma LABEL=PYTHON ...] [--quick] [--only STEP ...] [--out FILE]

Each `--kyma` names an interpreter whose environment has a kyma-mcp installed (an older checkout's
`.venv/bin/python`, say); the default is this interpreter. The floor is a bare `MCPServer` tool
forwarding one httpx2 request (`bench/baselines/forwarding_server.py`). The upstream is `bench/stub.py`,
which answers from precomputed bytes so it barely competes for the CPU. Every figure interleaves its
servers' samples. Threads are off (`KYMA_STORE=off`: `bench/threads.py` measures them) except for the
two byte figures, which use the default settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2

from bench.upstream import API_KEY, chat_body
from bench.wire import ServerCommand, StdioServer, python_env

FORWARDING = Path(__file__).with_name("baselines") / "forwarding_server.py"
STUB = Path(__file__).with_name("stub.py")
MODEL = "qwen-3.6-plus"
SHORT = "Benchmark: answer in a couple of sentences."
LONG_TOKENS = 16_000
IDLE_SECONDS = 1.0
"""How long a model takes to decide to call a tool once it has the list: the idle first chat waits this."""


@asynccontextmanager
async def stub_upstream() -> AsyncGenerator[str]:
    """The stub's base URL, while it runs."""
    process = await anyio.open_process([sys.executable, str(STUB)], stdin=subprocess.PIPE)
    try:
        assert process.stdout is not None
        port = (await process.stdout.receive()).decode().strip()
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        assert process.stdin is not None
        await process.stdin.aclose()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
        await process.aclose()


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


class Table:
    def __init__(self, kymas: dict[str, str], base_url: str, quick: bool, data_home: str) -> None:
        self.kymas = kymas
        self.base_url = base_url
        self.quick = quick
        self.data_home = data_home
        self.rows: dict[str, dict[str, Any]] = {}

    def env(self, **extra: str) -> dict[str, str]:
        settings = {
            "KYMA_API_KEY": API_KEY,
            "KYMA_BASE_URL": self.base_url,
            "KYMA_TIER": "4",
            "KYMA_RATE_WINDOW_SECONDS": "0.1",
            "KYMA_MAX_REPLY_CHARS": "1000000",
            "KYMA_STORE": "off",
            "XDG_DATA_HOME": self.data_home,
        }
        return python_env(settings | extra)

    def commands(self, **extra: str) -> dict[str, ServerCommand]:
        servers = {
            label: ServerCommand(label, (python, "-m", "kyma_mcp"), self.env(**extra), cwd=self.data_home)
            for label, python in self.kymas.items()
        }
        servers["floor"] = ServerCommand(
            "floor", (sys.executable, str(FORWARDING)), self.env(**extra), cwd=self.data_home
        )
        return servers

    def put(self, figure: str, label: str, value: Any) -> None:
        self.rows.setdefault(figure, {})[label] = value

    @staticmethod
    def chat_args(label: str, prompt: str) -> dict[str, Any]:
        return {"prompt": prompt, "model": MODEL} | ({"stream": True} if label == "floor" else {})

    async def chat_ms(self, server: StdioServer, label: str, prompt: str = SHORT) -> float:
        """One chat's wall time in ms."""
        started = time.perf_counter()
        await server.call_tool("chat", self.chat_args(label, prompt))
        return (time.perf_counter() - started) * 1000

    async def cold_start_and_first_chat(self) -> None:
        """Spawn → tools/list answered, then the first chat: at once (a host that calls a tool as soon as
        it has the list), or after `IDLE_SECONDS` (a model deciding to call a tool), each ÷ a later chat.
        Each server is launched twice per turn, once for each first chat. Any chat after an idle pause is
        slower on a shared VM (its CPUs wake up), so the idle first chat is also divided by a later chat
        after the same pause: that ratio is what is cold in the server, not in the machine."""
        runs = 4 if self.quick else 15
        cold: dict[str, list[float]] = {}
        first: dict[tuple[str, float], list[float]] = {}
        later: dict[str, list[float]] = {}
        later_idle: dict[str, list[float]] = {}
        commands = list(self.commands().items())
        for turn in range(runs):
            for pause in (0.0, IDLE_SECONDS):
                for label, command in commands[turn % len(commands) :] + commands[: turn % len(commands)]:
                    started = time.monotonic()
                    async with StdioServer.launched(command, stderr=None) as server:
                        await server.handshake()
                        await server.request("tools/list")
                        cold.setdefault(label, []).append((time.monotonic() - started) * 1000)
                        await anyio.sleep(pause)
                        first.setdefault((label, pause), []).append(await self.chat_ms(server, label))
                        again = [await self.chat_ms(server, label) for _ in range(5)]
                        later.setdefault(label, []).append(median(again))
                        if pause:
                            await anyio.sleep(pause)
                            later_idle.setdefault(label, []).append(await self.chat_ms(server, label))
        idle = f"{IDLE_SECONDS:g} s idle"
        for label in cold:
            a_later, a_later_idle = median(later[label]), median(later_idle[label])
            at_once, first_idle = median(first[label, 0.0]), median(first[label, IDLE_SECONDS])
            self.put("cold start, spawn → tools/list (ms)", label, median(cold[label]))
            self.put("first chat right after tools/list (ms)", label, at_once)
            self.put(f"first chat after a {idle} (ms)", label, first_idle)
            self.put("a later chat, back to back (ms)", label, a_later)
            self.put(f"a later chat after a {idle} (ms)", label, a_later_idle)
            self.put("first chat right after tools/list ÷ a later chat", label, at_once / a_later)
            self.put(f"first chat after a {idle} ÷ a later chat", label, first_idle / a_later)
            self.put(f"first chat after a {idle} ÷ a later chat after a {idle}", label, first_idle / a_later_idle)

    async def per_call(self) -> None:
        calls = 60 if self.quick else 500
        async with self._per_call_servers(self.commands()) as (servers, direct):
            added, cpu = await self._added_latency(servers, direct, calls)
            for label in servers:
                self.put(f"added latency per chat, {calls} calls (ms)", label, added[label])
                self.put("server CPU per chat (ms)", label, cpu[label])

            long = f"[[tokens={LONG_TOKENS}]] {SHORT}"
            labels = list(servers)
            per_token: dict[str, list[float]] = {label: [] for label in labels}
            for turn in range(3 if self.quick else 7):
                for label in labels[turn % len(labels) :] + labels[: turn % len(labels)]:
                    before = servers[label].cpu_ms()
                    answer = await servers[label].call_tool("chat", self.chat_args(label, long), on_progress=ignore)
                    assert len(json.dumps(answer.result)) > LONG_TOKENS * 4, "the reply was cut"
                    per_token[label].append((servers[label].cpu_ms() - before) * 1000 / LONG_TOKENS)
            for label in labels:
                self.put(f"CPU per token, {LONG_TOKENS // 1000}K-token stream (µs)", label, median(per_token[label]))

    async def per_call_stored(self) -> None:
        """`per_call`'s added latency with the default store (a SQLite file per server, which records
        each chat's thread and spend-ledger entry); the floor keeps nothing, so the gap is what keeping costs."""
        calls = 60 if self.quick else 300
        commands = self.commands(KYMA_STORE="on")
        for label, command in commands.items():  # each its own file: the checkouts' schemas may differ
            home = str(Path(self.data_home, label))  # the server makes its data folder itself
            commands[label] = dataclasses.replace(command, env={**command.env, "XDG_DATA_HOME": home})
        async with self._per_call_servers(commands) as (servers, direct):
            added, cpu = await self._added_latency(servers, direct, calls)
            for label in servers:
                self.put(f"added latency per chat, default store, {calls} calls (ms)", label, added[label])
                self.put("server CPU per chat, default store (ms)", label, cpu[label])

    @asynccontextmanager
    async def _per_call_servers(
        self, commands: dict[str, ServerCommand]
    ) -> AsyncGenerator[tuple[dict[str, StdioServer], Callable[[], Awaitable[None]]]]:
        """The servers, handshaken and warmed up, and a direct streamed request to the stub."""
        async with AsyncExitStack() as stack:
            servers = {
                label: await stack.enter_async_context(StdioServer.launched(command, stderr=None))
                for label, command in commands.items()
            }
            http = await stack.enter_async_context(
                httpx2.AsyncClient(base_url=self.base_url + "/", headers={"Authorization": f"Bearer {API_KEY}"})
            )

            async def direct() -> None:
                async with http.stream(
                    "POST", "chat/completions", json=chat_body(MODEL, SHORT, stream=True)
                ) as response:
                    async for _ in response.aiter_lines():
                        pass

            for server in servers.values():
                await server.handshake()
            for _ in range(20):  # warm-up
                await direct()
                for label, server in servers.items():
                    await server.call_tool("chat", self.chat_args(label, SHORT))
            yield servers, direct

    async def _added_latency(
        self, servers: dict[str, StdioServer], direct: Callable[[], Awaitable[None]], calls: int
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Per server, the median of a chat's time less a direct request's just before it, and its CPU per
        chat over the whole run (which counts work done after a reply, as a store's write-behind does)."""
        labels = list(servers)
        added: dict[str, list[float]] = {label: [] for label in labels}
        cpu = {label: servers[label].cpu_ms() for label in labels}
        for turn in range(calls):
            plain = await timed(direct)
            for label in labels[turn % len(labels) :] + labels[: turn % len(labels)]:
                via = await self.chat_ms(servers[label], label)
                added[label].append(via - plain)
        await anyio.sleep(0.1)  # the last records written after their reply
        return (
            {label: median(added[label]) for label in labels},
            {label: (servers[label].cpu_ms() - cpu[label]) / calls for label in labels},
        )

    async def concurrency(self) -> None:
        bursts = 2 if self.quick else 5
        delayed = f"[[delay=100]] {SHORT}"
        async with AsyncExitStack() as stack:
            servers = {
                label: await stack.enter_async_context(StdioServer.launched(command, stderr=None))
                for label, command in self.commands().items()
            }
            for label, server in servers.items():
                await server.handshake()
                for _ in range(5):
                    await server.call_tool("chat", self.chat_args(label, delayed))
            ratios: dict[str, list[float]] = {label: [] for label in servers}
            for _ in range(bursts):
                for label, server in servers.items():
                    one = median([await self.chat_ms(server, label, delayed) for _ in range(3)])
                    started = time.perf_counter()
                    async with anyio.create_task_group() as group:
                        for _ in range(100):
                            group.start_soon(server.call_tool, "chat", self.chat_args(label, delayed))
                    ratios[label].append((time.perf_counter() - started) * 1000 / one)
            for label in servers:
                self.put("100 concurrent chats, burst ÷ one call", label, median(ratios[label]))

    async def bytes_on_the_wire(self) -> None:
        for label, command in self.commands(KYMA_STORE="on").items():
            async with StdioServer.launched(command, stderr=None) as server:
                await server.handshake()
                listed = await server.request("tools/list")
                answer = await server.call_tool("chat", self.chat_args(label, SHORT))
            if label != "floor":
                self.put("tools/list (B)", label, listed.wire_bytes)
                tools = listed.result["tools"]
                visible = [{k: t[k] for k in ("name", "description", "inputSchema") if k in t} for t in tools]
                self.put("model-visible tools/list: names, descriptions, input schemas (B)", label, size(visible))
            self.put("short chat result, the JSON-RPC `result` (B)", label, size(answer.result))
            self.put("short chat reply (B)", label, len(("tok " * 40).encode()))


def size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def ignore(_: dict[str, Any], __: float) -> None:
    """Asking for progress is what makes a server send it."""


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


def markdown(table: Table) -> str:
    labels = [*table.kymas, "floor"]
    lines = ["| figure | " + " | ".join(labels) + " |", "|---|" + "--:|" * len(labels)]
    for figure, values in table.rows.items():
        cells = [_cell(values.get(label)) for label in labels]
        lines.append(f"| {figure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    assert isinstance(value, float)
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


STEPS = ("bytes_on_the_wire", "cold_start_and_first_chat", "per_call", "per_call_stored", "concurrency")


async def run(kymas: dict[str, str], quick: bool, only: Sequence[str] = ()) -> Table:
    with tempfile.TemporaryDirectory() as data_home:
        async with stub_upstream() as base_url:
            table = Table(kymas, base_url, quick, data_home)
            for name in only or STEPS:
                step = getattr(table, name)
                print(f"table16: {step.__name__} …", file=sys.stderr, flush=True)
                await step()
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.table16", description=__doc__)
    parser.add_argument("--kyma", action="append", default=[], metavar="LABEL=PYTHON")
    parser.add_argument("--quick", action="store_true", help="few samples: checks the script, measures little")
    parser.add_argument("--out", type=Path, help="also write the table and the numbers (JSON) here")
    parser.add_argument("--only", action="append", choices=STEPS, default=[], help="measure only this figure group")
    args = parser.parse_args(argv)
    kymas = dict(item.split("=", 1) for item in args.kyma) or {"kyma-mcp": sys.executable}
    table = anyio.run(run, kymas, args.quick, args.only)
    text = markdown(table)
    print(text)
    if args.out:
        args.out.write_text(text + "\n\n" + json.dumps(table.rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
