"""Batch files, pure: record formats (CSV, NDJSON, HL7 v2 batch), encoders and manifests.

`formats` (with `reading`, `csv_format`, `ndjson_format`, `hl7_format`,
`parts`) and `manifest` do no I/O of their own and use no asyncio: readers
take a binary stream opened by the caller, encoders return bytes, manifest
checks compare values. `files` is the one module that opens files: manifests
beside data files, and `verify` of a data file against its manifest.
"""

from thumpflow.batch.csv_format import CsvEncoder, CsvOptions, check_encoding
from thumpflow.batch.files import (
    count_and_hash,
    fsync_directory,
    manifest_path,
    read_manifest,
    sha256_of,
    verify,
    write_manifest,
)
from thumpflow.batch.formats import Encoder, Format, count_records, read_records
from thumpflow.batch.hl7_format import Hl7BatchEncoder
from thumpflow.batch.manifest import (
    MANIFEST_SUFFIX,
    ManifestError,
    Problem,
    ProblemKind,
    check,
    compare_watermarks,
    format_time,
    manifest_name,
    manifest_to_json,
    parse_manifest,
    parse_time,
)
from thumpflow.batch.ndjson_format import NdjsonEncoder
from thumpflow.batch.reading import ByteStream, FormatError, UnreadableRecord

__all__ = [
    "MANIFEST_SUFFIX",
    "ByteStream",
    "CsvEncoder",
    "CsvOptions",
    "Encoder",
    "Format",
    "FormatError",
    "Hl7BatchEncoder",
    "ManifestError",
    "NdjsonEncoder",
    "Problem",
    "ProblemKind",
    "UnreadableRecord",
    "check",
    "check_encoding",
    "compare_watermarks",
    "count_and_hash",
    "count_records",
    "format_time",
    "fsync_directory",
    "manifest_name",
    "manifest_path",
    "manifest_to_json",
    "parse_manifest",
    "parse_time",
    "read_manifest",
    "read_records",
    "sha256_of",
    "verify",
    "write_manifest",
]
