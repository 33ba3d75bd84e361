"""A stub upstream for issue 16's table: the least CPU an OpenAI-style chat server can cost.

Plain asyncio HTTP/1.1 with keep-alive, answers precomputed per request shape, so what a benchmark
measures is the MCP server's work, not the upstream's. Run as a script: it prints its port, then
serves until stdin closes. A prompt may hold `[[tokens=N]]` (reply length; default 40 tokens of
"tok ") and `[[delay=MS]]` (wait before answering).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from functools import cache

MODEL = "qwen-3.6-plus"
_TOKENS = re.compile(r"\[\[tokens=(\d+)\]\]")
_DELAY = re.compile(r"\[\[delay=(\d+)\]\]")


@cache
def stream_body(tokens: int) -> bytes:
    chunk: dict[str, object] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}],
    }
    piece = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    usage = {"prompt_tokens": 9, "completion_tokens": tokens, "total_tokens": 9 + tokens, "cost": 0.00005}
    last: dict[str, object] = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": usage,
    }
    return piece * tokens + b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n"


@cache
def complete_body(tokens: int) -> bytes:
    message = {"role": "assistant", "content": "tok " * tokens}
    usage = {"prompt_tokens": 9, "completion_tokens": tokens, "total_tokens": 9 + tokens}
    return json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }
    ).encode()


MODELS = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "context_length": 262144}]}).encode()
LIMITS = json.dumps({"tier": 4, "rpm_limit": 1_000_000, "per_model_rpm": 1_000_000, "tpm_limit": 10**9}).encode()
NOT_FOUND = json.dumps({"error": {"message": "not found", "type": "not_found"}}).encode()


def response(status: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        f"x-kyma-model: {MODEL}\r\n\r\n"
    )
    return head.encode() + body


async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            writer.write(await answer(method, path.split("?")[0], body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def answer(method: str, path: str, body: bytes) -> bytes:
    if method == "POST" and path.endswith("/chat/completions"):
        request = json.loads(body)
        prompt = json.dumps(request.get("messages", []))
        tokens = int(match.group(1)) if (match := _TOKENS.search(prompt)) else 40
        if match := _DELAY.search(prompt):
            await asyncio.sleep(int(match.group(1)) / 1000)
        if request.get("stream"):
            return response("200 OK", stream_body(tokens), "text/event-stream")
        return response("200 OK", complete_body(tokens), "application/json")
    if path.endswith("/models"):
        return response("200 OK", MODELS, "application/json")
    if path.endswith("/auth/limits"):
        return response("200 OK", LIMITS, "application/json")
    return response("404 Not Found", NOT_FOUND, "application/json")


async def main() -> None:
    server = await asyncio.start_server(serve_one, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{port}\n")  # noqa: TID251 - the stub's one line to its parent, not an MCP wire
    sys.stdout.flush()  # noqa: TID251
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
