"""kyma-mcp: an MCP server that gives agents the models of the Kyma API gateway."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kyma-mcp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
