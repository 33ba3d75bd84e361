"""Regular expressions compiled on first use, not at import: start-up pays for none of them.

The recommender's cues and sizes and the HTTP allowlist checks are a dozen large patterns (≈ 8 ms of
compiling at import); a stdio server that never recommends or serves HTTP never needs them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator


class LazyPattern:
    """A `re.Pattern` made the first time it is used (search, match, fullmatch, finditer)."""

    __slots__ = ("_compiled", "_flags", "_source")
    compiled_count = 0
    """How many LazyPatterns have been compiled in this process (the start-up test reads it)."""

    def __init__(self, source: str, flags: int = 0) -> None:
        self._source = source
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self._source, self._flags)
            LazyPattern.compiled_count += 1
        return self._compiled

    def search(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.pattern.search(string, pos, endpos)

    def match(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.pattern.match(string, pos, endpos)

    def fullmatch(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[str] | None:
        return self.pattern.fullmatch(string, pos, endpos)

    def finditer(self, string: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(string, pos, endpos)
