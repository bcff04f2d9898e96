"""`thumpflow completion bash`: a shell completion script, generated from the command parser.

`eval "$(thumpflow completion bash)"` (or the output saved under
`/etc/bash_completion.d/thumpflow`) completes commands, their actions and
the options of that command or action; anything else completes file names. zsh reads the same
script after `autoload -U bashcompinit && bashcompinit`.
"""

from __future__ import annotations

import argparse
import importlib

_SCRIPT = """\
_thumpflow() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "{commands}" -- "$cur")); return
  fi
  case "${{COMP_WORDS[1]}}${{COMP_CWORD}}" in
{actions}  esac
  if [ -z "$words" ]; then
    case "${{COMP_WORDS[1]}}:${{COMP_WORDS[2]}}" in
{options}    esac
  fi
  if [ -n "$words" ] && {{ [ "${{cur#-}}" != "$cur" ] || [ "$COMP_CWORD" -eq 2 ]; }}; then
    COMPREPLY=($(compgen -W "$words" -- "$cur")); return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}}
complete -o default -F _thumpflow thumpflow
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=["bash"], help="the shell (zsh: see the module help)")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(option for action in parser._actions for option in action.option_strings)


def script() -> str:
    """The bash completion script for every command, lazily defined ones included."""
    from thumpflow.cli.main import build_parser

    parser, lazy = build_parser()
    for target, module in lazy.values():
        importlib.import_module(module).add_arguments(target)
    commands = _subcommands(parser)
    actions = []
    options: list[str] = []
    for name, command in sorted(commands.items()):
        subs = _subcommands(command)
        if subs:
            actions.append(f'    {name}2) words="{" ".join(sorted(subs))}";;\n')
            options.extend(
                f'      {name}:{action}) words="{" ".join(_options(sub))}";;\n'
                for action, sub in sorted(subs.items())
            )
        else:
            options.append(f'      {name}:*) words="{" ".join(_options(command))}";;\n')
    return _SCRIPT.format(
        commands=" ".join(sorted(commands)), actions="".join(actions), options="".join(options)
    )


def run(args: argparse.Namespace) -> int:
    print(script(), end="")
    return 0
