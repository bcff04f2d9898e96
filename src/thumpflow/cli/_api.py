"""Calling the running engine's HTTP API from the command line.

The credential is `$THUMPFLOW_TOKEN` when set, else the first admin token the
engine wrote at first start (`api.admin_token_file`). `call` answers None when
no engine is listening, so a command can fall back to working on the store.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from typing import Any

from thumpflow.config.model import Config
from thumpflow.core.errors import ThumpflowError


def credential(config: Config) -> str:
    """The bearer token the command line uses; a clear error when there is none."""
    token = _credential(config)
    if token is None:
        raise _no_token(config)
    return token


def _credential(config: Config) -> str | None:
    token = os.environ.get("THUMPFLOW_TOKEN", "").strip()
    if token:
        return token
    try:
        return config.admin_token_path().read_text(encoding="ascii").strip()
    except OSError:
        return None


def _no_token(config: Config) -> ThumpflowError:
    return ThumpflowError(
        f"no API token: set THUMPFLOW_TOKEN, or run where {config.admin_token_path()} (written "
        "by the engine at first start) is readable"
    )


def _pinned(cert_file: str) -> ssl.SSLContext:
    """Trust exactly the engine's own certificate (the command runs beside the engine).

    The host name is not checked: the address comes from the same configuration
    as the certificate. Under mutual TLS the command has no client certificate,
    so it cannot reach the API and works on the store.
    """
    context = ssl.create_default_context(cafile=cert_file)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def call(config: Config, method: str, path: str, body: Any, what: str) -> Any | None:
    """`method path` with a JSON body (None: no body); the answer, or None when no engine listens.

    An answer of 4xx/5xx raises `ThumpflowError` naming `what` and the engine's reason.
    Without a credential the request goes unauthenticated, so that "no engine"
    (None) is told apart from "an engine, and no token" (an error).
    """
    if not config.api.enabled:
        return None
    tls = config.api.tls
    scheme = "https" if tls is not None else "http"
    url = f"{scheme}://{config.api.host}:{config.api.port}{path}"
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    token = _credential(config)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        context = _pinned(tls.cert_file) if tls is not None else None
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        if err.code == 401 and token is None:
            raise _no_token(config) from None
        detail = err.read().decode("utf-8", "replace")[:300]
        raise ThumpflowError(f"the engine refused {what} ({err.code}): {detail}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return None
