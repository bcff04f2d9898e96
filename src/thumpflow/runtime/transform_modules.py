"""Which transform modules changed on disk since they were imported, and importing them again.

A reload applies a new configuration; a transform's *code* may change too
(the same `transform: module:function`, a fixed function). The engine
records each transform module's file modification time when it imports it
(`remember`); at a reload, `refresh_changed` imports again every named
module whose file changed since, so the channels using it restart with the
new code, while channels whose configuration and code are unchanged keep
running untouched. A module that no longer compiles or imports refuses the
reload (`ConfigError` naming the module and the error's type and place),
and the module keeps its previous code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from thumpflow.core.errors import ConfigError

_SEEN: dict[str, int] = {}


def _stamp(module: ModuleType) -> int | None:
    file = getattr(module, "__file__", None)
    try:
        return Path(file).stat().st_mtime_ns if file else None
    except OSError:
        return None


def remember(module: ModuleType) -> None:
    """Record the file time of a transform module when first imported."""
    stamp = _stamp(module)
    if stamp is not None:
        _SEEN.setdefault(module.__name__, stamp)


def refresh_changed(names: Iterable[str]) -> set[str]:
    """Import again the named modules whose file changed since `remember`; their names."""
    changed: set[str] = set()
    for name in sorted(set(names)):
        module = sys.modules.get(name)
        if module is None or name not in _SEEN:
            continue
        stamp = _stamp(module)
        if stamp is None or stamp == _SEEN[name]:
            continue
        try:
            importlib.reload(module)
        except Exception as err:  # a user's module may raise anything while importing
            line = getattr(err, "lineno", None)
            where = f" (line {line})" if line else ""
            raise ConfigError(
                [f"transform module {name!r} cannot be imported again: {type(err).__name__}{where}"]
            ) from None
        _SEEN[name] = stamp
        changed.add(name)
    return changed
