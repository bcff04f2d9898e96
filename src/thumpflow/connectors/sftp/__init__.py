"""SFTP batch connectors: a drop-directory source with manifest checks and an atomic uploader."""

from thumpflow.connectors.sftp._client import SftpError
from thumpflow.connectors.sftp.destination import SftpDestination
from thumpflow.connectors.sftp.source import SftpDropSource
from thumpflow.connectors.sftp.spec import SftpDestinationSpec, SftpDropSourceSpec

__all__ = [
    "SftpDestination",
    "SftpDestinationSpec",
    "SftpDropSource",
    "SftpDropSourceSpec",
    "SftpError",
]
