"""Stateless Streamable HTTP over real loopback HTTP: two replicas sharing one store continue one thread
with consecutive requests going to different replicas and no session id; its HTTP limits still hold."""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from contextlib import ExitStack, contextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.http_config import HttpConfig
from kyma_mcp.server.context import RESULT_META
from kyma_mcp.settings import Bounds, ConfigError, Settings
from kyma_mcp.store import open_store
from tests.conftest import emulator_settings
from tests.results import structured
from tests.test_http import INITIALIZE, TLS, run_cli, serving

pytestmark = pytest.mark.anyio
TOKEN = "caller-token-0123456789"
LEGACY = "2025-06-18"
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Accept": "application/json, text/event-stream",
    "mcp-protocol-version": LEGACY,
}


@contextmanager
def replicas(
    emulator: EmulatorHandle,
    store_url: str,
    *,
    count: int = 2,
    stateless: bool = True,
    settings: dict[str, Any] | None = None,
    **bounds: Any,
) -> Generator[list[str]]:
    """`count` kyma-mcp servers, each with its own process state, sharing one store; their root URLs."""
    config = HttpConfig("streamable-http", token=TOKEN, stateless=stateless, bounds=Bounds.model_validate(bounds))
    served = emulator_settings(emulator, store_url=store_url, **(settings or {}))
    with ExitStack() as stack:
        yield [stack.enter_context(serving(config, served)) for _ in range(count)]


def words(text: str) -> int:
    return len(text.split())


def answer_of(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a POST's response: a JSON body, or the last `data:` line of an SSE stream."""
    assert response.status_code == 200, response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        return json.loads(response.text)
    data = [line.removeprefix("data:").strip() for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])


def chat_call(call_id: int, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "method": "tools/call", "params": {"name": "chat", "arguments": arguments}}


async def test_two_stateless_replicas_sharing_one_store_continue_one_thread(
    emulator: EmulatorHandle, store_url: str
) -> None:
    with replicas(emulator, store_url) as (first, second):
        async with httpx2.AsyncClient(verify=TLS, timeout=30, headers=HEADERS) as http:
            # What a balancer without sticky sessions does: every request to the next replica.
            opened = await http.post(f"{first}/mcp", json=INITIALIZE)
            one = await http.post(f"{second}/mcp", json=chat_call(2, {"prompt": "name three rivers"}))
            thread = answer_of(one)["result"]["_meta"][RESULT_META]["conversation_id"]
            two = await http.post(f"{first}/mcp", json=chat_call(3, {"prompt": "one more", "conversation_id": thread}))
            three = await http.post(f"{second}/mcp", json=chat_call(4, {"prompt": "last", "conversation_id": thread}))
    responses = [opened, one, two, three]
    assert all("mcp-session-id" not in response.headers for response in responses)
    assert answer_of(opened)["result"]["protocolVersion"] == LEGACY
    replies = [answer_of(response)["result"]["_meta"][RESULT_META] for response in (one, two, three)]
    assert [reply["conversation_id"] for reply in replies] == [thread] * 3
    # The emulator counts a token per word plus 4 per message: the second replica sent the first's history.
    history = words("name three rivers") + words(reply_text(one).split("\n\n---\n")[0])
    assert replies[1]["usage"]["prompt_tokens"] == history + words("one more") + 3 * 4
    assert replies[2]["usage"]["prompt_tokens"] > replies[1]["usage"]["prompt_tokens"]
    store = await open_store(Settings.model_validate({"store_url": store_url}))
    turns = await store.turns(thread)
    await store.aclose()
    assert [(turn.seq, turn.status) for turn in turns] == [(1, "complete"), (2, "complete"), (3, "complete")]


async def test_without_stateless_a_call_on_another_replica_is_refused(emulator: EmulatorHandle, store_url: str) -> None:
    """Why the setting exists: a legacy-era session lives in the replica that opened it."""
    with replicas(emulator, store_url, stateless=False) as (first, second):
        async with httpx2.AsyncClient(verify=TLS, timeout=30, headers=HEADERS) as http:
            opened = await http.post(f"{first}/mcp", json=INITIALIZE)
            session = {"mcp-session-id": opened.headers["mcp-session-id"]}
            elsewhere = await http.post(f"{second}/mcp", json=chat_call(2, {"prompt": "hi"}), headers=session)
            without = await http.post(f"{second}/mcp", json=chat_call(3, {"prompt": "hi"}))
    assert elsewhere.status_code == 404
    assert without.status_code == 400


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_sdk_client_of_either_era_chats_with_progress_through_a_stateless_server(
    emulator: EmulatorHandle, store_url: str, mode: str
) -> None:
    emulator.switches.token_interval_ms = 10
    emulator.switches.reply_words = 10
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with replicas(emulator, store_url, count=1) as (root,):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, verify=TLS, timeout=30) as http,
            Client(
                streamable_http_client(f"{root}/mcp", http_client=http), mode="auto" if mode == "auto" else "legacy"
            ) as client,
        ):
            first = structured(await client.call_tool("chat", {"prompt": "hello"}, progress_callback=on_progress))
            again = structured(
                await client.call_tool("chat", {"prompt": "again", "conversation_id": first["conversation_id"]})
            )
    assert seen, "progress reached the client on the call's own response stream"
    assert again["conversation_id"] == first["conversation_id"]
    assert again["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"]


async def test_a_spend_confirmation_in_stateless_mode_is_a_token_never_a_question_the_client_cannot_answer(
    emulator: EmulatorHandle, store_url: str
) -> None:
    """A stateless server has no session to send `elicitation/create` on: a legacy-era host that declared
    elicitation still gets the one-time token, and the token, kept in the shared store, is good once at
    any replica."""
    arguments = {"prompt": "hi", "model": "qwen-3.6-plus", "max_tokens": 1000}  # about $0.0039
    declared: dict[str, Any] = json.loads(json.dumps(INITIALIZE))
    declared["params"]["capabilities"] = {"elicitation": {"form": {}}}
    with replicas(emulator, store_url, settings={"confirm_above_usd": 0.001}) as (first, second):
        async with httpx2.AsyncClient(verify=TLS, timeout=30, headers=HEADERS) as http:
            await http.post(f"{first}/mcp", json=declared)
            refused = answer_of(await http.post(f"{first}/mcp", json=chat_call(2, arguments)))["result"]
            token = re.search(r'confirm="([0-9a-f]{16})"', refused["content"][0]["text"])
            assert token is not None, refused
            confirmed = {**arguments, "confirm": token[1]}
            sent = answer_of(await http.post(f"{second}/mcp", json=chat_call(3, confirmed)))["result"]
            again = answer_of(await http.post(f"{first}/mcp", json=chat_call(4, confirmed)))["result"]
    assert refused["isError"]
    assert refused["content"][0]["text"].startswith("[budget_exceeded] This call's estimate is above")
    assert not sent["isError"]
    assert sent["content"][0]["text"].startswith("Echo from")
    assert again["isError"]
    assert "is unknown, used, expired or for other arguments" in again["content"][0]["text"]


async def test_stateless_mode_caps_requests_in_flight_and_opens_no_get_stream(
    emulator: EmulatorHandle, store_url: str
) -> None:
    emulator.switches.gather_chats = 2  # the one chat is held at the gateway, in flight, until released
    with replicas(emulator, store_url, count=1, http_sessions=1) as (root,):
        async with httpx2.AsyncClient(verify=TLS, timeout=30, headers=HEADERS) as http:
            slow: list[httpx2.Response] = []

            async def slow_call() -> None:
                slow.append(await http.post(f"{root}/mcp", json=chat_call(2, {"prompt": "take your time"})))

            busy: httpx2.Response | None = None  # bound before the task group, whose exit may swallow errors
            async with anyio.create_task_group() as group:
                group.start_soon(slow_call)
                for _ in range(200):  # until the slow call is in flight
                    await anyio.sleep(0.02)
                    busy = await http.post(f"{root}/mcp", json={"jsonrpc": "2.0", "id": 9, "method": "ping"})
                    if busy.status_code == 503:
                        break
                emulator.switches.gather_chats = 0
            stream = await http.get(f"{root}/mcp")
            after = await http.post(f"{root}/mcp", json={"jsonrpc": "2.0", "id": 10, "method": "ping"})
    assert busy is not None
    assert busy.status_code == 503
    assert "KYMA_MAX_HTTP_SESSIONS" in busy.text
    assert busy.headers["retry-after"] == "5"
    assert reply_text(slow[0]).startswith("Echo from")
    assert stream.status_code == 405
    assert after.status_code == 200


def reply_text(response: httpx2.Response) -> str:
    return answer_of(response)["result"]["content"][0]["text"]  # chat is text first: the reply is the text


def test_stateless_is_read_from_the_environment_and_only_for_streamable_http() -> None:
    settings = Settings.from_env({"KYMA_MCP_STATELESS": "1"})
    config = HttpConfig.from_settings(settings, transport="streamable-http", host="127.0.0.1", port=8000)
    flag = HttpConfig.from_settings(
        Settings(), transport="streamable-http", host="127.0.0.1", port=8000, stateless=True
    )
    assert config.stateless
    assert flag.stateless
    assert not HttpConfig.from_settings(Settings(), transport="streamable-http", host="127.0.0.1", port=8000).stateless
    with pytest.raises(ConfigError, match=r"--stateless \(KYMA_MCP_STATELESS\) is for --transport streamable-http"):
        HttpConfig.from_settings(settings, transport="sse", host="127.0.0.1", port=8000)


def test_the_command_refuses_stateless_sse() -> None:
    done = run_cli("--transport", "sse", "--stateless")

    assert done.returncode == 2
    assert done.stderr.startswith("kyma-mcp: --stateless (KYMA_MCP_STATELESS) is for --transport streamable-http")
