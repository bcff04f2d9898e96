"""The file destination: journaled appends, exactly once in effect across crashes."""

from thumpflow.connectors.file.destination import FileDestination
from thumpflow.connectors.file.spec import FileDestinationSpec

__all__ = ["FileDestination", "FileDestinationSpec"]
