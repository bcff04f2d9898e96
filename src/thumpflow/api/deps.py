"""Dependencies every router shares: the running engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from thumpflow.runtime.engine import Engine


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]
