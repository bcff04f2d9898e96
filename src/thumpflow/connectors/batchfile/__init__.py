"""Batch files: the file drop source and the batch file destination, both with manifests."""

from thumpflow.connectors.batchfile.destination import BatchFileDestination
from thumpflow.connectors.batchfile.source import FileDropSource
from thumpflow.connectors.batchfile.spec import BatchFileDestinationSpec, FileDropSourceSpec
from thumpflow.connectors.csv import CsvSpec

__all__ = [
    "BatchFileDestination",
    "BatchFileDestinationSpec",
    "CsvSpec",
    "FileDropSource",
    "FileDropSourceSpec",
]
