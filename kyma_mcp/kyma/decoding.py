"""Response bodies decoded in bounded pieces, so a small compressed body cannot expand in one step.

A gzip or deflate "bomb" packs about 1,000 decoded bytes into each byte on the wire: one 64 KiB
network read can hold 64 MiB of zeros, and a 4 MiB body 4 GiB. kyma-mcp does not leave decoding
to the HTTP library (whose per-read bound depends on its version): it asks only for
`ACCEPT_ENCODING`, reads the raw bytes and inflates them at most `PIECE_BYTES` at a time, so
every reader's byte bound (`Bounds.*_bytes`) is checked before the next piece is made.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator, Iterator

import httpx2

ACCEPT_ENCODING = "gzip, deflate"
"""What kyma-mcp asks for: the codings `decoded` inflates itself (never br or zstd, even when installed)."""
PIECE_BYTES = 64 * 1024
"""The most one decoding step may produce."""
MAX_CODINGS = 3
"""More stacked content-codings than this are refused (a real answer has one)."""
_GZIP = frozenset({"gzip", "x-gzip"})
_PASSED = frozenset({"", "identity"})


class _Inflater:
    """One gzip or deflate layer, inflating at most `PIECE_BYTES` per step."""

    def __init__(self, coding: str) -> None:
        self._gzip = coding in _GZIP
        self._raw_tried = False
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            piece = self._inflate.decompress(data, PIECE_BYTES)
        except zlib.error as exc:
            if self._gzip or self._raw_tried:
                raise httpx2.DecodingError(str(exc)) from None
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate.
            self._raw_tried = True
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self.feed(data)
            return
        self._raw_tried = True  # the wrapping is settled after the first good step
        while piece:
            yield piece
            try:
                piece = self._inflate.decompress(self._inflate.unconsumed_tail, PIECE_BYTES)
            except zlib.error as exc:
                raise httpx2.DecodingError(str(exc)) from None

    def finish(self) -> Iterator[bytes]:
        """What is left once all input is in: nothing more than one step's worth (the tail was drained)."""
        yield from self.feed(b"")


def _layers(response: httpx2.Response) -> list[_Inflater]:
    """The inflaters for the answer's `Content-Encoding`, outermost (last applied) first.

    Codings other than gzip and deflate were not asked for; their bytes are passed on as they
    are (as httpx does), so a reader sees what it sees and refuses it by its own rules.

    Raises:
        httpx2.DecodingError: more than `MAX_CODINGS` codings are stacked.
    """
    codings = [value.strip().lower() for value in response.headers.get_list("content-encoding", split_commas=True)]
    inflated = [coding for coding in codings if coding in _GZIP or coding == "deflate"]
    if len([coding for coding in codings if coding not in _PASSED]) > MAX_CODINGS:
        raise httpx2.DecodingError(f"more than {MAX_CODINGS} content-codings")
    return [_Inflater(coding) for coding in reversed(inflated)]


async def decoded(response: httpx2.Response) -> AsyncGenerator[bytes]:
    """The body of a streamed response, decoded, in pieces of at most `PIECE_BYTES` (raw pieces of an
    unencoded body come as the network delivered them).

    Raises:
        httpx2.DecodingError: the body is not what its `Content-Encoding` says.
        httpx2.TransportError: the connection broke.
    """
    if response.is_stream_consumed:  # read before it came here (an in-memory transport): already decoded
        content = response.content
        for start in range(0, len(content), PIECE_BYTES):
            yield content[start : start + PIECE_BYTES]
        return
    layers = _layers(response)
    async for raw in response.aiter_raw():
        for piece in _through(layers, raw):
            yield piece
    for index, layer in enumerate(layers):
        for rest in layer.finish():
            for piece in _through(layers[index + 1 :], rest):
                yield piece


def _through(layers: list[_Inflater], data: bytes) -> Iterator[bytes]:
    if not layers:
        if data:
            yield data
        return
    for piece in layers[0].feed(data):
        yield from _through(layers[1:], piece)
