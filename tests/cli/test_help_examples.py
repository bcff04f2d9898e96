"""Every command's `--help` ends with examples, and every example parses as written."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex

import pytest

from tests.cli.test_first_run import thumpflow
from thumpflow.cli.examples import CONFIG_NOTE, EXAMPLES
from thumpflow.cli.main import build_parser

_COMMAND = re.compile(r"thumpflow [^\n)|>]*")


def _commands() -> list[str]:
    parser, _ = build_parser()
    (commands,) = [
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    ]
    return sorted(commands.choices)


def test_every_command_has_examples() -> None:
    assert _commands() == sorted(EXAMPLES)


@pytest.mark.parametrize(
    "command", [("run",), ("send",), ("dlq",), ("rejects",), ("tokens",), ("mapping", "test")]
)
def test_help_ends_with_examples_as_printed(command: tuple[str, ...]) -> None:
    done = thumpflow(*command, "--help")
    assert done.returncode == 0, done.stderr
    shown = done.stdout.split("\nexamples:\n", 1)[1]
    first = EXAMPLES[command[0]][0]
    assert shown.startswith(f"  {first}\n"), shown


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_each_example_is_accepted_by_the_parser(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if CONFIG_NOTE[1] in EXAMPLES[command]:
        monkeypatch.setenv("THUMPFLOW_CONFIG", "thumpflow.yaml")
    else:
        monkeypatch.delenv("THUMPFLOW_CONFIG", raising=False)
    lines = [match.strip() for line in EXAMPLES[command] for match in _COMMAND.findall(line)]
    assert lines, f"{command} has no example command"
    for line in lines:
        words = shlex.split(line)[1:]
        assert words[0] == command, line
        parser, lazy = build_parser()
        if command in lazy:
            target, module = lazy[command]
            importlib.import_module(module).add_arguments(target)
        refused = io.StringIO()
        with contextlib.redirect_stderr(refused):
            try:
                parser.parse_args(words)
            except SystemExit:
                pytest.fail(f"{line!r} is refused: {refused.getvalue()}")
