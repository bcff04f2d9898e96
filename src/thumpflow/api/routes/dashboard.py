"""The web dashboard: static files shipped in the package, served at `/`.

No build step and nothing from the network: `static/` holds plain HTML, CSS
and JavaScript modules, read from the installed package. Only the files
listed in `FILES` are served (no path from the request reaches the file
system). The pages need no credential to load; every figure they show comes
from the API with the bearer token the person pastes. A strict Content
Security Policy allows scripts, styles and requests to this origin only.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
    "rejects.js": "text/javascript; charset=utf-8",
    "deadletters.js": "text/javascript; charset=utf-8",
    "format.js": "text/javascript; charset=utf-8",
    "beds.js": "text/javascript; charset=utf-8",
    "cluster.js": "text/javascript; charset=utf-8",
}

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("thumpflow.api").joinpath("static", name).read_bytes()


def _file(name: str) -> Response:
    media_type = FILES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no dashboard file {name!r}")
    return Response(_read(name), media_type=media_type, headers=_HEADERS)


@router.get("/")
async def index() -> Response:
    """The dashboard's single page."""
    return _file("index.html")


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """One of the dashboard's files."""
    return _file(name)
