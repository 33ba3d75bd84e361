"""The SDK's floor per call: a bare `MCPServer` tool that forwards one httpx2 request to Kyma.

It sends the body kyma-mcp's `chat` sends, to `KYMA_BASE_URL` with `KYMA_API_KEY`, and returns
the reply text; streamed, it reports one progress notification at the first token.
"""

import json
import os
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.server import MCPServer
from mcp.server.mcpserver import Context


@asynccontextmanager
async def lifespan(_: MCPServer) -> AsyncGenerator[httpx2.AsyncClient]:
    headers = {"Authorization": f"Bearer {os.environ['KYMA_API_KEY']}"}
    async with httpx2.AsyncClient(base_url=os.environ["KYMA_BASE_URL"] + "/", headers=headers, timeout=60) as http:
        yield http


server = MCPServer("forwarding", lifespan=lifespan, log_level="WARNING")  # kyma-mcp's default log level


@server.tool()
async def chat(ctx: Context[httpx2.AsyncClient], prompt: str, model: str, stream: bool = True) -> str:
    """Forward one chat completion and return its reply."""
    http = ctx.request_context.lifespan_context
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    if not stream:
        response = await http.post("chat/completions", json=body)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]
    body["stream_options"] = {"include_usage": True}
    parts: list[str] = []
    async with http.stream("POST", "chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:") or (data := line[5:].strip()) == "[DONE]":
                continue
            for choice in json.loads(data)["choices"]:
                if not parts:
                    await ctx.report_progress(1)
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


if __name__ == "__main__":
    server.run()
