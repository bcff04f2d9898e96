"""Serving the API with uvicorn inside the engine's event loop.

The socket is bound before serving starts, so a port that is taken fails the
start with a located error, and port 0 yields the chosen port. The engine,
not uvicorn, owns SIGINT and SIGTERM: stopping is `ApiServer.close()`, which
finishes in-flight requests first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator, ensure_admin_token
from thumpflow.api.oidc import OidcVerifier
from thumpflow.connectors.tls import server_context
from thumpflow.core.errors import ThumpflowError
from thumpflow.runtime.engine import Engine


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """A running API listener."""

    def __init__(self, server: _Server, sock: socket.socket, task: asyncio.Task[None]) -> None:
        self._server = server
        self._socket = sock
        self._task = task

    @property
    def port(self) -> int:
        port: int = self._socket.getsockname()[1]
        return port

    async def close(self) -> None:
        self._server.should_exit = True
        await self._task
        self._socket.close()


async def serve(
    app: FastAPI, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> ApiServer:
    """Listen on host:port and serve `app` until `close()`. Raises OSError if it cannot bind.

    With `ssl_context` it serves HTTPS only; a client that fails the handshake
    (no certificate under mutual TLS, an untrusted one, plain HTTP) is
    disconnected before any request is read.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every response waits ~40 ms (Nagle and delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=10,
        ssl_context_factory=None
        if ssl_context is None
        else (lambda _config, _default: ssl_context),
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="thumpflow-api")
    while not server.started:
        if task.done():
            await task
            raise OSError(f"the API stopped while starting on {host}:{port}")
        await asyncio.sleep(0.01)
    return ApiServer(server, sock, task)


async def start_api(engine: Engine) -> ApiServer:
    """Serve the engine's API as configured, issuing the first admin token if none exists.

    HTTPS when `api.tls` is set; OpenID Connect tokens accepted when `api.oidc`
    is set. Raises `ThumpflowError` naming the address when it cannot listen,
    or `api > tls` when the certificate or key cannot be loaded.
    """
    spec = engine.config.api
    context = None
    if spec.tls is not None:
        try:
            context = server_context(spec.tls)
        except (OSError, ssl.SSLError) as err:
            raise ThumpflowError(
                f"api > tls: cannot load the certificate or key: {err.strerror or err}"
            ) from None
    oidc = OidcVerifier(spec.oidc, engine.clock) if spec.oidc is not None else None
    await ensure_admin_token(engine.store, engine.config.admin_token_path(), engine.clock)
    app = build_app(engine, Authenticator(engine.store, oidc))
    try:
        return await serve(app, spec.host, spec.port, context)
    except OSError as err:
        raise ThumpflowError(
            f"api: cannot listen on {spec.host}:{spec.port}: {err.strerror or err}"
        ) from None
