"""API tokens and audited acts: writer operations and row mapping.

The write functions run on the writer thread inside its transaction (one
savepoint per call, see `_writer`). Issuing and revoking a token write their
audit entry in the same transaction; the audit detail names the token and its
role, never the token or its hash.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from thumpflow.core.access import ApiToken, Role
from thumpflow.core.event import AuditEntry

_INSERT_AUDIT = "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)"
TOKEN_COLUMNS = "token_id, name, role, token_hash, created_at, created_by, revoked_at"


@dataclass(slots=True, frozen=True)
class AddToken:
    name: str
    role: Role
    token_hash: str
    actor: str
    at: float
    reason: str = ""


@dataclass(slots=True, frozen=True)
class RevokeToken:
    token_id: int
    actor: str
    reason: str
    at: float


def add_tokens(conn: sqlite3.Connection, calls: list[AddToken]) -> list[Any]:
    """Insert tokens; answer each new token id."""
    answers: list[Any] = []
    for call in calls:
        cursor = conn.execute(
            "INSERT INTO api_tokens (name, role, token_hash, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?)",
            (call.name, call.role.value, call.token_hash, call.at, call.actor),
        )
        token_id = int(cursor.lastrowid or 0)
        conn.execute(
            _INSERT_AUDIT,
            (
                call.at,
                call.actor,
                "token.issued",
                f"token:{token_id}",
                f"{call.name} ({call.role.value})" + (f": {call.reason}" if call.reason else ""),
            ),
        )
        answers.append(token_id)
    return answers


def revoke_tokens(conn: sqlite3.Connection, calls: list[RevokeToken]) -> list[Any]:
    """Revoke tokens; answer True for each token that was active."""
    answers: list[Any] = []
    for call in calls:
        cursor = conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
            (call.at, call.token_id),
        )
        revoked = cursor.rowcount == 1
        if revoked:
            conn.execute(
                _INSERT_AUDIT,
                (call.at, call.actor, "token.revoked", f"token:{call.token_id}", call.reason),
            )
        answers.append(revoked)
    return answers


def append_audits(conn: sqlite3.Connection, calls: list[AuditEntry]) -> list[Any]:
    """Append audit entries as given; answer each entry id."""
    answers: list[Any] = []
    for entry in calls:
        cursor = conn.execute(
            _INSERT_AUDIT, (entry.at, entry.actor, entry.action, entry.subject, entry.detail)
        )
        answers.append(int(cursor.lastrowid or 0))
    return answers


def token_from_row(row: tuple[Any, ...]) -> ApiToken:
    return ApiToken(
        token_id=row[0],
        name=row[1],
        role=Role(row[2]),
        token_hash=row[3],
        created_at=row[4],
        created_by=row[5],
        revoked_at=row[6],
    )
