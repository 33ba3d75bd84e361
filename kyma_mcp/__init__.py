"""kyma-mcp: an MCP server that gives agents the models of the Kyma API gateway."""

__version__ = "0.1.0"
"""The one place the version is written; pyproject reads it (importlib.metadata would cost ~50 ms at start-up)."""
