"""The `kyma-mcp` command: serve (stdio by default), or one of the `SUBCOMMANDS`.

Heavy modules are imported only by the command that needs them, so a host launching the
server pays for the MCP SDK and nothing else. Serving starts with Python's cyclic garbage collector
paused (`_pause_collector`): importing the SDK and building the tools makes ~140,000 long-lived
objects, and the collector would walk them over and over (≈ 200 collections, ~30 ms here) to find
almost no garbage. Before it serves, the server freezes what start-up made (`gc.freeze`: later
collections skip it) and resumes collecting.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kyma_mcp import __version__

if TYPE_CHECKING:
    from kyma_mcp.http_config import HttpConfig
    from kyma_mcp.settings import Settings

EXIT_CONFIG = 2

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("kyma_mcp.demo:main", "the whole product offline: the emulator, the tools, what an agent sees"),
    "install": ("kyma_mcp.install.command:install_main", "add kyma-mcp to an MCP host's config"),
    "uninstall": ("kyma_mcp.install.command:uninstall_main", "remove kyma-mcp from an MCP host's config"),
    "doctor": ("kyma_mcp.doctor:main", "check the key, the gateway, the catalog and host configs, with fixes"),
    "emulator": ("kyma_mcp.emulator:main", "run the local Kyma gateway emulator"),
    "conversations": ("kyma_mcp.conversations_cli:main", "list, show, export, delete or prune stored chat threads"),
}
"""name -> ("module:function" taking the remaining arguments and returning an exit code, one-line help).

Each module is imported only when its subcommand runs, so serving imports none of them.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        module, _, function = SUBCOMMANDS[args[0]][0].partition(":")
        return getattr(importlib.import_module(module), function)(args[1:])
    paused = _pause_collector()
    try:
        return _serve(_parser().parse_args(args), paused=paused)
    finally:
        if paused and not gc.isenabled():  # start-up ended before serving (a config error, --help)
            gc.enable()


def _pause_collector() -> bool:
    """Pause the cyclic garbage collector for start-up (see the module's docstring); whether it was
    running (an embedding program that paused it keeps it paused)."""
    running = gc.isenabled()
    gc.disable()
    return running


def _resume_collector(paused: bool) -> None:
    """Start-up is over: freeze the objects it made, so that no collection walks them again, and collect
    from here on (only if start-up paused the collector)."""
    if paused:
        gc.freeze()
        gc.enable()


def _parser() -> argparse.ArgumentParser:
    from kyma_mcp.settings import split_list

    parser = argparse.ArgumentParser(
        prog="kyma-mcp",
        usage="kyma-mcp [options]  |  kyma-mcp SUBCOMMAND [--help]",
        description=(
            "MCP server for the Kyma API. Without a subcommand it serves MCP: an MCP host (Claude,\n"
            "Cursor, VS Code, Codex …) starts it and talks to it over stdin/stdout."
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kyma-mcp {__version__}")
    parser.add_argument(
        "--transport",
        choices=["stdio", "sse", "streamable-http"],
        default="stdio",
        help="stdio (default) for a host that starts the server; streamable-http or sse to serve over HTTP",
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP transports only (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP transports only (default 8000)")
    parser.add_argument("--auth-token-file", type=Path, help="HTTP: file holding the bearer token clients must send")
    parser.add_argument(
        "--allowed-hosts", type=split_list, help="HTTP: Host values to accept besides loopback, comma-separated"
    )
    parser.add_argument(
        "--allowed-origins", type=split_list, help="HTTP: browser Origins to accept besides loopback, comma-separated"
    )
    parser.add_argument(
        "--stateless",
        action="store_true",
        help="streamable-http: no sessions, so replicas behind a load balancer need no sticky routing "
        "(or KYMA_MCP_STATELESS=1; share threads with KYMA_STORE_URL=postgresql://…)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("KYMA_LOG_LEVEL", "WARNING"),
        help="DEBUG, INFO, WARNING (default, or $KYMA_LOG_LEVEL) or ERROR; logs go to stderr only",
    )
    return parser


_UNSET_MEANS = {"KYMA_TIER": "learned from the account", "KYMA_OUTPUT_DIR": "the platform's user data folder"}


def _epilog() -> str:
    from kyma_mcp.settings import environment_defaults

    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["subcommands (each takes --help):"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    rows = [
        (name, _UNSET_MEANS.get(name, "unset") if default == "unset" else default)
        for name, default in environment_defaults()
    ]
    rows.append(("KYMA_LOG_LEVEL", "WARNING"))
    width = max(len(name) for name, _ in rows)
    lines += ["", "environment variables (default):"]
    lines += [f"  {name:<{width}}  {default}" for name, default in rows]
    lines += ["", "README: what each variable means, and how to add kyma-mcp to each host."]
    return "\n".join(lines)


_TERMINAL_HINT = (
    "kyma-mcp: waiting for an MCP host on stdin (Ctrl-C to stop). To see it work: `kyma-mcp demo`; "
    "to add it to a host: `kyma-mcp install --client NAME`."
)


def _serve(args: argparse.Namespace, *, paused: bool = False) -> int:
    from kyma_mcp.settings import ConfigError, Settings, log_level

    try:
        level = log_level(args.log_level)
        logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s")
        settings = Settings.from_env(os.environ)
        http = _http_config(args, settings)
        if http is not None and settings.image_dirs is None:
            settings = settings.model_copy(update={"image_dirs": ()})  # a remote client never reads our disk
    except ConfigError as exc:
        sys.stderr.write(f"kyma-mcp: {exc}\n")
        return EXIT_CONFIG
    from kyma_mcp.log_limits import install_log_rate_limit
    from kyma_mcp.redaction import install_log_redaction

    install_log_redaction(settings.secrets)  # the SDK's and uvicorn's log lines pass the same handler
    install_log_rate_limit(settings.bounds.log_lines_per_second)
    if http is None and sys.stdin.isatty():
        sys.stderr.write(_TERMINAL_HINT + ("" if settings.has_api_key else " KYMA_API_KEY is not set.") + "\n")
    elif not settings.has_api_key:
        logging.getLogger("kyma_mcp").warning("KYMA_API_KEY is not set: chat will answer [auth_missing].")

    from kyma_mcp.server import build_server

    server = build_server(settings)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    # SIGTERM (how hosts and process managers stop a server) unwinds like Ctrl-C: the lifespan
    # closes the HTTP pool and the process exits 0 instead of dying mid-write.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    _resume_collector(paused)
    try:
        if http is None:
            server.run()
        else:
            from kyma_mcp.server.http import serve  # uvicorn and Starlette only for HTTP

            serve(server, http)
    except KeyboardInterrupt:
        logging.getLogger("kyma_mcp").info("stopped by a signal")
        logging.shutdown()
        # The SDK reads stdin on a worker thread that no signal can interrupt; the interpreter
        # would wait for it forever at exit. Everything worth closing is closed by now.
        os._exit(0)
    return 0


def _http_config(args: argparse.Namespace, settings: Settings) -> HttpConfig | None:
    """None for stdio; checked before the SDK is imported, so a refused start-up is quick."""
    if args.transport == "stdio":
        return None
    from kyma_mcp.http_config import HttpConfig

    return HttpConfig.from_settings(
        settings,
        transport=args.transport,
        host=args.host,
        port=args.port,
        token_file=args.auth_token_file,
        allowed_hosts=args.allowed_hosts,
        allowed_origins=args.allowed_origins,
        stateless=args.stateless,
    )
