"""A host's config file as a document: read, change one server entry, show the change, back up, write.

JSON files are rewritten with the indentation they had. TOML goes through tomlkit, which keeps
the user's comments, ordering and formatting around the one table we touch (a plain writer
such as tomli-w would drop every comment in a hand-edited `config.toml`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from kyma_mcp.install.hosts import Format


class DocumentError(Exception):
    """The file cannot be changed safely; the message names the file and what to do."""


@dataclass
class Document:
    path: Path
    format: Format
    before: str | None
    """The file's text as read; None when it does not exist yet."""
    data: MutableMapping[str, Any]

    @classmethod
    def load(cls, path: Path, format: Format) -> Document:
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return cls(path, format, None, _empty(format))
        except OSError as exc:
            raise DocumentError(f"cannot read {path}: {exc.strerror}") from None
        if not text.strip():
            return cls(path, format, text, _empty(format))
        return cls(path, format, text, _parse(path, format, text))

    def servers(self, section: str) -> MutableMapping[str, Any] | None:
        table = self.data.get(section)
        if table is None:
            return None
        if not isinstance(table, MutableMapping):
            raise DocumentError(f"{self.path}: `{section}` is not a table of servers; fix it by hand first")
        return cast(MutableMapping[str, Any], table)

    def entry(self, section: str, name: str) -> Any:
        servers = self.servers(section)
        return None if servers is None else servers.get(name)

    def set_entry(self, section: str, name: str, entry: dict[str, Any]) -> None:
        servers = self.servers(section)
        if servers is None:
            servers = _new_section(self.format)
            self.data[section] = servers
        servers[name] = _table(self.format, entry)

    def remove_entry(self, section: str, name: str) -> bool:
        servers = self.servers(section)
        if servers is None or name not in servers:
            return False
        del servers[name]
        return True

    def text(self) -> str:
        if self.format == "toml":
            import tomlkit

            return tomlkit.dumps(self.data)  # pyright: ignore[reportUnknownMemberType]
        return json.dumps(self.data, indent=_indent(self.before), ensure_ascii=False) + "\n"

    def diff(self, hide: str | None = None) -> str:
        """A unified diff of the change, with the secret `hide` masked."""
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            self.text().splitlines(keepends=True),
            fromfile=f"{self.path} (before)" if self.before is not None else "/dev/null",
            tofile=str(self.path),
        )
        shown = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        return mask(shown, hide)

    def write(self, *, secret: bool) -> Path | None:
        """Back the old file up (timestamped, beside it), then replace it atomically; returns the backup.

        A file that holds a key gets owner-only permissions when it is new.
        """
        backup = backup_file(self.path) if self.before is not None else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(self.text())
            if self.before is not None:
                shutil.copymode(self.path, temporary)
            elif secret:
                os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return backup


def backup_file(path: Path) -> Path | None:
    """Copy `path` to `NAME.kyma-mcp-YYYYMMDD-HHMMSS.bak` beside it (never overwriting one)."""
    if not path.exists():
        return None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.kyma-mcp-{stamp}.bak")
    counter = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.kyma-mcp-{stamp}-{counter}.bak")
        counter += 1
    shutil.copy2(path, backup)
    return backup


def mask(text: str, secret: str | None) -> str:
    """`text` with `secret` shown as `ky-…last4` at most."""
    return text.replace(secret, masked(secret)) if secret else text


def masked(secret: str) -> str:
    prefix = "ky-" if secret.startswith("ky-") else ""
    return f"{prefix}…{secret[-4:]}" if len(secret) >= 12 else "…"


def _parse(path: Path, format: Format, text: str) -> MutableMapping[str, Any]:
    if format == "toml":
        import tomlkit
        from tomlkit.exceptions import ParseError

        try:
            return tomlkit.parse(text)
        except ParseError as exc:
            raise DocumentError(f"{path} is not valid TOML ({exc}); fix it, then run this again") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"{path} is not plain JSON (line {exc.lineno}: {exc.msg}; comments or trailing commas?). "
            "Nothing was changed: remove them or add the entry by hand (see --dry-run for it)."
        ) from None
    if not isinstance(data, dict):
        raise DocumentError(f"{path} does not hold a JSON object; fix it by hand first")
    return cast(dict[str, Any], data)


def _empty(format: Format) -> MutableMapping[str, Any]:
    if format == "toml":
        import tomlkit

        return tomlkit.document()
    return {}


def _new_section(format: Format) -> MutableMapping[str, Any]:
    if format == "toml":
        import tomlkit

        return tomlkit.table(is_super_table=True)  # `[mcp_servers.NAME]`, no empty `[mcp_servers]` header
    return {}


def _table(format: Format, entry: dict[str, Any]) -> Any:
    if format == "json":
        return entry
    import tomlkit

    table = tomlkit.table()
    subtables: list[tuple[str, Any]] = []  # after the plain keys, as TOML requires
    for key, value in entry.items():
        if isinstance(value, dict):
            sub = tomlkit.table()
            for sub_key, sub_value in cast(dict[str, Any], value).items():
                sub[sub_key] = sub_value
            subtables.append((key, sub))
        else:
            table[key] = value
    for key, sub in subtables:
        table[key] = sub
    return table


def _indent(text: str | None) -> int | str:
    """The indentation the file used (2 by default), so a rewrite changes no more lines than needed."""
    found = re.search(r"^([ \t]+)\S", text or "", re.MULTILINE)
    if found is None:
        return 2
    indent = found.group(1)
    return indent if "\t" in indent else len(indent)
