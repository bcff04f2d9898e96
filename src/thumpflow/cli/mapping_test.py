"""`thumpflow mapping test [DIR]`: run the golden mapping cases.

A case is a folder holding `input.hl7` and `expected.json` (the exact Bundle
`thumpflow.mapping.convert` must produce, as `to_json(..., pretty=True)` writes
it, so number precision is compared too). Prints `PASS`/`FAIL` per case and,
for a failure, the first differences as JSON paths with expected and actual
values. `--update` rewrites `expected.json` from the current output (for a
person reviewing a deliberate change). Exit status 1 when any case fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from thumpflow.mapping import ConversionError, convert, to_json

DEFAULT_DIR = Path("tests/mappings")
MAX_DIFFS = 10


def find_cases(root: Path) -> list[Path]:
    """Every folder under `root` (itself included) that holds an `input.hl7`, sorted."""
    return sorted(p.parent for p in root.rglob("input.hl7"))


def actual_bundle(case: Path) -> dict[str, Any]:
    """The Bundle the maps produce today for `case`'s input."""
    return convert((case / "input.hl7").read_bytes())


def expected_text(bundle: dict[str, Any]) -> str:
    """The text of `expected.json` for `bundle`: indented, sorted keys, final newline."""
    return to_json(bundle, pretty=True).decode("utf-8") + "\n"


def golden_differences(expected: str, bundle: dict[str, Any]) -> list[str]:
    """How `bundle` departs from the `expected.json` text: JSON paths with
    expected and actual values, or the first differing line when the values
    are equal but their text is not (number precision, `1.50` vs `1.5`)."""
    actual = expected_text(bundle)
    if actual == expected:
        return []
    diffs = differences(json.loads(expected), json.loads(actual))
    if diffs:
        return diffs
    for number, (want, got) in enumerate(
        zip(expected.splitlines(), actual.splitlines(), strict=False), start=1
    ):
        if want != got:
            return [f"line {number}: expected {want.strip()}, got {got.strip()}"]
    return ["the text differs in length (trailing content)"]


def differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Readable differences between two JSON values, in document order."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in list(expected) + [k for k in actual if k not in expected]:
            sub = f"{path}.{key}"
            if key not in actual:
                out.append(f"{sub}: missing (expected {_short(expected[key])})")
            elif key not in expected:
                out.append(f"{sub}: unexpected {_short(actual[key])}")
            else:
                out.extend(differences(expected[key], actual[key], sub))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = []
        for i in range(max(len(expected), len(actual))):
            sub = f"{path}[{i}]"
            if i >= len(actual):
                out.append(f"{sub}: missing (expected {_short(expected[i])})")
            elif i >= len(expected):
                out.append(f"{sub}: unexpected {_short(actual[i])}")
            else:
                out.extend(differences(expected[i], actual[i], sub))
        return out
    if expected != actual:
        return [f"{path}: expected {_short(expected)}, got {_short(actual)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def write_expected(case: Path, bundle: dict[str, Any]) -> None:
    """Write `bundle` as `case`'s `expected.json`."""
    (case / "expected.json").write_text(expected_text(bundle), encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare `[DIR]` and `--update`."""
    parser.add_argument(
        "dir",
        nargs="?",
        default=str(DEFAULT_DIR),
        metavar="DIR",
        help="folder of cases, each a folder with input.hl7 beside expected.json, searched "
        "below DIR (default: tests/mappings, the repository's)",
    )
    parser.add_argument(
        "--update", action="store_true", help="rewrite expected.json from the current output"
    )


def run(args: argparse.Namespace) -> int:
    """Run every case under DIR; see the module docstring."""
    root = Path(args.dir)
    cases = find_cases(root)
    if not cases:
        print(
            f"{root.resolve()}: no mapping cases (folders with input.hl7 beside expected.json); "
            "name the folder holding yours: thumpflow mapping test DIR",
            file=sys.stderr,
        )
        return 1
    failures = 0
    for case in cases:
        name = case.relative_to(root) if case != root else Path(case.name)
        try:
            actual = actual_bundle(case)
        except ConversionError as exc:
            print(f"FAIL {name}: {exc}")
            failures += 1
            continue
        if args.update:
            write_expected(case, actual)
            print(f"UPDATED {name}")
            continue
        expected_file = case / "expected.json"
        if not expected_file.exists():
            print(f"FAIL {name}: no expected.json (run with --update to create it)")
            failures += 1
            continue
        diffs = golden_differences(expected_file.read_text(encoding="utf-8"), actual)
        if diffs:
            failures += 1
            print(f"FAIL {name}")
            for line in diffs[:MAX_DIFFS]:
                print(f"    {line}")
            if len(diffs) > MAX_DIFFS:
                print(f"    ... {len(diffs) - MAX_DIFFS} more")
        else:
            print(f"PASS {name}")
    print(f"{len(cases) - failures} passed, {failures} failed")
    return 1 if failures else 0
