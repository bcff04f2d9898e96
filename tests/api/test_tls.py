"""TLS for the API and the MLLP source: real handshakes with certificates made in the test."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest

from tests.api.test_tokens import tokens_cli
from tests.connectors.fhir.conftest import Certs, make_certs
from tests.e2e.procs import END, START, free_port
from tests.e2e.test_flow_guarantees import adt
from thumpflow.api.server import start_api
from thumpflow.config import parse_config
from thumpflow.core.errors import ConfigError
from thumpflow.runtime.engine import Engine

CONFIG = """\
version: 1
store: {{path: {db}}}
api:
  host: 127.0.0.1
  port: {api}
  tls: {{cert_file: {cert}, key_file: {key}{mutual}}}
channels:
  - id: sec
    source:
      type: mllp
      host: 127.0.0.1
      port: 0
      tls: {{cert_file: {cert}, key_file: {key}, min_version: "1.3"}}
    destinations:
      - {{id: out, type: file, path: {out}}}
"""


def config_text(tmp_path: Path, certs: Certs, *, port: int = 0, mutual: bool = False) -> str:
    extra = f", ca_file: {certs.ca}, require_client_cert: true" if mutual else ""
    return CONFIG.format(
        db=tmp_path / "s.db",
        api=port,
        cert=certs.server_cert,
        key=certs.server_key,
        mutual=extra,
        out=tmp_path / "out.hl7",
    )


def client_context(certs: Certs, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if with_cert:
        context.load_cert_chain(certs.client_cert, certs.client_key)
    return context


def test_api_over_https_and_mutual_tls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)

    async def main() -> None:
        engine = Engine(parse_config(config_text(tmp_path, certs, mutual=True), "s.yaml"))
        await engine.start()
        server = await start_api(engine)
        url = f"https://127.0.0.1:{server.port}/api/health"
        try:
            async with aiohttp.ClientSession() as session:
                trusted = client_context(certs, with_cert=True)
                async with session.get(url, ssl=trusted) as response:
                    assert response.status == 200
                    assert await response.json() == {"status": "ok"}
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(url, ssl=client_context(certs, with_cert=False)) as r:
                        await r.read()
                with pytest.raises(aiohttp.ClientError):
                    plain = f"http://127.0.0.1:{server.port}/api/health"
                    async with session.get(plain) as r:
                        await r.read()
        finally:
            await server.close()
            await engine.stop()

    asyncio.run(main())


def test_mllp_over_tls_admits_and_acknowledges(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)

    async def main() -> None:
        text = config_text(tmp_path, certs).replace("api:\n", "api:\n  enabled: false\n", 1)
        engine = Engine(parse_config(text, "s.yaml"))
        await engine.start()
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                engine.source_port("sec"),
                ssl=client_context(certs, with_cert=False),
            )
            writer.write(START + adt("TLS1", "MRN9") + END)
            await writer.drain()
            ack = await asyncio.wait_for(reader.readuntil(END), 30)
            assert b"MSA|AA|TLS1" in ack
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object is not None and ssl_object.version() == "TLSv1.3"
            writer.close()
            await writer.wait_closed()
            stats = await engine.store.stats()
            assert stats[0].received == 1
        finally:
            await engine.stop()

    asyncio.run(main())


PLAIN = """\
version: 1
api: {{host: {api_host}{api_extra}}}
channels:
  - id: open
    source: {{type: mllp, host: {mllp_host}, port: 2575{mllp_extra}}}
    destinations:
      - {{id: out, type: file, path: out.hl7}}
"""


def test_plaintext_listeners_beyond_loopback_are_located_errors() -> None:
    def parse(api_host: str, mllp_host: str, api_extra: str = "", mllp_extra: str = "") -> None:
        text = PLAIN.format(
            api_host=api_host, api_extra=api_extra, mllp_host=mllp_host, mllp_extra=mllp_extra
        )
        parse_config(text, "plain.yaml")

    with pytest.raises(ConfigError) as api_error:
        parse("0.0.0.0", "127.0.0.1")
    [problem] = api_error.value.problems
    assert problem.startswith("plain.yaml:2:") and "api" in problem
    assert "without TLS" in problem and "allow_plaintext" in problem

    with pytest.raises(ConfigError) as mllp_error:
        parse("127.0.0.1", "10.1.2.3")
    [problem] = mllp_error.value.problems
    assert problem.startswith("plain.yaml:5:") and "channel 'open' > source" in problem
    assert "10.1.2.3 without TLS" in problem

    parse('"::1"', "localhost")
    parse("0.0.0.0", "0.0.0.0", ", allow_plaintext: true", ", allow_plaintext: true")
    parse("127.0.0.1", "0.0.0.0", "", ", tls: {cert_file: c.pem, key_file: k.pem}")


def test_cli_reaches_the_https_api(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)

    async def main() -> None:
        port = free_port()
        config = tmp_path / "s.yaml"
        config.write_text(config_text(tmp_path, certs, port=port))
        engine = Engine(parse_config(config.read_text(), "s.yaml"))
        await engine.start()
        server = await start_api(engine)
        try:
            code, out, err = await tokens_cli(
                config, "create", "wall", "--role", "viewer", "--reason", "dashboard"
            )
            assert code == 0, err
            audit = await engine.store.audit(None, 50)
            # Issued through the API: the audit names the engine's first admin token.
            assert [
                e.actor for e in audit if e.action == "token.issued" and "wall" in e.detail
            ] == ["admin"]
            assert out.strip().splitlines()[-1].startswith("tf_")
        finally:
            await server.close()
            await engine.stop()

    asyncio.run(main())
