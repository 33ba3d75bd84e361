"""Everything that speaks to the Kyma gateway: the HTTP client, retries, pacing, the tier ladder and
defensive reading of what comes back. The only package that imports `httpx2`."""
