"""Split: one ORU result message into one message per observation (OBX).

Each output keeps the header, patient, visit and order segments and one
OBX, and has its own event (purpose `obx-N`), so a destination that takes
one observation at a time gets them in order under the patient's ordering
key. A result without OBX segments yields nothing: it is stored and sent
nowhere.
"""

from __future__ import annotations

from collections.abc import Iterator

from thumpflow.transform import Event, Message, derive

KEPT = ("MSH", "PID", "PV1", "ORC", "OBR")


def one_per_observation(event: Event, message: Message) -> Iterator[Event]:
    header = [segment.text for segment in message.segments() if segment.id in KEPT]
    for number, observation in enumerate(message.segments_named("OBX"), 1):
        body = "\r".join([*header, observation.text]) + "\r"
        yield derive(event, body, purpose=f"obx-{number}")
