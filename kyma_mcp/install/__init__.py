"""`kyma-mcp install` / `uninstall`: write (or remove) this server's entry in an MCP host's config.

`hosts` knows where each host keeps its config and what an entry looks like there; `documents`
reads, merges, backs up and writes JSON and TOML files without touching anyone else's entries;
`command` is the command line. Nothing here is imported when the server starts.
"""
