"""Who may do what: roles, principals and API tokens.

Roles are ordered for reading and acting: `viewer` sees figures and ids but
no patient data; `operator` may also replay, pause and resume, trigger runs,
acknowledge alerts and open payloads (each with a reason, audited); `admin`
may also manage tokens and configuration. `sender` is outside that order: it
may only submit messages to channels that accept HTTP ingest.

An API token is shown once, when it is created; the store keeps only its
SHA-256 hash, so a copy of the database does not yield working tokens. Tokens
carry 256 bits of randomness, so an unsalted hash is not open to guessing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import Enum

TOKEN_PREFIX = "tf_"


class Role(Enum):
    SENDER = "sender"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Permission(Enum):
    """What an endpoint needs; `ROLE_PERMISSIONS` says which role has it."""

    READ = "read"
    READ_PATIENT_DATA = "read_patient_data"
    ACT = "act"
    ADMINISTER = "administer"
    INGEST = "ingest"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SENDER: frozenset({Permission.INGEST}),
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset(
        {Permission.READ, Permission.READ_PATIENT_DATA, Permission.ACT, Permission.INGEST}
    ),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(slots=True, frozen=True)
class Principal:
    """An authenticated caller: a token's name or an OpenID Connect subject."""

    name: str
    role: Role
    via: str

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


@dataclass(slots=True, frozen=True)
class ApiToken:
    """A stored token: its hash, never the token itself."""

    token_id: int
    name: str
    role: Role
    token_hash: str
    created_at: float
    created_by: str
    revoked_at: float | None = None


def new_token() -> str:
    """A fresh bearer token (`tf_` and 43 URL-safe characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The hex SHA-256 the store keeps for `token`."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
