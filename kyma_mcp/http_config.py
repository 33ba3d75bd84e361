"""What an HTTP server may start with: its token, its Host/Origin allowlists, and the refusal rule.

Kept free of the MCP SDK and uvicorn, so a refused start-up fails in a fraction of a second.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kyma_mcp.patterns import LazyPattern
from kyma_mcp.settings import Bounds, ConfigError, Settings

HttpTransport = Literal["sse", "streamable-http"]

MIN_TOKEN_LENGTH = 16

_HOST_PATTERN = LazyPattern(r"^(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(:(\d{1,5}|\*))?$")
_ORIGIN_PATTERN = LazyPattern(r"^https?://(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(:(\d{1,5}|\*))?$")
_ENDPOINTS: dict[HttpTransport, str] = {"streamable-http": "/mcp", "sse": "/sse"}


@dataclass(frozen=True)
class HttpConfig:
    """How to serve over HTTP; `from_settings` refuses an exposed, unprotected server."""

    transport: HttpTransport
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    """The bearer token every request must carry; None means no authentication (loopback only)."""
    allowed_hosts: tuple[str, ...] = ()
    """Host header values accepted besides loopback: `name`, `name:port` or `name:*`."""
    allowed_origins: tuple[str, ...] = ()
    """Origin header values accepted besides loopback ones, e.g. `https://kyma.example.com`."""
    bounds: Bounds = field(default_factory=Bounds)
    """Sessions, streams and timeouts (`KYMA_MAX_HTTP_*`)."""
    stateless: bool = False
    """Streamable HTTP without sessions: any replica behind a load balancer can answer any request."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: HttpTransport,
        host: str,
        port: int,
        token_file: Path | None = None,
        allowed_hosts: tuple[str, ...] | None = None,
        allowed_origins: tuple[str, ...] | None = None,
        stateless: bool = False,
    ) -> HttpConfig:
        """Combine command-line values with the environment's; command-line values win.

        Raises:
            ConfigError: the token or an allowlist entry is malformed, or `host` is not
                loopback and the server would run without a token or a Host allowlist.
        """
        if token_file is not None:
            token: str | None = _read_token(token_file)
        else:
            token = settings.mcp_auth_token.get_secret_value() if settings.mcp_auth_token else None
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"the bearer token is shorter than {MIN_TOKEN_LENGTH} characters; "
                'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        config = cls(
            transport=transport,
            host=host,
            port=port,
            token=token,
            allowed_hosts=settings.mcp_allowed_hosts if allowed_hosts is None else allowed_hosts,
            allowed_origins=settings.mcp_allowed_origins if allowed_origins is None else allowed_origins,
            bounds=settings.bounds,
            stateless=stateless or settings.mcp_stateless,
        )
        config.check()
        return config

    def check(self) -> None:
        """Raise `ConfigError` for a bad port or allowlist entry, or an exposed, unprotected server.

        Off loopback both are needed: the token keeps strangers out, and the Host allowlist
        is what defeats DNS rebinding. Origins stay optional: without them every browser
        request carrying an Origin is refused, which is the safe default.
        """
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port} is not a TCP port (1-65535)")
        if self.stateless and self.transport != "streamable-http":
            raise ConfigError(
                "--stateless (KYMA_MCP_STATELESS) is for --transport streamable-http: SSE keeps one connection "
                "per session"
            )
        for entry in self.allowed_hosts:
            if not _HOST_PATTERN.match(entry):
                raise ConfigError(f"allowed host {entry!r} is not a host name, optionally with :port or :*")
        for entry in self.allowed_origins:
            if not _ORIGIN_PATTERN.match(entry):
                raise ConfigError(
                    f"allowed origin {entry!r} is not scheme://host[:port], e.g. https://kyma.example.com"
                )
        if is_loopback(self.host):
            return
        missing = [
            *(["a bearer token (KYMA_MCP_AUTH_TOKEN or --auth-token-file)"] if self.token is None else []),
            *(["--allowed-hosts (KYMA_MCP_ALLOWED_HOSTS)"] if not self.allowed_hosts else []),
        ]
        if missing:
            raise ConfigError(
                f"refusing to listen on non-loopback host {self.host}: it needs {' and '.join(missing)}; "
                "or use --host 127.0.0.1"
            )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{_ENDPOINTS[self.transport]}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"--auth-token-file {path}: cannot read it ({reason})") from None
    if not token:
        raise ConfigError(f"--auth-token-file {path} is empty")
    return token
