"""The control API: status, dead letters, replay and manual job runs over HTTP (JSON),
and `GET /metrics` in Prometheus text format 0.0.4.

It binds to loopback by default; it carries no patient data (ids, counts,
reasons only). Replay through the API is an audited act naming the actor.
Role-based access arrives with the full API; until then bind it to loopback.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from thumpflow.core.event import DeadLetterFilter
from thumpflow.core.metrics import CONTENT_TYPE
from thumpflow.runtime.engine import Engine
from thumpflow.thump.scheduler import UnknownJobError

ENGINE_KEY = web.AppKey("engine", Engine)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str, indent=None),
        status=status,
        content_type="application/json",
    )


def _filter(params: dict[str, Any]) -> DeadLetterFilter:
    ids = params.get("delivery_ids")
    if isinstance(ids, str):
        ids = [int(part) for part in ids.split(",") if part]
    return DeadLetterFilter(
        destination_id=params.get("destination") or None,
        channel_id=params.get("channel") or None,
        event_type=params.get("event_type") or None,
        reason_contains=params.get("reason_contains") or None,
        delivery_ids=tuple(int(value) for value in ids) if ids else None,
    )


async def _status(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    stats = await engine.stats()
    live = {
        destination_id: {
            "pending": outbox.pending,
            "in_memory": outbox.in_memory,
            "blocking_ingress": outbox.blocking,
            "circuit": outbox.breaker.state.value,
            "in_memory_by_lane": {
                lane.label: depth for lane, depth in outbox.lane_depths().items()
            },
        }
        for destination_id, outbox in engine.outboxes.items()
    }
    return _json({"channels": [dataclasses.asdict(item) for item in stats], "outboxes": live})


async def _dead_letters(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    try:
        flt = _filter(dict(request.query))
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return _json({"error": "delivery_ids and limit must be integers"}, 400)
    letters = await engine.dead_letters(flt, limit)
    return _json({"dead_letters": [dataclasses.asdict(letter) for letter in letters]})


async def _replay(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _json({"error": "the body must be JSON"}, 400)
    if not isinstance(body, dict):
        return _json({"error": "the body must be a JSON object"}, 400)
    actor = str(body.get("actor") or "").strip()
    reason = str(body.get("reason") or "").strip()
    if not actor or not reason:
        return _json({"error": "replay needs `actor` and `reason` (it is audited)"}, 400)
    try:
        flt = _filter(body)
    except (TypeError, ValueError):
        return _json({"error": "delivery_ids must be integers"}, 400)
    if flt == DeadLetterFilter() and body.get("all") is not True:
        return _json({"error": "name deliveries or a filter, or pass `all: true`"}, 400)
    replayed = await engine.replay(flt, actor, reason)
    return _json({"replayed": [delivery.delivery_id for delivery in replayed]})


async def _start_run(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    job_id = request.match_info["job"]
    try:
        run_id = await engine.start_run(job_id)
    except UnknownJobError:
        return _json({"error": f"no enabled job {job_id!r}"}, 404)
    if run_id is None:
        return _json({"error": f"job {job_id!r} has a run in progress"}, 409)
    return _json({"job": job_id, "run_id": run_id}, 202)


async def _metrics(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    text = await engine.render_metrics()
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


async def _health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


def control_app(engine: Engine) -> web.Application:
    app = web.Application()
    app[ENGINE_KEY] = engine
    app.router.add_get("/api/health", _health)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/dead-letters", _dead_letters)
    app.router.add_post("/api/dead-letters/replay", _replay)
    app.router.add_post("/api/jobs/{job}/runs", _start_run)
    return app


async def serve(engine: Engine, host: str, port: int) -> web.AppRunner:
    """Serve the control API until the returned runner is cleaned up."""
    runner = web.AppRunner(control_app(engine), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
