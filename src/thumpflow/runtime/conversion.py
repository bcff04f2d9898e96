"""The configuration's naming systems, applied to FHIR conversion for this process.

`configure_conversion` adds `naming_systems` (its inline entries over those
of its file) to the conversion's process-wide table, and sets the base for
namespaces not listed. A file that cannot be read or lists a URI that is not
absolute raises `ConfigError` naming it; nothing is changed then.
"""

from __future__ import annotations

from pathlib import Path

from thumpflow.config.model import NamingSystems
from thumpflow.core.errors import ConfigError
from thumpflow.mapping import configure_naming_systems, read_naming_systems


def configure_conversion(spec: NamingSystems) -> None:
    """Apply `spec` to every conversion of this process (see the module docstring)."""
    table: dict[str, str] = {}
    try:
        if spec.file is not None:
            table.update(read_naming_systems(Path(spec.file)))
        table.update(spec.systems)
        configure_naming_systems(table, base=spec.base, where="naming_systems")
    except ValueError as err:
        raise ConfigError([f"naming_systems: {err}"]) from None
