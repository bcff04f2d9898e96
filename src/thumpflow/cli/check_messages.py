"""`thumpflow check --messages FILE...`: run the channels' transforms on sample messages.

Each message of each file goes through every enabled channel's pipeline
exactly as the engine runs it (`flow.explain`: filter, channel transform
with the output checks the store would otherwise enforce, routing, and each
receiving destination's transform). A message a channel would refuse, or a
delivery a destination transform would dead-letter, is one located line
naming the file, the message's number, the channel and destination and the
reason the engine would give (no message values).
"""

from __future__ import annotations

import time
from pathlib import Path

from thumpflow.config.model import Config
from thumpflow.core.errors import MessageError
from thumpflow.flow.explain import explain
from thumpflow.flow.pipeline import ChannelPipeline
from thumpflow.hl7v2 import Message, split_messages
from thumpflow.runtime.transform_modules import channel_transforms


def transform_problems(config: Config, files: list[str]) -> list[str]:
    """One line per refusal the engine would make for these messages (see the module)."""
    pipelines = []
    for channel in config.channels:
        if not channel.enabled:
            continue
        transforms = channel_transforms(channel)
        pipeline = ChannelPipeline(channel, transforms.transform, config.partner(channel.id))
        pipelines.append((pipeline, transforms.by_destination))
    problems: list[str] = []
    for name in files:
        try:
            raws = split_messages(Path(name).read_bytes())
        except OSError as err:
            problems.append(f"{name}: cannot read: {err.strerror or err}")
            continue
        except MessageError as err:
            problems.append(f"{name}: {err.describe()}")
            continue
        for number, raw in enumerate(raws, 1):
            where = f"{name}: message {number}"
            try:
                message = Message.parse(raw)
                message.validate_structure()
            except MessageError as err:
                problems.append(f"{where}: would be refused: {err.describe()}")
                continue
            for pipeline, by_destination in pipelines:
                found = explain(pipeline, message, raw, time.time(), by_destination)
                named = f"channel {pipeline.channel_id!r}"
                if found.transform_error is not None:
                    reason = found.transform_error.split(" [", 1)[0]
                    problems.append(f"{where}: {named}: would be refused: {reason}")
                for route in found.routes:
                    if route.transform_error is not None:
                        problems.append(
                            f"{where}: {named} > destination {route.destination_id!r}: "
                            f"would be dead-lettered: {route.transform_error}"
                        )
    return problems
