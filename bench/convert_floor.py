"""How much of a converted ADT^A01's cost is building the Bundle's containers.

Run: `.venv/bin/python bench/convert_floor.py [SECONDS]`. For the same 300
generated ADT^A01 messages as `convert_bench.py`, prints microseconds of CPU
per message for:

- `convert`: the whole conversion (parse, map, Bundle dict);
- `literal`: building each finished Bundle again from one generated Python
  expression (nested dict and list displays, its values read from a list):
  the least Python code can spend creating that many containers;
- `orjson.loads`: orjson (C) building the same tree from its JSON;
- and the Bundle's size: containers, values and entries.

`convert` minus `literal` is what reading the message and deciding what to
write costs; the 5,000/s target is 200 µs a message.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from thumpflow.mapping import convert, to_json
from thumpflow.testing.generators import adt_a01

_CONTAINERS = (dict, list)


def per_item(work: Callable[[Any], object], items: list[Any], seconds: float) -> float:
    done = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for item in items:
            work(item)
        done += len(items)
    return (time.process_time() - start) / done * 1e6


def literal_builder(bundle: dict[str, Any]) -> tuple[Callable[[list[Any]], object], list[Any]]:
    """A function building `bundle` again from one expression, and the values it reads."""
    values: list[Any] = []

    def source(value: Any) -> str:
        if type(value) is dict:
            return "{" + ", ".join(f"{key!r}: {source(item)}" for key, item in value.items()) + "}"
        if type(value) is list:
            return "[" + ", ".join(source(item) for item in value) + "]"
        values.append(value)
        return f"v[{len(values) - 1}]"

    namespace: dict[str, Any] = {}
    exec(f"def build(v):\n    return {source(bundle)}\n", namespace)
    return namespace["build"], values


def size(value: Any) -> tuple[int, int]:
    """(containers, values) in `value`."""
    if type(value) not in _CONTAINERS:
        return 0, 1
    items = value.values() if type(value) is dict else value
    containers, values = 1, 0
    for item in items:
        more_containers, more_values = size(item)
        containers += more_containers
        values += more_values
    return containers, values


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    messages = [adt_a01(f"MRN{i}", f"A{i}", seed=i) for i in range(300)]
    bundles = [convert(raw) for raw in messages]
    texts = [to_json(bundle) for bundle in bundles]
    builders = [literal_builder(bundle) for bundle in bundles]
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"convert       {per_item(convert, messages, seconds):6.0f} µs/message")
    literal = per_item(lambda built: built[0](built[1]), builders, seconds)
    print(f"literal       {literal:6.0f} µs/message")
    print(f"orjson.loads  {per_item(orjson.loads, texts, seconds):6.0f} µs/message")
    sizes = [size(bundle) for bundle in bundles]
    containers = sum(c for c, _ in sizes) / len(sizes)
    values = sum(v for _, v in sizes) / len(sizes)
    entries = sum(len(bundle["entry"]) for bundle in bundles) / len(bundles)
    print(f"bundle        {containers:.0f} containers, {values:.0f} values, {entries:.0f} entries")


if __name__ == "__main__":
    main()
