"""Serving the emulator: in a background thread for tests and demos, or as `kyma-mcp emulator`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import uvicorn

from kyma_mcp.emulator.app import build_app
from kyma_mcp.emulator.chat import StreamDropped
from kyma_mcp.emulator.dialects import DIALECTS
from kyma_mcp.emulator.state import EmulatorState
from kyma_mcp.emulator.switches import Switches

logger = logging.getLogger(__name__)

_STARTUP_TIMEOUT_SECONDS = 10.0
_GRACEFUL_SHUTDOWN_SECONDS = 1
"""Backstop for requests still open at shutdown (e.g. a long `latency_ms`); hung ones let go at once."""


@dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator: where it listens, and its live switches and state."""

    root_url: str
    """E.g. "http://127.0.0.1:54321"; image files are served under it."""
    switches: Switches
    state: EmulatorState

    @property
    def base_url(self) -> str:
        """What `KYMA_BASE_URL` should be, e.g. "http://127.0.0.1:54321/v1"."""
        return f"{self.root_url}/v1"


class _Server(uvicorn.Server):
    """uvicorn, made to let hung requests go at shutdown and to return cleanly after a signal."""

    def __init__(self, config: uvicorn.Config, state: EmulatorState) -> None:
        super().__init__(config)
        self._state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._state.closing.set()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn's version re-raises the signal once serving stops, which would turn a clean
        # Ctrl-C into a KeyboardInterrupt traceback and SIGTERM into a kill.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _QuietDroppedStreams(logging.Filter):
    """`drop_stream_after_chunks` is a deliberate fault; uvicorn need not log it as a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamDropped))


def _server(state: EmulatorState) -> _Server:
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _QuietDroppedStreams) for existing in uvicorn_logger.filters):
        uvicorn_logger.addFilter(_QuietDroppedStreams())
    config = uvicorn.Config(
        build_app(state),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        ws="none",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )
    return _Server(config, state)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _root_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ipaddress.ip_address(host).is_unspecified:  # bound to every interface; loopback is one of them
        host = "::1" if ":" in host else "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def running_emulator(
    switches: Switches | None = None, *, host: str = "127.0.0.1"
) -> Generator[EmulatorHandle, None, None]:
    """Serve an emulator on a free port of `host` in a daemon thread, for the `with` block.

    Raises:
        RuntimeError: the server did not start within 10 s.
    """
    state = EmulatorState(switches or Switches())
    server = _server(state)
    sock = _bind(host, 0)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="kyma-emulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Kyma emulator did not start")
            time.sleep(0.005)
        yield EmulatorHandle(root_url=_root_url(sock), switches=state.switches, state=state)
    finally:
        server.should_exit = True
        thread.join(_GRACEFUL_SHUTDOWN_SECONDS + 1)
        if thread.is_alive():
            server.force_exit = True
            thread.join(1)
        sock.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kyma-mcp emulator",
        description="A local Kyma-compatible gateway for offline development and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument(
        "--dialect", choices=DIALECTS, default="kyma", help="kyma, documented or openai (default: %(default)s)"
    )
    parser.add_argument("--tier", type=int, choices=range(5), default=0, help="account tier 0-4 (default: 0)")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay before every /v1 response")
    parser.add_argument("--token-interval-ms", type=float, default=0, help="delay between streamed chunks")
    parser.add_argument("--balance", type=float, default=Switches.balance_usd, help="opening balance in USD")
    parser.add_argument(
        "--image-delay", type=float, default=Switches.image_delay_seconds, help="seconds from image submit to success"
    )
    parser.add_argument("--enforce-rate-limits", action="store_true", help="answer 429 beyond the tier's limits")
    parser.add_argument(
        "--rate-window", type=float, default=Switches.rate_window_seconds, help="rate-limit window in seconds"
    )
    return parser


def switches_from_args(args: argparse.Namespace) -> Switches:
    """The switches the command line asks for.

    Raises:
        ValueError: a value is out of range (e.g. a negative delay).
    """
    switches = Switches(
        dialect=args.dialect,
        tier=args.tier,
        latency_ms=args.latency_ms,
        token_interval_ms=args.token_interval_ms,
        balance_usd=args.balance,
        image_delay_seconds=args.image_delay,
        enforce_rate_limits=args.enforce_rate_limits,
        rate_window_seconds=args.rate_window,
    )
    if problems := switches.problems():
        raise ValueError("; ".join(problems))
    return switches


def main(argv: Sequence[str] | None = None) -> int:
    """`kyma-mcp emulator`: serve until SIGINT or SIGTERM; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        switches = switches_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        logger.error("kyma-mcp emulator: cannot listen on %s:%s: %s", args.host, args.port, exc.strerror or exc)
        return 1
    if not _is_loopback(args.host):
        logger.warning("kyma-mcp emulator: listening on %s, which is not loopback; it has no real auth.", args.host)
    state = EmulatorState(switches)
    base_url = f"{_root_url(sock)}/v1"
    logger.info(
        "Kyma emulator on %s (tier %d, $%g); point kyma-mcp at it with KYMA_BASE_URL=%s KYMA_API_KEY=ky-emulator",
        base_url,
        switches.tier,
        switches.balance_usd,
        base_url,
    )
    with sock:
        asyncio.run(_server(state).serve(sockets=[sock]))
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
