"""Rebuild the bundled catalog snapshot (`data/catalog.json`) from a live gateway's `/models` and `/pricing`.

    python -m kyma_mcp.snapshot [--base-url https://kymaapi.com/v1] [--out kyma_mcp/data/catalog.json]

`/models` entries are kept as the gateway sent them; `/pricing` rows (Kyma's source of truth for
prices) are merged into each entry's `pricing` under the `/models` names (`input`, `output`,
`per_image_usd`, `per_second_usd`). The file records when and from what it was built.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kyma_mcp.kyma.wire import JSONObject, json_object, number, objects
from kyma_mcp.settings import DEFAULT_BASE_URL

DEFAULT_OUT = Path(__file__).parent / "data" / "catalog.json"
_MEDIA_FIELDS = {"image": "per_image_usd", "video": "per_second_usd"}


def build_snapshot(
    models: Mapping[str, Any], pricing: Mapping[str, Any] | None, base_url: str, taken: str
) -> JSONObject:
    """The snapshot document: the live entries with `/pricing` merged in, the live aliases, and its provenance."""
    rows = {row["id"]: row for part in ("text", "media") for row in objects((pricing or {}).get(part)) if "id" in row}
    entries: list[JSONObject] = []
    for entry in objects(models.get("data")):
        row = rows.get(entry.get("id"), {})
        prices = dict(json_object(entry.get("pricing")))
        if (value := number(row.get("input_per_1m"))) is not None:
            prices["input"] = value
        if (value := number(row.get("output_per_1m"))) is not None:
            prices["output"] = value
        media = _MEDIA_FIELDS.get(str(row.get("modality")))
        if media and (value := number(row.get("usd_per_call"))) is not None:
            prices[media] = value
            prices.setdefault("mode", row.get("pricing_mode"))
        entries.append({**entry, "pricing": prices} if prices else entry)
    sources = [f"{base_url}/models"] + ([f"{base_url}/pricing"] if pricing else [])
    return {
        "object": "list",
        "snapshot": {"taken": taken, "built": f"{taken} by kyma_mcp.snapshot", "sources": sources},
        "aliases": json_object(models.get("aliases")),
        "data": entries,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch, build and write the snapshot; returns the exit code."""
    from kyma_mcp.kyma.probe import Unreachable, get_json

    parser = argparse.ArgumentParser(prog="python -m kyma_mcp.snapshot", description="Rebuild data/catalog.json.")
    parser.add_argument("--base-url", default=os.environ.get("KYMA_BASE_URL", DEFAULT_BASE_URL))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    base = str(args.base_url).rstrip("/")
    key = os.environ.get("KYMA_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        status, models = get_json(f"{base}/models", headers=headers)
        if models is None:
            raise Unreachable(f"/models answered HTTP {status}")
        status, pricing = get_json(f"{base}/pricing")
        pricing = pricing if status == 200 else None
    except Unreachable as exc:
        sys.stderr.write(f"kyma_mcp.snapshot: could not read {base}: {exc}\n")
        return 1
    document = build_snapshot(models, pricing, base, datetime.now(UTC).date().isoformat())
    args.out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
    sys.stderr.write(f"kyma_mcp.snapshot: {len(document['data'])} models written to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
