"""A small driver for a real headless Chromium over the DevTools protocol (CDP).

`chromium()` starts Debian's `/usr/bin/chromium` headless with a throw-away
profile and `--remote-debugging-port=0`, reads the DevTools WebSocket address
from its stderr, opens one page (a target attached with a flat session) and
yields a `Page`. The process is killed and the profile removed on exit, also
when the test fails. Every wait is bounded (30 s unless told); a timeout
raises AssertionError with what was awaited, the last value seen and any
JavaScript errors of the page.

Clicks and typing go through `Input.*` events (hit-tested mouse presses,
inserted text), as a person's would; reads go through `Runtime.evaluate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
WAIT = 30.0
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


# What Chromium answers when a command meets a page between two documents
# (a reload or navigation under way): the old context is gone, the new one
# not yet there.
_NAVIGATING = (
    "Inspected target navigated or closed",
    "Execution context was destroyed",
    "Cannot find context with specified id",
)


class NavigatingError(AssertionError):
    """A command that met the page between two documents (see `_NAVIGATING`)."""


class Page:
    """One browser tab, attached through a flat CDP session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._session: str | None = None
        self.errors: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                exception = details.get("exception", {})
                self.errors.append(exception.get("description") or details.get("text", "?"))
            elif data.get("method") == "Runtime.consoleAPICalled":
                params = data["params"]
                if params.get("type") == "error":
                    words = (str(a.get("value", a.get("description"))) for a in params["args"])
                    self.errors.append(" ".join(words))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the DevTools connection closed"))

    async def closed(self) -> None:
        """Wait until the reader has seen the connection close."""
        await self._reader

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One CDP command on this page's session (the browser's before attaching)."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if self._session is not None:
            message["sessionId"] = self._session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        await self._ws.send_str(json.dumps(message))
        try:
            answer = await asyncio.wait_for(future, WAIT)
        except TimeoutError:
            raise AssertionError(f"Chromium did not answer {method} within {WAIT:g} s") from None
        if "error" in answer:
            message = str(answer["error"].get("message", ""))
            if any(sign in message for sign in _NAVIGATING):
                raise NavigatingError(f"{method} failed: {answer['error']}")
            raise AssertionError(f"{method} failed: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def attach(self) -> None:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session = attached["sessionId"]
        await self.send("Page.enable")
        await self.send("Runtime.enable")

    async def goto(self, url: str) -> None:
        """Navigate and wait until the document has loaded."""
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise AssertionError(f"navigating to {url} failed: {answer['errorText']}")
        await self.wait_for("document.readyState === 'complete'", what=f"{url} to load")

    async def reload(self) -> None:
        """Reload the page; wait for what should appear with `wait_for`, which
        retries while the page is between the two documents."""
        await self.send("Page.reload")

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises awaited)."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise AssertionError(f"evaluating {expression!r} threw: {text}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = WAIT, what: str = "") -> Any:
        """Poll `expression` until it is truthy (at most `timeout` seconds); its value.

        An element counts as found (True); other values as Python truth sees them.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        probe = f"(() => {{ const v = ({expression}); return v instanceof Node ? true : v; }})()"
        value: Any = None
        while True:
            try:
                value = await self.evaluate(probe)
            except NavigatingError:
                value = None  # the page is between documents: not yet
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"waited {timeout:g} s for {what or expression}; last value {value!r}; "
                    f"page errors {self.errors}"
                )
            await asyncio.sleep(0.1)

    async def text(self, selector: str) -> str:
        """The text of the first element matching `selector` (AssertionError if none)."""
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return e === null ? null : e.textContent; })()"
        )
        if found is None:
            raise AssertionError(f"no element matches {selector!r}")
        return str(found).strip()

    async def click(self, selector: str) -> None:
        """A left mouse click at the middle of the first element matching `selector`."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (e === null) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        if box is None:
            raise AssertionError(f"no element matches {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    async def type(self, selector: str, text: str) -> None:
        """Focus the field matching `selector`, clear it and type `text` into it."""
        await self.click(selector)
        cleared = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.focus(); e.select(); return document.activeElement === e; })()"
        )
        if not cleared:
            raise AssertionError(f"{selector!r} did not take the focus")
        await self.send("Input.insertText", {"text": text})


async def _devtools_url(process: asyncio.subprocess.Process, lines: deque[str]) -> str:
    assert process.stderr is not None
    while True:
        raw = await process.stderr.readline()
        if not raw:
            raise AssertionError(f"Chromium exited before listening: {list(lines)}")
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        found = _LISTENING.search(line)
        if found:
            return found.group(1)


async def _drain(process: asyncio.subprocess.Process, lines: deque[str]) -> None:
    assert process.stderr is not None
    while raw := await process.stderr.readline():
        lines.append(raw.decode(errors="replace").rstrip())


def _profile() -> Path:
    """A fresh profile directory, once Chromium is known to be installed."""
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing; `make test-deps` installs Debian's chromium")
    return Path(tempfile.mkdtemp(prefix="thumpflow-chromium-"))


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Page]:
    """A page in a fresh headless Chromium; the browser is killed on exit."""
    profile = _profile()
    process = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: deque[str] = deque(maxlen=200)
    drain: asyncio.Task[None] | None = None
    try:
        url = await asyncio.wait_for(_devtools_url(process, lines), WAIT)
        drain = asyncio.create_task(_drain(process, lines))
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, max_msg_size=0) as ws,
        ):
            page = Page(ws)
            try:
                await page.attach()
                yield page
            finally:
                await ws.close()
                await asyncio.wait_for(page.closed(), WAIT)
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), WAIT)
        if drain is not None:
            await asyncio.wait_for(drain, WAIT)
        shutil.rmtree(profile, ignore_errors=True)
