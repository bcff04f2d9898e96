"""Pausing and resuming destinations and channels: the writer operation.

Runs inside the backend writer's transaction (see `thumpflow.store.ops`); a
pause or resume writes its audit entry in the same transaction. A row exists
while a target is paused, so a restart resumes the paused state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thumpflow.core.search import PauseKind
from thumpflow.store.ops import WriteContext


@dataclass(slots=True, frozen=True)
class SetPaused:
    kind: PauseKind
    target_id: str
    paused: bool
    actor: str
    reason: str
    at: float


def set_paused(context: WriteContext, changes: list[SetPaused]) -> list[Any]:
    """Pause or resume targets, each audited (`paused` / `resumed`); True when it changed."""
    conn = context.conn
    answers: list[Any] = []
    for change in changes:
        if change.paused:
            cursor = conn.execute(
                "INSERT INTO pauses (kind, target_id, paused_at, actor, reason)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, target_id) DO NOTHING",
                (change.kind.value, change.target_id, change.at, change.actor, change.reason),
            )
        else:
            cursor = conn.execute(
                "DELETE FROM pauses WHERE kind = ? AND target_id = ?",
                (change.kind.value, change.target_id),
            )
        changed = cursor.rowcount > 0
        if changed:
            context.audit.append(
                [
                    (
                        change.at,
                        change.actor,
                        "paused" if change.paused else "resumed",
                        f"{change.kind.value}:{change.target_id}",
                        change.reason,
                    )
                ]
            )
        answers.append(changed)
    return answers
