"""A real HTTP receiver for tests: records requests, applies each idempotency key once.

`HttpReceiver` is an aiohttp server on 127.0.0.1. Every POST (any path but
`/_admin/...`) is recorded; a request whose `Idempotency-Key` was applied
before is answered 200 `{"duplicate": true}` and not applied again, so
`applied` proves exactly-once effects. Faults can be set at runtime
(`faults`, `go_down`) or over HTTP (`POST /_admin/faults` with a JSON object
of `Faults` fields, plus `down_seconds`, which takes effect just after the
response); `GET /_admin/state` reports counts
and applied keys.

With a log file (`--log FILE` when run as a process), each applied delivery
is appended as one JSON line and fsync'd before the response, and the keys
already in the file count as applied on start, so the receiver itself keeps
exactly-once across its own restarts:

    python -m thumpflow.testing.http_receiver --port 8099 --log applied.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from aiohttp import web

from thumpflow.testing._listener import Listener, Served

OPERATION_OUTCOME_DIAGNOSTICS = "rejected by the test receiver: body contains the reject marker"


@dataclass(slots=True)
class Faults:
    """Faults to inject; counts are decremented as requests consume them.

    Checked in this order for each request: `delay_seconds` (every request
    waits), `drop` (close the connection without a response, nothing
    applied), `throttle` (429 with `Retry-After: retry_after`), `unavailable`
    (503 with the same `Retry-After`), `reject_marker` (422 with an
    OperationOutcome when the body contains it), then the request is applied
    (or recognised as a duplicate), then `drop_after_apply` (applied, but the
    connection is closed before the response).
    """

    throttle: int = 0
    unavailable: int = 0
    retry_after: float = 1.0
    delay_seconds: float = 0.0
    drop: int = 0
    drop_after_apply: int = 0
    reject_marker: str | None = None


@dataclass(slots=True, frozen=True)
class ReceivedRequest:
    """One request as received, and the status answered (0: dropped without a response)."""

    path: str
    idempotency_key: str | None
    ordering_key: str | None
    event_id: str | None
    content_type: str | None
    body: bytes
    status: int
    at: float = field(default_factory=time.time)


class HttpReceiver(Served):
    """The receiver; `url` is valid after `start` and keeps its port across `go_down`.

    With `ssl_context` it serves HTTPS (for mutual TLS tests).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        log: Path | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self._listening = Listener(host, port, ssl_context)
        self._ssl = ssl_context
        self.faults = Faults()
        self.requests: list[ReceivedRequest] = []
        self.applied: dict[str, bytes] = {}
        self._log_path = log
        self._log_fd: int | None = None

    @property
    def url(self) -> str:
        return f"{self._scheme}://{self.host}:{self.port}/deliveries"

    @property
    def admin_url(self) -> str:
        return f"{self._scheme}://{self.host}:{self.port}/_admin"

    @property
    def _scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    def applied_order(self, ordering_key: str) -> list[str]:
        """Applied idempotency keys of one ordering key, in the order they were applied."""
        return [
            r.idempotency_key
            for r in self.requests
            if r.ordering_key == ordering_key and r.idempotency_key is not None and r.status == 201
        ]

    def set_faults(self, **changes: Any) -> None:
        """Change some `Faults` fields; raises TypeError on an unknown one."""
        known = {f.name for f in fields(Faults)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(self.faults, name, value)

    async def start(self) -> None:
        if self._log_path is not None:
            self._load_log(self._log_path)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/_admin/faults", self._admin_faults)
        app.router.add_get("/_admin/state", self._admin_state)
        app.router.add_post("/{tail:.*}", self._receive)
        await self._listening.start(app)

    async def close(self) -> None:
        await self._listening.close()
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def _load_log(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as f:
                for line in f:
                    if line.endswith(b"\n"):
                        record = json.loads(line)
                        self.applied[record["idempotency_key"]] = record["body"].encode()
        self._log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _append_log(self, request: ReceivedRequest) -> None:
        if self._log_fd is None:
            return
        record = {
            "idempotency_key": request.idempotency_key,
            "ordering_key": request.ordering_key,
            "event_id": request.event_id,
            "body": request.body.decode("utf-8", errors="replace"),
            "at": request.at,
        }
        os.write(self._log_fd, (json.dumps(record) + "\n").encode())
        os.fsync(self._log_fd)

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        faults = self.faults
        key = request.headers.get("Idempotency-Key")

        def record(status: int) -> ReceivedRequest:
            received = ReceivedRequest(
                path=request.path,
                idempotency_key=key,
                ordering_key=request.headers.get("X-Thumpflow-Ordering-Key"),
                event_id=request.headers.get("X-Thumpflow-Event-Id"),
                content_type=request.headers.get("Content-Type"),
                body=body,
                status=status,
            )
            self.requests.append(received)
            return received

        if faults.delay_seconds > 0:
            await asyncio.sleep(faults.delay_seconds)
        if faults.drop > 0:
            faults.drop -= 1
            record(0)
            _dropped(request)
        if faults.throttle > 0:
            faults.throttle -= 1
            record(429)
            return _retry_later(429, faults.retry_after)
        if faults.unavailable > 0:
            faults.unavailable -= 1
            record(503)
            return _retry_later(503, faults.retry_after)
        if faults.reject_marker and faults.reject_marker.encode() in body:
            record(422)
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "invalid",
                        "diagnostics": OPERATION_OUTCOME_DIAGNOSTICS,
                    }
                ],
            }
            return web.json_response(outcome, status=422)
        if key is None:
            record(400)
            return web.json_response({"error": "Idempotency-Key header missing"}, status=400)
        if key in self.applied:
            record(200)
            response: web.StreamResponse = web.json_response({"duplicate": True}, status=200)
        else:
            self.applied[key] = body
            self._append_log(record(201))
            response = web.json_response({"applied": True}, status=201)
        if faults.drop_after_apply > 0:
            faults.drop_after_apply -= 1
            _dropped(request)
        return response

    def _fault_state(self) -> dict[str, Any]:
        return asdict(self.faults)

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": len(self.requests),
                "applied": len(self.applied),
                "applied_keys": list(self.applied),
                "faults": asdict(self.faults),
            }
        )


def _retry_later(status: int, retry_after: float) -> web.Response:
    return web.json_response(
        {"error": "try again later"},
        status=status,
        headers={"Retry-After": f"{retry_after:g}"},
    )


def _dropped(request: web.Request) -> NoReturn:
    """Close the connection with no response; the client sees a disconnect."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError


async def _serve(host: str, port: int, log: Path | None) -> None:
    receiver = HttpReceiver(host, port, log)
    await receiver.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {receiver.url}", flush=True)
    await stop.wait()
    await receiver.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m thumpflow.testing.http_receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path, default=None, help="append applied deliveries here")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.log))


if __name__ == "__main__":
    main()
