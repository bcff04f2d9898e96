"""The HTTP destination: one POST per delivery with an `Idempotency-Key`."""

from thumpflow.connectors.http.destination import HttpDestination
from thumpflow.connectors.http.spec import HttpDestinationSpec

__all__ = ["HttpDestination", "HttpDestinationSpec"]
