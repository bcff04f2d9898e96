"""The manifest of a FHIR Bulk Data export, checked before anything is downloaded.

`manifest_json` refuses a manifest that is not JSON, has no
`transactionTime` or whose `output`/`error` are not lists; `export_files`
refuses an entry without a url. Each refusal is a `BatchSourceError` naming
the key, so a malformed export is never partly imported. Output files get
stable names (`Type.ndjson`, the n-th of a type `Type.n.ndjson`); a count
that is not an integer is treated as absent (the lines downloaded count).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from thumpflow.core.errors import BatchSourceError


@dataclass(slots=True, frozen=True)
class ExportFile:
    """One file a manifest names: its local name, resource type, URL and count, if any."""

    name: str
    type: str
    url: str
    count: int | None


def manifest_json(body: bytes) -> dict[str, Any]:
    """The export manifest in `body`; BatchSourceError when it is not a usable one."""
    try:
        manifest = json.loads(body)
    except ValueError:
        raise BatchSourceError("the export manifest is not JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("transactionTime"), str):
        raise BatchSourceError("the export manifest has no transactionTime")
    for key in ("output", "error"):
        if not isinstance(manifest.get(key, []), list):
            raise BatchSourceError(f"the export manifest's {key} is not a list")
    return manifest


def export_files(manifest: dict[str, Any], key: str, stem: str) -> list[ExportFile]:
    """The files of `manifest[key]` (`output` or `error`), named from `stem`, in order."""
    files: list[ExportFile] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(manifest.get(key, [])):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise BatchSourceError(f"the export manifest's {key}[{index}] has no url")
        type_ = item.get("type")
        type_ = type_ if isinstance(type_, str) and type_ else "Resource"
        name = stem.format(type=type_)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}.{seen[name]}"
        count = item.get("count")
        files.append(
            ExportFile(
                name=f"{name}.ndjson",
                type=type_,
                url=item["url"],
                count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            )
        )
    return files


def instant_seconds(text: str) -> float:
    """A FHIR instant as POSIX seconds; BatchSourceError when it is not one."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BatchSourceError("the export manifest's transactionTime is not an instant") from None
