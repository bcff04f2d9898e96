"""SFTP drop source and SFTP destination against a real OpenSSH server on loopback.

The server is not chrooted, so remote paths are paths of this machine: the
tests drop files (as an upstream system would) and inspect results directly
in the file system, while the connectors go through SFTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from pydantic import ValidationError

from tests.sqlsftp.conftest import SshServer
from tests.sqlsftp.support import item
from thumpflow.batch import count_and_hash, manifest_to_json, read_manifest
from thumpflow.connectors.sftp import (
    SftpDestination,
    SftpDestinationSpec,
    SftpDropSource,
    SftpDropSourceSpec,
    SftpError,
)
from thumpflow.core.batch import Manifest, SourceRecord, Window
from thumpflow.core.errors import BatchSourceError, OutputConflictError

CSV = b"mrn,family\r\nM1,Ash\r\nM2,Birch\r\nM3,Cedar\r\n"


def login(server: SshServer, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "private_key_file": str(server.client_key),
        "known_hosts": str(server.known_hosts),
        **extra,
    }


def drop_source(server: SshServer, directory: Path, **extra: Any) -> SftpDropSource:
    fields = {"directory": str(directory), "format": "csv", "settle_seconds": 0}
    spec = SftpDropSourceSpec.model_validate(
        {"type": "sftp_drop", **login(server), **fields, **extra}
    )
    return SftpDropSource("drop", spec)


def drop(directory: Path, name: str, data: bytes, *, manifest: str = "good") -> Path:
    """Put a data file (and a manifest: good, bad checksum, or none) in a drop directory."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    if manifest == "none":
        return path
    count, digest = count_and_hash(path, "csv")
    if manifest == "bad_checksum":
        digest = hashlib.sha256(b"something else").hexdigest()
    claimed = Manifest(
        name=name,
        record_count=count,
        sha256=digest,
        created_at=1_767_225_600.0,
        source="lab-system",
        window=Window("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
    )
    (directory / f"{name}.manifest.json").write_bytes(manifest_to_json(claimed))
    return path


async def collect(src: SftpDropSource, window: Window | None = None) -> list[SourceRecord]:
    return [record async for chunk in src.read(window or Window()) for record in chunk]


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.is_file()} if directory.exists() else set()


# --------------------------------------------------------------------------- specs


def test_spec_examples_validate_and_every_field_is_described() -> None:
    for spec in (SftpDropSourceSpec, SftpDestinationSpec):
        model = spec.model_validate(spec.example)
        assert model.type == spec.example["type"]
        schema = spec.model_json_schema()
        assert schema["description"] and "\n" not in schema["description"]
        for name, info in spec.model_fields.items():
            assert info.description, f"{spec.__name__}.{name} has no description"
        with pytest.raises(ValidationError):
            spec.model_validate({**spec.example, "unknown": 1})


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"known_hosts": None}, "known_hosts is required"),
        ({"insecure_skip_host_key_check": True}, "exclude each other"),
        ({"password_env": "SFTP_PASSWORD"}, "exactly one of private_key_file and password_env"),
        ({"private_key_file": None}, "exactly one of private_key_file and password_env"),
        ({"name": "out-{when}.hl7"}, "unknown placeholder"),
        ({"name": "../out.hl7"}, "plain file name"),
    ],
)
def test_destination_spec_refuses(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        SftpDestinationSpec.model_validate({**SftpDestinationSpec.example, **change})


# --------------------------------------------------------------------------- drop source


def test_a_good_file_is_imported_and_moved_to_processed(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    drop(inbox, "results-1.csv", CSV)
    src = drop_source(ssh_server, inbox, source_system="lab-system")

    records = asyncio.run(collect(src))
    assert [r.data for r in records] == [
        {"mrn": "M1", "family": "Ash"},
        {"mrn": "M2", "family": "Birch"},
        {"mrn": "M3", "family": "Cedar"},
    ]
    assert records[0].origin == "results-1.csv:line 2"
    assert [m.name for m in src.manifests()] == ["results-1.csv"]
    assert src.next_watermark() == "2026-01-02T00:00:00Z"
    assert names(inbox) == {"results-1.csv", "results-1.csv.manifest.json"}, "moved only on commit"

    asyncio.run(src.commit())
    asyncio.run(src.commit())
    assert names(inbox) == set()
    assert names(inbox / "processed") == {"results-1.csv", "results-1.csv.manifest.json"}
    assert (inbox / "processed" / "results-1.csv").read_bytes() == CSV

    assert asyncio.run(collect(src, Window(start="2026-01-02T00:00:00Z"))) == []
    assert src.next_watermark() == "2026-01-02T00:00:00Z"


def test_a_bad_checksum_is_not_imported_and_goes_to_failed_with_its_reason(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    drop(inbox, "a-good.csv", CSV)
    drop(inbox, "b-bad.csv", CSV, manifest="bad_checksum")
    src = drop_source(ssh_server, inbox, failed_dir=str(tmp_path / "rejected"))

    with pytest.raises(BatchSourceError) as caught:
        asyncio.run(collect(src))
    message = str(caught.value)
    assert "b-bad.csv: checksum" in message and "a-good.csv" not in message
    assert "Ash" not in message
    assert src.manifests() == []

    asyncio.run(src.fail("manifest check failed"))
    asyncio.run(src.fail("manifest check failed"))
    failed = tmp_path / "rejected"
    assert names(failed) == {"b-bad.csv", "b-bad.csv.manifest.json", "b-bad.csv.reason"}
    reason = (failed / "b-bad.csv.reason").read_text()
    assert reason.startswith("manifest check failed\nchecksum: manifest SHA-256")
    assert names(inbox) == {"a-good.csv", "a-good.csv.manifest.json"}, "the good file waits"

    assert [r.data["mrn"] for r in asyncio.run(collect(src))] == ["M1", "M2", "M3"]
    asyncio.run(src.commit())
    assert names(inbox / "processed") == {"a-good.csv", "a-good.csv.manifest.json"}


def test_missing_manifest_and_files_still_being_written_are_refused(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    drop(inbox, "no-manifest.csv", CSV, manifest="none")
    src = drop_source(ssh_server, inbox)
    with pytest.raises(BatchSourceError, match=r"no-manifest.csv: missing: no manifest"):
        asyncio.run(collect(src))

    optional = drop_source(ssh_server, inbox, manifest="optional")
    assert len(asyncio.run(collect(optional))) == 3

    settling = drop_source(ssh_server, inbox, manifest="optional", settle_seconds=600)
    with pytest.raises(BatchSourceError, match="partial: modified less than 600 s ago"):
        asyncio.run(collect(settling))
    asyncio.run(settling.fail("still arriving"))
    assert "no-manifest.csv" in names(inbox), "a partial file is left where it is"

    nowhere = drop_source(ssh_server, tmp_path / "nowhere")
    with pytest.raises(SftpError, match=r"drop directory .*nowhere does not exist"):
        asyncio.run(collect(nowhere))


# --------------------------------------------------------------------------- destination


def destination(server: SshServer, directory: Path, **extra: Any) -> SftpDestination:
    fields = {
        "directory": str(directory),
        "name": "census-{window_end}.ndjson",
        "format": "ndjson",
        "source_system": "thumpflow",
    }
    spec = SftpDestinationSpec.model_validate({"type": "sftp", **login(server), **fields, **extra})
    return SftpDestination("up", spec)


async def upload(
    dst: SftpDestination, window: Window, *batches: list[dict[str, Any]]
) -> tuple[list[tuple[int, int]], list[Manifest]]:
    await dst.begin("census", 7, window)
    results = [await dst.write([item(d, "mrn") for d in batch]) for batch in batches]
    counts = [(r.written, r.skipped) for r in results]
    return counts, await dst.finish()


WINDOW = Window("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")


def test_upload_is_renamed_into_place_with_a_matching_manifest(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    dst = destination(ssh_server, outbox)
    rows = [{"mrn": f"M{i}", "family": f"F{i}"} for i in range(5)]
    counts, manifests = asyncio.run(
        upload(dst, WINDOW, rows[:3], [*rows[3:], {"mrn": "M0", "family": "F0"}])
    )
    assert counts == [(3, 0), (2, 1)]
    name = "census-2026-01-02T00-00-00Z.ndjson"
    assert names(outbox) == {name, f"{name}.manifest.json"}, "no temporaries left"
    lines = (outbox / name).read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == rows

    written = read_manifest(outbox / f"{name}.manifest.json")
    assert manifests == [written]
    assert written.record_count == 5 and written.window == WINDOW
    assert (written.record_count, written.sha256) == count_and_hash(outbox / name, "ndjson")

    changed = [{**r, "family": "X"} if r["mrn"] == "M1" else r for r in rows]
    counts, _ = asyncio.run(upload(dst, WINDOW, changed, [{"mrn": "M2", "family": "Y"}]))
    assert counts == [(5, 0), (1, 0)]
    final = [json.loads(line) for line in (outbox / name).read_bytes().splitlines()]
    assert final == [
        rows[0],
        {"mrn": "M1", "family": "X"},
        rows[3],
        rows[4],
        {"mrn": "M2", "family": "Y"},
    ]
    assert names(outbox) == {name, f"{name}.manifest.json"}
    assert count_and_hash(outbox / name, "ndjson") == (
        read_manifest(outbox / f"{name}.manifest.json").record_count,
        read_manifest(outbox / f"{name}.manifest.json").sha256,
    )


def test_a_rerun_replaces_the_file_atomically_while_a_reader_watches(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    dst = destination(ssh_server, outbox, name="big.ndjson")
    old = [{"mrn": f"M{i:06d}", "family": "old" * 10} for i in range(30_000)]
    new = [{**r, "family": "new" * 10} for r in old]
    asyncio.run(upload(dst, WINDOW, old))
    target = outbox / "big.ndjson"
    old_digest = hashlib.sha256(target.read_bytes()).hexdigest()

    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(hashlib.sha256(target.read_bytes()).hexdigest())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        _, manifests = asyncio.run(upload(dst, WINDOW, new))
    finally:
        stop.set()
        watcher.join()
    new_digest = manifests[0].sha256
    assert hashlib.sha256(target.read_bytes()).hexdigest() == new_digest != old_digest
    assert seen <= {old_digest, new_digest}, "a reader only ever saw a complete file"
    assert old_digest in seen


def test_upload_then_drop_round_trip_checks_the_manifest(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    dst = destination(
        ssh_server, box, name="lab-{date}.csv", format="csv", columns=["mrn", "family"]
    )
    rows = [{"mrn": "M1", "family": "Ash", "extra": 1}, {"mrn": "M2", "family": "Birch"}]
    asyncio.run(upload(dst, WINDOW, rows))
    src = drop_source(ssh_server, box, source_system="thumpflow")
    records = asyncio.run(collect(src, Window(start="2026-01-01T00:00:00Z")))
    assert [r.data for r in records] == [
        {"mrn": "M1", "family": "Ash"},
        {"mrn": "M2", "family": "Birch"},
    ]
    assert [m.name for m in src.manifests()] == ["lab-2026-01-02.csv"]


def test_an_empty_run_uploads_the_empty_file_of_its_format(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    dst = destination(ssh_server, box, name="v.hl7", format="hl7_batch")
    _, manifests = asyncio.run(upload(dst, WINDOW))
    assert manifests[0].record_count == 0
    assert (box / "v.hl7").read_bytes().endswith(b"BTS|0\rFTS|1\r")


def test_a_run_of_another_window_never_replaces_the_remote_file(
    ssh_server: SshServer, tmp_path: Path
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    dst = destination(ssh_server, box, name="census-{date}.ndjson")
    rows = [{"mrn": "M1", "family": "Ash"}, {"mrn": "M2", "family": "Birch"}]
    asyncio.run(upload(dst, WINDOW, rows))
    (target,) = box.glob("census-*.ndjson")
    before = target.read_bytes(), (box / f"{target.name}.manifest.json").read_bytes()
    later = Window(WINDOW.end, None)  # an open window's name takes the date of its run
    dst = destination(ssh_server, box, name=target.name)
    assert asyncio.run(upload(dst, later)) == ([], []), "no records: the file stays"
    with pytest.raises(OutputConflictError, match="another window"):
        asyncio.run(upload(dst, later, rows[:1]))
    asyncio.run(dst.abort())
    assert (target.read_bytes(), (box / f"{target.name}.manifest.json").read_bytes()) == before
    assert sorted(p.name for p in box.iterdir()) == [target.name, f"{target.name}.manifest.json"]


# --------------------------------------------------------------------------- trust


def test_an_unexpected_host_key_is_a_clear_error(ssh_server: SshServer, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    drop(inbox, "a.csv", CSV)
    src = drop_source(ssh_server, inbox, known_hosts=str(ssh_server.other_known_hosts))
    with pytest.raises(SftpError, match="host key verification failed") as caught:
        asyncio.run(collect(src))
    assert str(ssh_server.other_known_hosts) in str(caught.value)
    assert names(inbox) == {"a.csv", "a.csv.manifest.json"}

    dst = destination(ssh_server, inbox, known_hosts=str(ssh_server.other_known_hosts))
    with pytest.raises(SftpError, match="host key verification failed"):
        asyncio.run(upload(dst, WINDOW, [{"mrn": "M1"}]))
    asyncio.run(dst.abort())


def test_a_key_the_server_does_not_know_is_refused(ssh_server: SshServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    src = drop_source(ssh_server, tmp_path, private_key_file=str(stranger))
    with pytest.raises(SftpError, match=f"login refused for user {ssh_server.username}"):
        asyncio.run(collect(src))
