# kyma-mcp over Streamable HTTP, for sharing one server between clients or running it elsewhere.
#   docker build -t kyma-mcp .
#   docker run --rm -p 8000:8000 -e KYMA_API_KEY -e KYMA_MCP_AUTH_TOKEN \
#     -e KYMA_MCP_ALLOWED_HOSTS=localhost:8000 kyma-mcp
# Listening on 0.0.0.0 is refused at start-up unless KYMA_MCP_AUTH_TOKEN (at least 32 characters)
# and KYMA_MCP_ALLOWED_HOSTS are set: the container exits with one line naming what is missing.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kyma_mcp ./kyma_mcp
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 kyma
COPY --from=build /install /usr/local
USER 10001
WORKDIR /home/kyma
ENV KYMA_OUTPUT_DIR=/home/kyma/images \
    PYTHONUNBUFFERED=1
EXPOSE 8000
# Any HTTP answer (401 without a token included) means the server is up; no answer means it is not.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["python", "-c", "import urllib.request as u, urllib.error as e, sys\ntry: u.urlopen('http://127.0.0.1:8000/mcp', timeout=4)\nexcept e.HTTPError: pass\nexcept OSError: sys.exit(1)"]
ENTRYPOINT ["kyma-mcp"]
CMD ["--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8000"]
