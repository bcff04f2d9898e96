"""`thumpflow simulate hospital`: a small hospital's ADT and bed-status traffic, sent live.

Reads the configuration's `views.units` (the first `ed` unit is the ED) and
sends the seeded traffic of `thumpflow.testing.hospital.Hospital`: ADT over
MLLP to the listener of `--adt-channel`, bed-status JSON over HTTP ingest
to `--evs-channel` (the API at `api.host:api.port`, with the token in
`--token-file`, default the admin token beside the store). Messages are
paced at `--rate` per second (source times are the real send times) unless
`--fast`. Every message must be acknowledged (`AA`, `202`); the first one
that is not stops the run with exit status 1 and says which (by number and
answer code, never content). Only sends where the configuration points.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp

from thumpflow.config import load_config
from thumpflow.config.model import Config
from thumpflow.connectors.mllp.spec import MllpSourceSpec
from thumpflow.core.errors import ThumpflowError
from thumpflow.testing.hospital import HL7, Hospital, Traffic
from thumpflow.testing.load import END, START


def add_options(parser: argparse.ArgumentParser) -> None:
    """Options of `simulate hospital`."""
    parser.add_argument("-c", "--config", required=True, help="configuration with `views:`")
    parser.add_argument("--count", type=int, default=200, help="messages to send (200)")
    parser.add_argument("--rate", type=float, default=5.0, help="messages per second (5)")
    parser.add_argument("--fast", action="store_true", help="do not pace; send at once")
    parser.add_argument("--seed", type=int, default=1, help="the day's seed (1)")
    parser.add_argument("--adt-channel", default="adt-in", help="MLLP channel for ADT")
    parser.add_argument("--evs-channel", default="evs-in", help="HTTP channel for bed status")
    parser.add_argument("--token-file", help="API token for HTTP ingest (admin token file)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.views is None:
        raise ThumpflowError(f"{args.config}: no `views:` section to simulate a hospital for")
    units = {unit.id: unit.bed_names() for unit in config.views.units}
    ed = next((unit.id for unit in config.views.units if unit.kind == "ed"), None)
    if ed is None or len(units) < 2:
        raise ThumpflowError(f"{args.config}: views.units needs an `ed` unit and a ward")
    hospital = Hospital(
        units,
        ed,
        seed=args.seed,
        start=time.time(),
        adt_channel=args.adt_channel,
        evs_channel=args.evs_channel,
    )
    traffic = list(hospital.traffic(args.count, args.rate))
    token_file = Path(args.token_file) if args.token_file else config.admin_token_path()
    try:
        token = token_file.read_text().strip()
    except OSError as err:
        raise ThumpflowError(f"{token_file}: cannot read the API token ({err.strerror})") from None
    sent = asyncio.run(_play(config, args, traffic, token))
    print(f"sent {sent} messages ({sum(t.content_type == HL7 for t in traffic)} ADT)")
    return 0 if sent == len(traffic) else 1


def _mllp_port(config: Config, channel_id: str) -> tuple[str, int]:
    for channel in config.channels:
        if channel.id == channel_id and isinstance(channel.source, MllpSourceSpec):
            return channel.source.host, channel.source.port
    raise ThumpflowError(f"channel {channel_id!r} has no MLLP source to send ADT to")


async def _play(
    config: Config, args: argparse.Namespace, traffic: list[Traffic], token: str
) -> int:
    host, port = _mllp_port(config, args.adt_channel)
    base = f"http://{config.api.host}:{config.api.port}"
    reader, writer = await asyncio.open_connection(host, port)
    headers = {"Authorization": f"Bearer {token}"}
    sent = 0
    try:
        async with aiohttp.ClientSession(base_url=base, headers=headers) as http:
            for number, item in enumerate(traffic, start=1):
                if not args.fast:
                    await asyncio.sleep(max(0.0, item.at - time.time()))
                if item.content_type == HL7:
                    writer.write(START + item.body + END)
                    ack = await asyncio.wait_for(reader.readuntil(END), 10)
                    code = ack.split(b"MSA|", 1)[-1][:2].decode("ascii", "replace")
                    ok = code in ("AA", "CA")
                else:
                    path = f"/api/channels/{item.channel}/messages"
                    async with http.post(
                        path, data=item.body, headers={"Content-Type": item.content_type}
                    ) as answer:
                        code, ok = str(answer.status), answer.status == 202
                if not ok:
                    print(f"message {number} was answered {code}; stopping")
                    return sent
                sent += 1
    finally:
        writer.close()
    return sent
