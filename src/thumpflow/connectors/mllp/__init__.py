"""MLLP (HL7 v2 over TCP, optionally TLS): the listener source and the sending destination."""

from thumpflow.connectors.mllp.destination import MllpDestination
from thumpflow.connectors.mllp.source import MllpSource
from thumpflow.connectors.mllp.spec import (
    MllpClientTls,
    MllpDestinationSpec,
    MllpSourceSpec,
)

__all__ = [
    "MllpClientTls",
    "MllpDestination",
    "MllpDestinationSpec",
    "MllpSource",
    "MllpSourceSpec",
]
