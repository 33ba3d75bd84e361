"""`kyma-mcp conversations list|show ID|export ID --format md|json|delete ID|prune`: the stored
chat threads from a terminal, in the store the server uses (same KYMA_STORE / KYMA_STORE_URL).

This is not the MCP server: its stdout is for a person (or a script, with export --format json).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from kyma_mcp import transcripts
from kyma_mcp.errors import StoreUnavailableError
from kyma_mcp.settings import ConfigError, Settings
from kyma_mcp.spend import usd
from kyma_mcp.store import Store, open_store, prune

EXIT_NOT_FOUND = 1
EXIT_CONFIG = 2
EXIT_STORE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kyma-mcp conversations",
        description="Read and manage the chat threads kyma-mcp keeps (where: KYMA_STORE, KYMA_STORE_URL; README).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="threads, most recently used first")
    listing.add_argument("--limit", type=int, default=50)
    show = commands.add_parser("show", help="one thread as Markdown, a page at a time")
    show.add_argument("id")
    show.add_argument("--offset", type=int, default=0, help="start after this many turns")
    export = commands.add_parser("export", help="one whole thread as Markdown or JSON")
    export.add_argument("id")
    export.add_argument("--format", choices=["md", "json"], default="md")
    export.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    delete = commands.add_parser("delete", help="delete one thread")
    delete.add_argument("id")
    commands.add_parser("prune", help="delete threads unused for KYMA_CONVERSATION_DAYS days (default 30)")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"kyma-mcp conversations: {exc}\n")
        return EXIT_CONFIG
    if settings.store == "off":
        sys.stderr.write("kyma-mcp conversations: KYMA_STORE=off keeps threads only inside each server process.\n")
        return EXIT_CONFIG
    try:
        return anyio.run(_run, settings, args)
    except StoreUnavailableError as exc:
        sys.stderr.write(f"kyma-mcp conversations: {exc}\n")
        return EXIT_STORE


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    store = await open_store(settings)
    try:
        return await _command(store, settings, args)
    finally:
        await store.aclose()


async def _command(store: Store, settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "list":
        page, total = await store.conversations(limit=args.limit)
        for c in page:
            models = ",".join(c.models) or "-"
            cost = transcripts.total_cost(c, usd)
            print(f"{c.id}  {transcripts.when(c.updated_at)}  {c.turns:>3} turns  {cost}  {models}  {c.title}")
        print(f"{len(page)} of {total} conversations in {store.where}")
        return 0
    if args.command == "prune":
        pruned = await prune(store, settings)
        print(f"deleted {pruned} conversations unused for {settings.conversation_days} days")
        return 0
    if args.command == "delete":
        if await store.delete_conversation(args.id):
            print(f"deleted {args.id}")
            return 0
        return _not_found(args.id)
    conversation = await store.conversation(args.id)
    if conversation is None:
        return _not_found(args.id)
    turns = await store.turns(args.id)
    if args.command == "show":
        text = transcripts.transcript(conversation, turns, offset=args.offset)
    else:
        render = transcripts.export_json if args.format == "json" else transcripts.export_markdown
        text = render(conversation, turns)
        if args.output is not None:
            args.output.write_text(text + "\n", encoding="utf-8")
            print(f"wrote {args.output}")
            return 0
    print(text)
    return 0


def _not_found(conversation_id: str) -> int:
    sys.stderr.write(
        f"kyma-mcp conversations: no conversation '{conversation_id}' (see `kyma-mcp conversations list`)\n"
    )
    return EXIT_NOT_FOUND
