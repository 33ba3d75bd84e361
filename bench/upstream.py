"""The upstream side of every benchmark: a Kyma emulator in a child process, and direct httpx2 calls to it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx2
from anyio.streams.buffered import BufferedByteReceiveStream

API_KEY = "ky-bench"
PROMPT = "Benchmark: answer in a couple of sentences."
_START_TIMEOUT_SECONDS = 20.0
_HOST_SCRIPT = Path(__file__).with_name("emulator_host.py")


class Emulator:
    """A running emulator process, driven over its `/_emulator` control routes."""

    def __init__(self, root_url: str, control: httpx2.AsyncClient, pid: int) -> None:
        self.root_url = root_url
        self.pid = pid
        self._control = control

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @classmethod
    @asynccontextmanager
    async def running(cls) -> AsyncGenerator[Emulator]:
        """Start the emulator; stop it (by closing its stdin) on exit.

        Raises:
            RuntimeError: it did not report its URL within 20 s.
        """
        process = await anyio.open_process([sys.executable, str(_HOST_SCRIPT)], stderr=subprocess.DEVNULL)
        async with process:
            try:
                root_url = await _first_line(process)
                async with httpx2.AsyncClient(base_url=root_url, timeout=30) as control:
                    yield cls(root_url, control, process.pid)
            finally:
                with anyio.CancelScope(shield=True):
                    if process.stdin is not None:
                        await process.stdin.aclose()
                    with anyio.move_on_after(5):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()

    async def set(self, **switches: Any) -> None:
        """Change switches live (e.g. `latency_ms=200`).

        Raises:
            httpx2.HTTPStatusError: the emulator refused a switch.
        """
        (await self._control.post("/_emulator/switches", json=switches)).raise_for_status()

    async def reset(self) -> None:
        """Back to a healthy gateway with no latency, an empty ledger and fresh rate windows."""
        (await self._control.post("/_emulator/reset")).raise_for_status()

    async def state(self) -> dict[str, Any]:
        response = await self._control.get("/_emulator/state")
        response.raise_for_status()
        return response.json()

    @asynccontextmanager
    async def switched(self, **switches: Any) -> AsyncGenerator[None]:
        """The switches for the `async with` block, then a reset."""
        await self.set(**switches)
        try:
            yield
        finally:
            await self.reset()


async def _first_line(process: anyio.abc.Process) -> str:
    if process.stdout is None:
        raise RuntimeError("the emulator process has no stdout")
    with anyio.fail_after(_START_TIMEOUT_SECONDS):
        try:
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 4096)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            raise RuntimeError(
                "the emulator exited before it started (run bench/emulator_host.py to see why)"
            ) from None
    return line.decode().strip()


def chat_body(model: str, prompt: str = PROMPT, *, stream: bool) -> dict[str, Any]:
    """The request body kyma-mcp's `chat` sends for a plain prompt (it always streams)."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


class DirectChat:
    """The same chat request as the servers make, sent straight to the emulator with httpx2."""

    def __init__(self, base_url: str, model: str) -> None:
        self._model = model
        self._http = httpx2.AsyncClient(
            base_url=base_url + "/", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self) -> str:
        """One non-streaming completion; its reply text."""
        response = await self._http.post("chat/completions", json=chat_body(self._model, stream=False))
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    async def stream(self) -> str:
        """One streamed completion, read to `[DONE]`; its reply text."""
        parts: list[str] = []
        async with self._http.stream("POST", "chat/completions", json=chat_body(self._model, stream=True)) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data:") and (data := line[5:].strip()) != "[DONE]":
                    parts.extend(_contents(json.loads(data)))
        return "".join(parts)


def _contents(chunk: Mapping[str, Any]) -> list[str]:
    return [choice["delta"].get("content") or "" for choice in chunk.get("choices", [])]
