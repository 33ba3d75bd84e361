"""Threads read back: the resources (paged listing, Markdown transcript pages), the
`kyma-mcp conversations` command, and retention (KYMA_CONVERSATION_DAYS)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError
from mcp.types import TextResourceContents

from kyma_mcp import transcripts
from kyma_mcp.cli import main as cli_main
from kyma_mcp.conversations import new_conversation_id
from kyma_mcp.emulator import EmulatorHandle
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from kyma_mcp.store import StoreHandle, open_store
from kyma_mcp.store.records import Conversation, NewTurn, Turn, TurnOutcome
from tests.conftest import BOTH_ERAS, ConnectFactory, emulator_settings
from tests.results import structured

pytestmark = pytest.mark.anyio


async def read_text(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    [contents] = result.contents
    assert isinstance(contents, TextResourceContents)
    return contents.text


@BOTH_ERAS
async def test_the_listing_is_newest_first_and_the_transcript_shows_each_turn(
    connect: ConnectFactory, store_url: str
) -> None:
    async with connect(store_url=store_url) as client:
        older = structured(await client.call_tool("chat", {"prompt": "first thread"}))["conversation_id"]
        newer = structured(await client.call_tool("chat", {"prompt": "second thread", "system": "be terse"}))
        thread = newer["conversation_id"]
        await client.call_tool("chat", {"prompt": "follow up", "model": "deepseek-r1", "conversation_id": thread})
        listing = json.loads(await read_text(client, "kyma://conversations"))
        page = json.loads(await read_text(client, "kyma://conversations?offset=1"))
        transcript = await read_text(client, f"kyma://conversations/{thread}")
        with pytest.raises(MCPError, match="read kyma://conversations"):
            await client.read_resource("kyma://conversations/nosuchthread")
    assert [c["id"] for c in listing["conversations"]] == [thread, older]
    first = listing["conversations"][0]
    assert first["title"] == "second thread"
    assert first["turns"] == 2
    assert first["models"] == ["qwen-3.6-plus", "deepseek-r1"]
    assert first["cost_usd"] > 0
    assert listing["total"] == 2
    assert listing["next"] is None
    assert [c["id"] for c in page["conversations"]] == [older]
    assert transcript.startswith("# second thread")
    assert "**system:**\n\nbe terse" in transcript
    assert "## Turn 2 · " in transcript
    assert "deepseek-r1 · complete" in transcript
    assert "**user:**\n\nfollow up" in transcript
    assert newer["reply"] in transcript


def test_a_long_transcript_comes_in_pages_that_fit_the_result_limit() -> None:
    conversation = Conversation(id="abcdefghijkl", title="t", system=None, created_at=0, updated_at=0)
    turns = [
        Turn(
            conversation_id="abcdefghijkl",
            seq=n,
            messages_json=json.dumps([{"role": "user", "content": f"question {n}"}]),
            model_requested="m",
            created_at=0,
            outcome=TurnOutcome(status="complete", reply="x" * 9_000),
        )
        for n in range(1, 21)
    ]
    first = transcripts.transcript(conversation, turns)
    assert len(first) <= transcripts.MAX_TRANSCRIPT_CHARS + 200
    assert "question 1\n" in first
    assert "Read kyma://conversations/abcdefghijkl?offset=6 for the rest." in first
    second = transcripts.transcript(conversation, turns, offset=6)
    assert "## Turn 7 " in second
    assert "## Turn 6 " not in second


async def chat_once(emulator: EmulatorHandle, store_url: str, prompt: str) -> str:
    async with Client(build_server(emulator_settings(emulator, store_url=store_url))) as client:
        return structured(await client.call_tool("chat", {"prompt": prompt}))["conversation_id"]


def test_the_conversations_command_lists_shows_exports_deletes_and_prunes(
    emulator: EmulatorHandle,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    thread = anyio.run(chat_once, emulator, store_url, "export me")
    monkeypatch.setenv("KYMA_STORE_URL", store_url)
    assert cli_main(["conversations", "list"]) == 0
    assert thread in capsys.readouterr().out
    assert cli_main(["conversations", "show", thread]) == 0
    assert "export me" in capsys.readouterr().out
    out = tmp_path / "thread.json"
    assert cli_main(["conversations", "export", thread, "--format", "json", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    exported = json.loads(out.read_text())
    assert exported["id"] == thread
    assert exported["turns"][0]["messages"] == [{"role": "user", "content": "export me"}]
    assert cli_main(["conversations", "export", thread, "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("# export me")
    assert cli_main(["conversations", "prune"]) == 0
    assert "deleted 0 conversations" in capsys.readouterr().out
    assert cli_main(["conversations", "delete", thread]) == 0
    assert cli_main(["conversations", "show", thread]) == 1
    assert "no conversation" in capsys.readouterr().err


async def test_threads_unused_past_retention_are_pruned_when_the_store_opens(store_url: str) -> None:
    settings = Settings.model_validate({"store_url": store_url, "conversation_days": 30})
    store = await open_store(settings)
    long_ago = time.time() - 31 * 86_400
    for name, at in (("old", long_ago), ("new", time.time())):
        conversation = Conversation(id=name, title=name, system=None, created_at=at, updated_at=at)
        turn = NewTurn(messages_json="[]", model_requested="m", created_at=at)
        await store.begin_turn(conversation, turn, create=True, owner="o", lease_until=0, replace_system=False)
        await store.finish_turn(name, 1, TurnOutcome(status="complete"), owner="o", now=at)
    await store.aclose()
    handle = StoreHandle(settings)
    reopened = await handle.get()
    assert await reopened.conversation("old") is None
    assert await reopened.conversation("new") is not None
    await handle.aclose()


def test_conversation_ids_never_look_like_a_command_line_option() -> None:
    """A `-` first character made `kyma-mcp conversations show ID` read the id as an option (1 id in 64)."""
    ids = {new_conversation_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9]{12}", conversation_id) for conversation_id in ids)
