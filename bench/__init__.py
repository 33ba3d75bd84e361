"""Benchmarks for kyma-mcp, each figure read against a baseline measured in the same run (see README, Performance)."""
