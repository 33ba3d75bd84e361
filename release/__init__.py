"""Build scripts for the hosts' own installers: the Claude Desktop bundle (`python -m release.mcpb`)."""
