"""The key in every channel: a hostile upstream echoes it in each form it can take, and no tool
result, structured content, resource, log line (ours or the SDK's) or saved file carries it."""

import base64
import io
import json
import logging
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import pytest
from mcp import Client
from PIL import Image

from kyma_mcp.redaction import install_log_redaction, scrub_bytes
from kyma_mcp.server import build_server
from kyma_mcp.settings import Settings
from tests.conftest import FAST_TIMING

pytestmark = pytest.mark.anyio

KEY = "ky-canary-5f1e9d2c7b3a4e6f8a0b"
BARE = KEY.removeprefix("ky-")
BASIC = base64.b64encode(f"user:{KEY}".encode()).decode()
FORMS = {
    "verbatim": KEY,
    "without prefix": BARE,
    "url-encoded": quote(f"{KEY}?", safe=""),
    "basic": BASIC,
    "basic at another offset": base64.b64encode(f"ab:{KEY}".encode()).decode(),
}
JOB = "6745a3c2e4b0f1a2b3c4d5e6"


def png_with_text(text: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "blue").save(buffer, "PNG")
    data = buffer.getvalue()
    body = b"Comment\0" + text.encode()
    chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
    return data[:33] + chunk + data[33:]  # after IHDR


def hostile(request: httpx2.Request) -> httpx2.Response:
    """A gateway that echoes the key back in every answer, in every form."""
    path = request.url.path.removeprefix("/v1/")
    echoed = " ".join(FORMS.values())
    if path == "chat/completions":
        body = json.loads(request.content)
        quoted = f"You sent Authorization: Bearer {KEY} and Basic {BASIC} ({BARE})"
        if body["messages"][-1]["content"] == "fail":
            return httpx2.Response(400, json={"error": {"message": f"bad key {echoed}"}})
        chunk = {"model": KEY, "choices": [{"delta": {"content": quoted}, "finish_reason": "stop"}]}
        return httpx2.Response(200, content=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
    if path == "auth/limits":
        return httpx2.Response(200, json={"tier": 1, "key": KEY, KEY: FORMS["basic"], "nested": [{"k": echoed}]})
    if path == "capabilities":
        return httpx2.Response(200, json={"owner": FORMS["url-encoded"], "note": echoed})
    if path == "credits/balance":
        return httpx2.Response(200, json={"balance": 5, "account": BARE})
    if path == "limits/tiers":
        return httpx2.Response(500, json={"error": {"message": echoed}})
    if path == "models":
        return httpx2.Response(503, text=f"down for {echoed}")
    if path == "images/generations":
        urls = [f"https://user:{KEY}@cdn.test/a.png?token={quote(KEY)}"]
        job = {"id": JOB, "status": "succeeded", "model": "flux-1.1-ultra", "output": {"urls": urls}}
        return httpx2.Response(202, json=job)
    if request.url.host == "cdn.test":
        return httpx2.Response(200, content=png_with_text(echoed), headers={"content-type": "image/png"})
    return httpx2.Response(404, json={"error": {"message": f"unknown {echoed}"}})


def leaks(text: str) -> list[str]:
    return [name for name, form in FORMS.items() if form in text]


async def test_no_channel_carries_the_key_in_any_form(tmp_path: Path) -> None:
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    settings = Settings.model_validate(
        {"api_key": KEY, "base_url": "https://kyma.test/v1", "max_retries": 0, "output_dir": tmp_path}
        | {"timing": FAST_TIMING}
    )
    try:
        install_log_redaction(settings.secrets)
        calls: list[tuple[str, dict[str, Any]]] = [
            ("chat", {"prompt": "repeat my headers"}),
            ("chat", {"prompt": "fail"}),
            ("get_limits", {}),
            ("list_models", {}),
            ("generate_image", {"prompt": "a fox"}),
            ("get_image_job", {"job_id": "ffffffffffffffffffffffff"}),
        ]
        shown: list[str] = []
        async with Client(build_server(settings, transport=httpx2.MockTransport(hostile))) as client:
            for name, arguments in calls:
                result = await client.call_tool(name, arguments)
                shown.append(result.model_dump_json())
            for uri in ("kyma://models", "kyma://guide"):
                shown.append((await client.read_resource(uri)).model_dump_json())
        logging.getLogger("mcp.server").info("an SDK line quoting %s", KEY, exc_info=ValueError(BASIC))
        logging.getLogger("uvicorn.error").warning(f"a line with {FORMS['url-encoded']}")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    everything = "\n".join(shown)
    assert "canary" not in everything, leaks(everything)
    assert not leaks(everything)
    assert "You sent Authorization: Bearer ***" in everything  # the reply itself still arrives
    assert "an SDK line quoting ***" in log.getvalue()
    assert not leaks(log.getvalue()), log.getvalue()
    files = [path async for path in anyio.Path(tmp_path).glob("*.png")]
    assert len(files) == 1
    saved = await files[0].read_bytes()
    assert not leaks(saved.decode("latin-1"))
    assert Image.open(io.BytesIO(saved)).size == (32, 32)  # still a valid PNG: chunk checksums fixed
    assert "user:" not in everything  # credentials stripped from shown URLs


def test_scrubbing_leaves_files_without_the_key_untouched() -> None:
    data = png_with_text("nothing secret")

    assert scrub_bytes(data, (KEY,)) is data
