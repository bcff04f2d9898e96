"""Examples shown under each command's `--help` (its epilog), in one table.

Every line starting with `thumpflow ` is a command the parser accepts as
written (`tests/cli/test_help_examples.py` parses each one), so the examples
cannot drift from the options. A shell redirect or pipe after the command
is allowed; lines after a blank line are notes.
"""

from __future__ import annotations

import argparse

CONFIG_NOTE = (
    "",
    "They read the configuration named by $THUMPFLOW_CONFIG; add --config FILE otherwise.",
)

EXAMPLES: dict[str, tuple[str, ...]] = {
    "run": (
        "thumpflow run --config examples/thumpflow.yaml --log-format text",
        "",
        "SIGTERM or Ctrl-C stops it; SIGHUP (systemctl reload) reloads the configuration.",
    ),
    "check": (
        "thumpflow check --config examples/thumpflow.yaml",
        "thumpflow check --config examples/thumpflow.yaml --strict "
        "--messages examples/messages/*.hl7",
    ),
    "send": (
        "thumpflow send 127.0.0.1:2575 examples/messages/*.hl7",
        "thumpflow send --tls --ca-file ca.pem engine.example.org:2575 adt.hl7",
    ),
    "status": ("thumpflow status --config examples/thumpflow.yaml --json",),
    "dlq": (
        "thumpflow dlq list --destination lab-system --reason-contains 422",
        'thumpflow dlq show 42 --body --reason "ticket 1234: the lab reads it garbled"',
        'thumpflow dlq replay --destination lab-system --all --reason "lab interface back up"',
        'thumpflow dlq replay --id 42 --out-of-order --reason "receiver merges by time"',
        "thumpflow dlq edit 42 --file fixed.hl7 --reason 'PID-8 corrected'",
        *CONFIG_NOTE,
    ),
    "try": (
        "thumpflow try --config examples/thumpflow.yaml hl7-in "
        "examples/messages/oru-r01-critical-potassium.hl7",
    ),
    "convert": (
        "thumpflow convert examples/messages/adt-a01-admit.hl7 --pretty",
        "thumpflow convert --out bundles/ examples/messages/*.hl7",
    ),
    "simulate": (
        "thumpflow simulate ehr --port 8090",
        "thumpflow simulate hospital --config examples/capacity.yaml --count 50 --fast",
    ),
    "runs": (
        "thumpflow runs list nightly-census",
        "thumpflow runs show 17",
        'thumpflow runs start nightly-census --reason "source fixed, run it now"',
        "thumpflow runs rerun nightly-census --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z",
        *CONFIG_NOTE,
    ),
    "rejects": (
        "thumpflow rejects messages --contains MSH-9",
        'thumpflow rejects message 12 --reason "fix the registration feed" > fixed.hl7',
        'thumpflow rejects reprocess 12 --edit fixed.hl7 --reason "MSH-9 added"',
        "thumpflow rejects list --job nightly-census",
        "thumpflow rejects replay 3 4 --file corrected.csv",
        *CONFIG_NOTE,
    ),
    "advise": (
        "thumpflow advise",
        "thumpflow advise --file interface.yaml --json --no-input",
    ),
    "audit": (
        "thumpflow audit verify",
        "thumpflow audit list --subject delivery:42",
        "thumpflow audit list --action payload.viewed --json",
        *CONFIG_NOTE,
    ),
    "cluster": (
        "thumpflow cluster status",
        "thumpflow cluster status --json",
        *CONFIG_NOTE,
    ),
    "store": (
        "thumpflow store purge",
        "thumpflow store keygen",
        "thumpflow store copy --from var/thumpflow.db --to postgresql://thumpflow@db/thumpflow",
        *CONFIG_NOTE,
    ),
    "tokens": (
        'thumpflow tokens create lab-sender --role sender --reason "lab posts results over HTTP"',
        "thumpflow tokens list",
        'thumpflow tokens revoke 3 --reason "the lab system was replaced"',
        *CONFIG_NOTE,
    ),
    "reload": (
        "thumpflow reload --config /etc/thumpflow/thumpflow.yaml "
        '--reason "route ORU to the new lab system"',
    ),
    "completion": ('eval "$(thumpflow completion bash)"',),
    "views": (
        "thumpflow views rebuild --board --unit ICU",
        "thumpflow views reconcile census.csv --as-of 2026-12-05T06:00:00+01:00",
        *CONFIG_NOTE,
    ),
    "config": (
        "thumpflow config docs > docs/configuration.md",
        "thumpflow config schema | head",
    ),
    "bench": ("thumpflow bench --messages 5000 --connections 1,8",),
    "mapping": ("thumpflow mapping test ~/interfaces/lab/mapping-cases",),
}


def epilog(command: str) -> str | None:
    """The `--help` epilog of `command`: its examples, one per line, then any notes."""
    lines = EXAMPLES.get(command)
    if not lines:
        return None
    return "examples:\n" + "\n".join(f"  {line}" if line else "" for line in lines)


def attach(command: str, parser: argparse.ArgumentParser) -> None:
    """Show `command`'s examples under its `--help`, keeping their line breaks."""
    parser.epilog = epilog(command)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
