"""A delivery body inside a JSON record: as text, or base64 when it is not UTF-8. Pure."""

from __future__ import annotations

import base64

__all__ = ["body_fields"]


def body_fields(body: bytes) -> dict[str, str]:
    """`{"body": <text>}` for a UTF-8 body; else `{"body": <base64>, "body_encoding": "base64"}`.

    The bytes are kept exactly either way: the text decodes back to them.
    """
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "body_encoding": "base64"}
