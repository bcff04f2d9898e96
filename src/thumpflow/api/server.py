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
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from thumpflow.api.app import build_app
from thumpflow.api.auth import Authenticator, ensure_admin_token
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


async def serve(app: FastAPI, host: str, port: int) -> ApiServer:
    """Listen on host:port and serve `app` until `close()`. Raises OSError if it cannot bind."""
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

    Raises `ThumpflowError` naming the address when it cannot listen.
    """
    spec = engine.config.api
    await ensure_admin_token(engine.store, engine.config.admin_token_path(), engine.clock)
    app = build_app(engine, Authenticator(engine.store))
    try:
        return await serve(app, spec.host, spec.port)
    except OSError as err:
        raise ThumpflowError(
            f"api: cannot listen on {spec.host}:{spec.port}: {err.strerror or err}"
        ) from None
