"""Where generated images are kept: the output folder and readable, unique, safe file names.

The folder is `KYMA_OUTPUT_DIR`, else the platform's user data folder, never the host's working
directory (hosts start servers in arbitrary folders, often read-only ones). A name is built only
from sanitised parts of the job, e.g. `20261125-201530-flux-1.1-ultra-a-red-fox-6745a3c2e4b0f1a2b3c4d5e6-1.png`, so
a prompt can never steer a file outside the folder; the same job and index always get the same
name, which is how an image already saved is recognised instead of downloaded again.
"""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from datetime import datetime
from pathlib import Path

from kyma_mcp.errors import folder_error, unsafe_file_name_error, unwritable_file_error

APP_NAME = "kyma-mcp"
_SLUG_MAX_CHARS = 40
_MODEL_MAX_CHARS = 40
_JOB_CHARS = 64
"""The whole job id: Kyma's ids start with their creation second, so a prefix collides."""


def output_folder(configured: Path | None) -> Path:
    """The folder images are saved in, created on demand (`configured` is absolute: Settings checks it).

    Raises:
        PathDeniedError: the folder cannot be created.
    """
    if configured is None:
        import platformdirs  # lazy: only image tools need it

        folder = platformdirs.user_data_path(APP_NAME, appauthor=False) / "images"
    else:
        folder = configured
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(folder, exc.strerror) from None
    return folder.resolve()


def file_stem(*, created: datetime, model: str, prompt: str | None, job_id: str, index: int) -> str:
    """`<local time>-<model>-<prompt words>-<job id>-<index from 1>`: only `[a-z0-9.-]`."""
    when = created.astimezone().strftime("%Y%m%d-%H%M%S")
    model_part = _slug(model, _MODEL_MAX_CHARS, keep=".") or "model"
    prompt_part = _slug(prompt or "", _SLUG_MAX_CHARS) or "image"
    job_part = re.sub(r"[^a-z0-9]", "", job_id.lower())[:_JOB_CHARS] or "job"
    return f"{when}-{model_part}-{prompt_part}-{job_part}-{index}"


def find_saved(folder: Path, stem: str) -> Path | None:
    """The file an earlier call saved under this stem, whatever its extension."""
    return next((path for path in sorted(folder.glob(f"{stem}.*")) if path.is_file()), None)


def save(folder: Path, stem: str, extension: str, data: bytes) -> Path:
    """Write `data` as `<stem>.<extension>` in `folder`, atomically (a reader never sees half a file).

    Raises:
        PathDeniedError: the name would leave the folder, or the file cannot be written.
    """
    path = folder / f"{stem}.{extension}"
    if path.parent != folder or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", path.name):
        raise unsafe_file_name_error(path.name)  # unreachable by construction
    partial = folder / f".{stem}.{uuid.uuid4().hex[:8]}.part"
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise unwritable_file_error(path, exc.strerror) from None
    return path


def _slug(text: str, max_chars: int, keep: str = "") -> str:
    """Lower-case ASCII words joined by '-', cut at a word boundary."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(rf"[^a-z0-9{re.escape(keep)}]+", "-", ascii_text).strip("-.")
    slug = re.sub(r"\.{2,}", ".", slug)
    if len(slug) > max_chars:
        cut = slug[:max_chars]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return slug.strip("-.")
