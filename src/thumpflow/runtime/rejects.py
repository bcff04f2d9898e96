"""Reprocessing a flow reject: its kept bytes, as they are or as an operator edited them.

`reprocess_reject` hands the bytes to the running channel's ingress exactly
as if its sender had sent them again, so the answer is what the sender
would have got: accepted (a new event, admitted durably), a duplicate of
an event already admitted, or rejected again (kept as a new reject with the
new reason). Before that, the act is audited (`reject.reprocessed`, subject
`reject:<id>`, the caller, the reason, `as received` or `edited` with the
SHA-256 of the bytes sent; never the bytes). The original reject is never
changed or removed: an edit is a new input beside it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thumpflow.core.errors import ThumpflowError
from thumpflow.core.event import AuditEntry

if TYPE_CHECKING:
    from thumpflow.runtime.engine import Engine


class RejectNotFoundError(ThumpflowError):
    """No kept reject has this id."""


@dataclass(frozen=True, slots=True)
class Reprocessed:
    """The answer the channel gave: its ACK code and, for a negative one, the error text."""

    reject_id: int
    channel_id: str
    edited: bool
    ack_code: str
    error: str | None


async def reprocess_reject(
    engine: Engine, reject_id: int, actor: str, reason: str, body: bytes | None = None
) -> Reprocessed:
    """Send a reject's bytes (or `body`, the edited bytes) through its channel again; audited."""
    reject = await engine.store.reject_by_id(reject_id)
    if reject is None:
        raise RejectNotFoundError(f"no reject {reject_id}")
    running = engine.channels.get(reject.channel_id)
    if running is None:
        raise ThumpflowError(f"channel {reject.channel_id!r} is not running here")
    raw = reject.raw if body is None else body
    how = "as received" if body is None else "edited"
    digest = hashlib.sha256(raw).hexdigest()[:16]
    await engine.store.append_audit(
        AuditEntry(
            engine.clock.now(),
            actor,
            "reject.reprocessed",
            f"reject:{reject_id}",
            f"{reason} ({how}, sha256 {digest})",
        )
    )
    answer = await running.ingress.receive(raw, f"reprocess:{actor}")
    code, error = _ack(answer)
    return Reprocessed(reject_id, reject.channel_id, body is not None, code, error)


def _ack(answer: bytes | None) -> tuple[str, str | None]:
    """(MSA-1, ERR-8 or MSA-3 text) of an ACK; the text only for a negative code."""
    if answer is None:
        return "", None
    code = ""
    error = None
    for segment in answer.replace(b"\n", b"\r").split(b"\r"):
        fields = segment.decode("utf-8", "replace").split("|")
        if fields[0] == "MSA" and len(fields) > 1:
            code = fields[1]
            error = fields[3] if len(fields) > 3 and fields[3] else error
        elif fields[0] == "ERR" and len(fields) > 8 and fields[8]:
            error = fields[8]
    return code, None if code in ("AA", "CA") else error
