"""An aiohttp application served on one port that a test can take down and bring back.

Shared by the HTTP receiver and the simulated EHR. `go_down` stops listening
and drops open connections, so clients see "connection refused" or a reset,
then listens again on the same port; `go_down_soon` does the same after the
current response has gone out (for admin endpoints). `close` cancels any
pending return and releases the port.

`Served` gives a server that owns a `Listener` its `port`, `is_listening`,
`go_down` and the `POST /_admin/faults` handler.
"""

from __future__ import annotations

import asyncio
import ssl
from abc import ABC, abstractmethod
from typing import Any

from aiohttp import web


class Listener:
    """Serves `app` on `host:port` (port 0: a free one, fixed after `start`)."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._reopen: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def is_listening(self) -> bool:
        return self._server is not None

    async def start(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await self._listen()

    async def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        for task in self._tasks:
            task.cancel()
        await self._stop_listening()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def go_down(self, seconds: float) -> None:
        """Refuse connections (stop listening, drop open ones) for `seconds`, then listen again."""
        await self._stop_listening()
        loop = asyncio.get_running_loop()
        if self._reopen is not None:
            self._reopen.cancel()
        self._reopen = loop.call_later(
            seconds, lambda: self._tasks.add(loop.create_task(self._come_back()))
        )

    def go_down_soon(self, seconds: float) -> None:
        """`go_down(seconds)` in 50 ms, once the response being written has gone out."""
        loop = asyncio.get_running_loop()
        self._reopen = loop.call_later(
            0.05, lambda: self._tasks.add(loop.create_task(self.go_down(seconds)))
        )

    async def _come_back(self) -> None:
        self._reopen = None
        if self._runner is not None and self._server is None:
            await self._listen()
        self._tasks = {task for task in self._tasks if not task.done()}

    async def _listen(self) -> None:
        assert self._runner is not None
        handler = self._runner.server
        assert handler is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(handler, self.host, self.port, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        if self._runner is not None and self._runner.server is not None:
            for connection in self._runner.server.connections:
                connection.force_close()
        await server.wait_closed()


class Served(ABC):
    """What a test server serving through `self._listening` shares with the others.

    The owner implements `set_faults(**changes)` (TypeError or ValueError on a
    bad change) and `_fault_state` (its faults as JSON).
    """

    _listening: Listener

    @property
    def port(self) -> int:
        """The port served (a free one when 0 was asked, known after `start`)."""
        return self._listening.port

    @property
    def is_listening(self) -> bool:
        return self._listening.is_listening

    async def go_down(self, seconds: float) -> None:
        """Refuse connections (stop listening, drop open ones) for `seconds`, then listen again."""
        await self._listening.go_down(seconds)

    @abstractmethod
    def set_faults(self, **changes: Any) -> None: ...

    @abstractmethod
    def _fault_state(self) -> dict[str, Any]: ...

    async def _admin_faults(self, request: web.Request) -> web.Response:
        """`POST /_admin/faults`: change faults; `down_seconds` goes down after the response."""
        try:
            changes = await request.json()
        except ValueError:
            return web.json_response({"error": "expected a JSON object"}, status=400)
        if not isinstance(changes, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        down = changes.pop("down_seconds", None)
        try:
            self.set_faults(**changes)
            seconds = float(down) if down else 0.0
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if seconds > 0:
            self._listening.go_down_soon(seconds)
        return web.json_response(self._fault_state())
