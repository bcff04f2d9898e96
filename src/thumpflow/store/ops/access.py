"""API tokens and audited acts: writer operations and row mapping.

The write functions run on the writer thread inside its transaction (one
savepoint per call, see `thumpflow.store.ops`); audit entries go through the chain.
Issuing and revoking a token write their audit entry in the same
transaction; the audit detail names the token and its role, never the token
or its hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thumpflow.core.access import Role
from thumpflow.core.event import AuditEntry
from thumpflow.store.ops import WriteContext


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


def add_tokens(context: WriteContext, calls: list[AddToken]) -> list[Any]:
    """Insert tokens; answer each new token id."""
    answers: list[Any] = []
    for call in calls:
        cursor = context.conn.execute(
            "INSERT INTO api_tokens (name, role, token_hash, created_at, created_by)"
            " VALUES (?, ?, ?, ?, ?) RETURNING token_id",
            (call.name, call.role.value, call.token_hash, call.at, call.actor),
        )
        token_id = int(cursor.fetchone()[0])
        detail = f"{call.name} ({call.role.value})" + (f": {call.reason}" if call.reason else "")
        context.audit.append([(call.at, call.actor, "token.issued", f"token:{token_id}", detail)])
        answers.append(token_id)
    return answers


def revoke_tokens(context: WriteContext, calls: list[RevokeToken]) -> list[Any]:
    """Revoke tokens; answer True for each token that was active."""
    answers: list[Any] = []
    for call in calls:
        cursor = context.conn.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
            (call.at, call.token_id),
        )
        revoked = cursor.rowcount == 1
        if revoked:
            context.audit.append(
                [(call.at, call.actor, "token.revoked", f"token:{call.token_id}", call.reason)]
            )
        answers.append(revoked)
    return answers


def append_audits(context: WriteContext, calls: list[AuditEntry]) -> list[Any]:
    """Append audit entries as given, chained; answer each entry id."""
    answers: list[Any] = []
    for entry in calls:
        context.audit.append([(entry.at, entry.actor, entry.action, entry.subject, entry.detail)])
        answers.append(context.audit.snapshot()[0])
    return answers
