"""`thumpflow advise`: answer the architect's questions, get flow, thump or a hybrid, and why.

Answers come from `--file answers.yaml` (keys as the flags, with `_`),
then from flags (which win), then, for what is still missing, from
questions asked on the terminal when stdin is one (and `--no-input` is not
given). Exit status: 0 with advice, 2 when answers are missing or invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from thumpflow.thump.advise import QUESTIONS, advise, answers_from_mapping, missing_answers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare one flag per question, `--file`, `--json` and `--no-input`."""
    parser.add_argument("--file", "-f", help="YAML file with the answers")
    parser.add_argument("--latency", help="most staleness the receiver tolerates (30s, 15m, 4h)")
    parser.add_argument("--peak-per-second", type=float, help="peak volume, records per second")
    parser.add_argument("--average-per-day", type=float, help="average volume, records per day")
    for question in QUESTIONS:
        if question.choices:
            parser.add_argument(
                f"--{question.name.replace('_', '-')}",
                choices=question.choices,
                help=question.prompt,
            )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--no-input", action="store_true", help="never ask; fail when answers are missing"
    )


def run(args: argparse.Namespace) -> int:
    """Collect the answers, print the advice; see the module docstring."""
    data: dict[str, Any] = {}
    if args.file:
        try:
            loaded = yaml.safe_load(Path(args.file).read_text("utf-8"))
        except OSError as exc:
            print(f"{args.file}: cannot read: {exc.strerror}", file=sys.stderr)
            return 2
        except yaml.YAMLError as exc:
            print(f"{args.file}: not YAML: {exc}", file=sys.stderr)
            return 2
        if not isinstance(loaded, dict):
            print(f"{args.file}: expected a mapping of answers", file=sys.stderr)
            return 2
        data.update(loaded)
    for question in QUESTIONS:
        value = getattr(args, question.name, None)
        if value is not None:
            data[question.name] = value
    if missing_answers(data) and sys.stdin.isatty() and not args.no_input:
        _ask(data)
    missing = missing_answers(data)
    if missing:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
        print(f"thumpflow advise: missing answers: {flags}", file=sys.stderr)
        return 2
    try:
        advice = advise(answers_from_mapping(data))
    except ValueError as exc:
        print(f"thumpflow advise: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(advice.to_dict(), indent=2) if args.json else advice.render())
    return 0


def _ask(data: dict[str, Any]) -> None:
    for question in QUESTIONS:
        if data.get(question.name) is not None:
            continue
        choices = f" [{'/'.join(question.choices)}]" if question.choices else ""
        while True:
            try:
                answer = input(f"{question.prompt}{choices} ").strip()
            except EOFError:
                return
            if answer and (not question.choices or answer in question.choices):
                data[question.name] = answer
                break
