"""Settings read once from the environment; the only place environment variables are parsed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from kyma_mcp.progress import PROGRESS_INTERVAL_SECONDS

DEFAULT_BASE_URL = "https://kymaapi.com/v1"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and is safe to print."""


def split_list(value: str) -> tuple[str, ...]:
    """A comma-separated list, e.g. `"a.example, b.example"`, as its non-empty items."""
    return tuple(item for item in (part.strip() for part in value.split(",")) if item)


MiB = 1024 * 1024


class Bounds(BaseModel):
    """How much of anything an upstream or a client can make kyma-mcp read, keep or do in one call.

    Each has a `KYMA_MAX_*` variable; the defaults keep one call well under +100 MiB of memory.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sse_line_bytes: int = Field(default=1 * MiB, ge=1024)
    """One line of a chat stream; a longer one ends the stream."""
    sse_event_bytes: int = Field(default=1 * MiB, ge=1024)
    """One SSE event (its `data:` lines together)."""
    stream_bytes: int = Field(default=32 * MiB, ge=64 * 1024)
    """All bytes read from one chat stream; reading stops there and the reply says it was cut."""
    reply_chars: int = Field(default=40_000, ge=100)
    """Longest reply returned (it is carried twice: text and structured); reading stops soon after."""
    catalog_bytes: int = Field(default=8 * MiB, ge=64 * 1024)
    """The live `/models` body; a larger one falls back to the bundled snapshot."""
    catalog_models: int = Field(default=2000, ge=10)
    """Catalog entries kept; the rest are ignored."""
    json_bytes: int = Field(default=1 * MiB, ge=4096)
    """Any other JSON answer (jobs, limits, balance, capabilities)."""
    error_bytes: int = Field(default=64 * 1024, ge=1024)
    """An error answer's body; only its first bytes are read."""
    field_chars: int = Field(default=200, ge=16)
    """A header or JSON text field echoed into a result (model, finish_reason, alias)."""
    download_bytes: int = Field(default=32 * MiB, ge=64 * 1024)
    """One downloaded image file."""
    image_bytes_per_call: int = Field(default=64 * MiB, ge=64 * 1024)
    """All images one call downloads, or reads from local files for chat."""
    image_pixels: int = Field(default=16_777_216, ge=65_536)
    """Decoded pixels per image (Pillow's decompression-bomb limit); larger ones get no preview."""
    http_sessions: int = Field(default=1000, ge=1)
    """Live Streamable HTTP sessions; at the bound the least recently used idle one is closed."""
    http_session_idle_seconds: float = Field(default=900.0, gt=0)
    """A session with no request for this long is closed."""
    http_streams: int = Field(default=100, ge=1)
    """Open server-to-client streams (GET /mcp, GET /sse) at once; at the bound the least recently active closes."""
    http_header_seconds: float = Field(default=10.0, gt=0)
    """A connection must send a request's headers within this (and each body part): half-open ones drop."""
    http_connections: int = Field(default=2000, ge=16)
    """Open HTTP connections (at most the open-files limit less 192); beyond it the connection that has
    waited longest for its first request head is closed, so half-open ones cannot use every descriptor."""
    log_lines_per_second: int = Field(default=20, ge=1)
    """Log lines of one kind per second; the rest are counted and summarised."""


_BOUND_ENV = {f"KYMA_MAX_{name.upper()}": name for name in Bounds.model_fields}


class Timing(BaseModel):
    """How long kyma-mcp pauses between retries and status checks, and waits for what may not come.

    Internal tuning, so no environment variable sets it: the defaults are the production schedule.
    Tests shorten it with `Settings(timing=Timing(...))` instead of patching module constants.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backoff_base_seconds: float = Field(default=0.5, ge=0)
    """The first retry's pause; it doubles with each retry, minus up to 25% jitter."""
    backoff_max_seconds: float = Field(default=8.0, ge=0)
    """The longest pause between retries (a longer Retry-After from Kyma is still honoured)."""
    job_poll_seconds: tuple[Annotated[float, Field(ge=0)], ...] = Field(default=(1.0, 1.0, 1.5, 1.5, 2.0), min_length=1)
    """Pause before each image job status check; the last one repeats (Kyma asks for a poll every 1-2 s)."""
    limits_retry_seconds: float = Field(default=30.0, ge=0)
    """A failed read of `/auth/limits` is retried after this long, doubling up to the refresh interval;
    also the shortest time between a read and the re-read a 429 asks for."""
    turn_wait_seconds: float = Field(default=0.1, gt=0)
    """Pause between checks while a conversation's previous turn is still in flight."""
    store_busy_seconds: float = Field(default=5.0, gt=0)
    """A SQLite store's write waits this long for another program's write lock, then reports it locked."""
    replica_lag_seconds: float = Field(default=5.0, ge=0)
    """Replica lag: a 404 this soon after an image submit, or a success without its URL for this long,
    is waited out."""
    progress_interval_seconds: float = Field(default=PROGRESS_INTERVAL_SECONDS, ge=0)
    """Streamed tokens (and waits for a previous turn) are reported to the client at most this often."""


class Settings(BaseModel):
    """Everything kyma-mcp reads from its environment, validated, frozen.

    The API key is a `SecretStr`, so it never appears in a repr, a log line or an error.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL
    default_model: str = Field(default="qwen-3.6-plus", min_length=1)
    default_image_model: str = Field(default="recraft-v4", min_length=1)
    tool_timeout_seconds: float = Field(default=50.0, gt=0, le=3600)
    max_retries: int = Field(default=2, ge=0, le=10)
    tier: int | None = Field(default=None, ge=0, le=4)
    rate_window_seconds: float = Field(default=60.0, gt=0, le=3600)
    output_dir: Path | None = None
    mcp_auth_token: SecretStr | None = None
    mcp_allowed_hosts: tuple[str, ...] = ()
    mcp_allowed_origins: tuple[str, ...] = ()
    mcp_stateless: bool = False
    """Streamable HTTP without sessions (KYMA_MCP_STATELESS), for replicas behind a load balancer."""
    bounds: Bounds = Bounds()
    timing: Timing = Timing()
    image_dirs: tuple[Path, ...] | None = None
    """Folders chat's `images` may read local files from (KYMA_IMAGE_DIRS). None: the transport's
    default (stdio: home and the temp folder; HTTP: none). Use `allowed_image_dirs()`."""

    @field_validator("image_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Path(item).expanduser() for item in value.replace(os.pathsep, ",").split(",") if item.strip())
        return value

    def allowed_image_dirs(self) -> tuple[Path, ...]:
        """The folders local images may come from, resolved after symlinks."""
        if self.image_dirs is not None:
            folders = self.image_dirs
        else:
            import tempfile

            folders = (Path.home(), Path(tempfile.gettempdir()))
        return tuple(folder.resolve() for folder in folders)

    store: Literal["on", "off"] = "on"
    store_url: SecretStr | None = None
    conversation_days: int = Field(default=30, ge=1, le=36_500)
    allow_unpriced: bool = False
    budget_usd: float | None = Field(default=None, ge=0)
    budget_period: Literal["day", "week", "month", "session"] = "day"
    confirm_above_usd: float | None = Field(default=None, ge=0)
    result_facts: bool = False
    """Text-first results (chat, list_models, recommend_model, the image tools) also carry their facts
    as JSON in `_meta` for programs; off, a short chat's wire is its reply and ~200 B."""

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_list(value) if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http(s) URL such as {DEFAULT_BASE_URL}")
        return value.rstrip("/")

    @field_validator("output_dir")
    @classmethod
    def _absolute_folder(cls, value: Path | None) -> Path | None:
        # Hosts start servers in arbitrary working folders (often `/`): a relative path is a trap.
        if value is None:
            return None
        try:
            value = value.expanduser()
        except RuntimeError:  # `~user/…` for a user that does not exist, or no home folder at all
            raise ValueError("names a home folder that does not exist; use an absolute path") from None
        if not value.is_absolute():
            raise ValueError("must be an absolute path (hosts start servers in arbitrary folders)")
        return value

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else ""
        if value is None or url.startswith(("postgresql://", "postgres://")):
            return value
        if url.startswith("sqlite://") and Path(url.removeprefix("sqlite://")).is_absolute():
            return value
        raise ValueError("must be postgresql://user:password@host/database or sqlite:///absolute/path.sqlite3")

    @property
    def secrets(self) -> tuple[str, ...]:
        """The API key and the HTTP bearer token: never shown, in any form, in any channel."""
        values = (self.api_key, self.mcp_auth_token)
        return tuple(value.get_secret_value() for value in values if value and value.get_secret_value())

    @property
    def has_api_key(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from `KYMA_*` variables; empty values count as unset.

        Raises:
            ConfigError: a value is invalid; the message names the variable.
        """
        fields: dict[str, object] = {}
        for variable, field in _ENV_FIELDS.items():
            raw = env.get(variable, "").strip()
            if raw:
                fields[field] = raw
        bounds = {field: raw for variable, field in _BOUND_ENV.items() if (raw := env.get(variable, "").strip())}
        if bounds:
            fields["bounds"] = bounds
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [str(part) for part in first["loc"]]
            field = loc[0] if loc else "?"
            if field == "bounds" and len(loc) > 1:
                variable = f"KYMA_MAX_{loc[1].upper()}"
                raise ConfigError(f"{variable}={bounds.get(loc[1])!r} is invalid: {first['msg']}") from None
            variable = next((v for v, f in _ENV_FIELDS.items() if f == field), field)
            shown = "(hidden)" if field in _SECRET_FIELDS else repr(fields.get(field))
            raise ConfigError(f"{variable}={shown} is invalid: {first['msg']}") from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(value: str) -> str:
    """The logging level named by `--log-level` / `KYMA_LOG_LEVEL`, upper-cased.

    Raises:
        ConfigError: not one of `LOG_LEVELS`.
    """
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(
            f"KYMA_LOG_LEVEL (or --log-level) {value[:40]!r} is invalid: use one of {', '.join(LOG_LEVELS)}"
        )
    return level


_ENV_FIELDS = {
    "KYMA_API_KEY": "api_key",
    "KYMA_BASE_URL": "base_url",
    "KYMA_DEFAULT_MODEL": "default_model",
    "KYMA_DEFAULT_IMAGE_MODEL": "default_image_model",
    "KYMA_TOOL_TIMEOUT_SECONDS": "tool_timeout_seconds",
    "KYMA_MAX_RETRIES": "max_retries",
    "KYMA_TIER": "tier",
    "KYMA_RATE_WINDOW_SECONDS": "rate_window_seconds",
    "KYMA_OUTPUT_DIR": "output_dir",
    "KYMA_IMAGE_DIRS": "image_dirs",
    "KYMA_MCP_AUTH_TOKEN": "mcp_auth_token",
    "KYMA_MCP_ALLOWED_HOSTS": "mcp_allowed_hosts",
    "KYMA_MCP_ALLOWED_ORIGINS": "mcp_allowed_origins",
    "KYMA_MCP_STATELESS": "mcp_stateless",
    "KYMA_STORE": "store",
    "KYMA_STORE_URL": "store_url",
    "KYMA_CONVERSATION_DAYS": "conversation_days",
    "KYMA_ALLOW_UNPRICED": "allow_unpriced",
    "KYMA_BUDGET_USD": "budget_usd",
    "KYMA_BUDGET_PERIOD": "budget_period",
    "KYMA_CONFIRM_ABOVE_USD": "confirm_above_usd",
    "KYMA_RESULT_FACTS": "result_facts",
}
_SECRET_FIELDS = {"api_key", "mcp_auth_token", "store_url"}


def environment_defaults() -> list[tuple[str, str]]:
    """Each `KYMA_*` variable with its default as text (for `--help`); "unset" where there is none."""
    rows: list[tuple[str, str]] = []
    for variable, field in _ENV_FIELDS.items():
        default: object = Settings.model_fields[field].default
        rows.append((variable, "unset" if default in (None, "", ()) else str(default)))
    return rows
