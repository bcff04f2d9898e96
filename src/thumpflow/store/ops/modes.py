"""The operating mode in force: the writer operation and the read.

Runs inside the backend writer's transaction (see `thumpflow.store.ops`).
One row (`scope = 'engine'`) holds the mode in force, so a restart resumes
it; each change writes its `mode.changed` audit entry (subject
`mode:<mode>`, detail: the origin, the rule if any, and the reason) in the
same transaction. Recording the state already recorded (same mode, origin
and rule) writes nothing.
"""

from __future__ import annotations

from typing import Any

from thumpflow.core.modes import ModeOrigin, ModeState, OperatingMode
from thumpflow.store.ops import Db, WriteContext

_SCOPE = "engine"
_COLUMNS = "mode, since, origin, actor, reason, rule"


def operating_mode(db: Db) -> ModeState | None:
    """The recorded mode, None when none was ever recorded."""
    row = db.execute(f"SELECT {_COLUMNS} FROM operating_mode WHERE scope = ?", (_SCOPE,)).fetchone()
    if row is None:
        return None
    return ModeState(OperatingMode(row[0]), row[1], ModeOrigin(row[2]), row[3], row[4], row[5])


def _detail(state: ModeState) -> str:
    how = "declared by an operator" if state.origin is ModeOrigin.ACT else "decided by the rules"
    if state.rule is not None:
        how = f"rule {state.rule}"
    return f"{how}: {state.reason}"


def set_modes(context: WriteContext, states: list[ModeState]) -> list[Any]:
    """Record each state in turn; True for each that changed what was recorded."""
    conn = context.conn
    answers: list[Any] = []
    for state in states:
        before = operating_mode(conn)
        if before is not None and (before.mode, before.origin, before.rule) == (
            state.mode,
            state.origin,
            state.rule,
        ):
            answers.append(False)
            continue
        since = state.since if before is None or before.mode is not state.mode else before.since
        conn.execute(
            f"INSERT INTO operating_mode (scope, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (scope) DO UPDATE SET mode = excluded.mode, since = excluded.since,"
            " origin = excluded.origin, actor = excluded.actor, reason = excluded.reason,"
            " rule = excluded.rule",
            (
                _SCOPE,
                state.mode.value,
                since,
                state.origin.value,
                state.actor,
                state.reason,
                state.rule,
            ),
        )
        context.audit.append(
            [(state.since, state.actor, "mode.changed", f"mode:{state.mode.value}", _detail(state))]
        )
        answers.append(True)
    return answers
