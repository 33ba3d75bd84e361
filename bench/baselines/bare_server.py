"""The SDK's floor for start-up, memory and shutdown: a bare one-tool `MCPServer` over stdio."""

from mcp.server import MCPServer

server = MCPServer("bare", log_level="WARNING")  # kyma-mcp's default log level


@server.tool()
async def echo(text: str) -> str:
    """Return the text."""
    return text


if __name__ == "__main__":
    server.run()
