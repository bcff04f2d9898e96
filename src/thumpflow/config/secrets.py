"""Resolve a configuration's secret references and start-up files before the engine needs them.

A configuration names where secrets are (`token_env`, `key_file`,
`secret_headers: {X: {env: NAME}}`, TLS `cert_file` ...), never the secrets
themselves. `missing_references` walks a validated configuration and
reports each environment variable that is unset or empty and each file
that cannot be read, located at its key (`FILE:LINE:COLUMN: channel 'adt' >
destination 'ehr' > auth > token_env: ...`), so `thumpflow check` fails
where `thumpflow run` would. Values are never read into the report: a
variable is tested for presence, a file for being a readable regular file.
Disabled channels and jobs are checked too: enabling one should not be the
moment a missing secret is found.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from thumpflow.config.model import Config

# Files the engine writes rather than reads.
_WRITTEN = frozenset({"admin_token_file"})

Where = Callable[[tuple[int | str, ...]], str]


def missing_references(config: Config, where: Where, environ: Mapping[str, str]) -> list[str]:
    """One located line per unset variable or unreadable file the configuration refers to."""
    problems: list[str] = []
    for loc, name, value in _references(config, ()):
        if _is_env(name):
            if not environ.get(value):
                problems.append(f"{where(loc)}: environment variable {value} is not set")
        elif not _readable(value):
            problems.append(f"{where(loc)}: cannot read file {value}")
    return problems


def missing_in_environment(config: Config, where: Where) -> list[str]:
    """`missing_references` against this process's environment."""
    return missing_references(config, where, os.environ)


def _is_env(name: str) -> bool:
    return name == "env" or name.endswith("_env")


def _is_file(name: str) -> bool:
    return (name == "file" or name.endswith("_file")) and name not in _WRITTEN


def _references(model: BaseModel, loc: tuple[int | str, ...]) -> Iterator[tuple[Any, str, str]]:
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        value = getattr(model, name)
        here = (*loc, key)
        if isinstance(value, str) and (_is_env(name) or _is_file(name)):
            yield here, name, value
        else:
            yield from _children(value, here)


def _children(value: Any, loc: tuple[int | str, ...]) -> Iterator[tuple[Any, str, str]]:
    if isinstance(value, BaseModel):
        yield from _references(value, loc)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _children(item, (*loc, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _children(item, (*loc, key))


def _readable(path: str) -> bool:
    file = Path(path)
    return file.is_file() and os.access(file, os.R_OK)
