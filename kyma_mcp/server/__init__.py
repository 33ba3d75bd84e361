"""The MCP server: the app and its lifespan (`app`), what every tool call shares (`context`), one module per
tool group (`chat`, `models`, `images`, `recommend`, `limits`), schema compaction (`schema`) and the HTTP
transports (`http`). With `demo`, the only importers of `mcp`."""

from kyma_mcp.server.app import build_server

__all__ = ["build_server"]
