"""A service's top-level command line: `attain-<name> [serve]`, or `python -m services.<name> [serve]`.

`serve` (the default) runs the service; the other commands are administration, each with its own parser.
`--help` prints the commands and exits 0 before anything is imported that starts, connects or reads a
setting; an unknown argument is a usage error (exit status 2) and starts nothing either.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

EXIT_USAGE = 2
S = TypeVar("S")


@dataclass(frozen=True)
class Command:
    """An administration command beside `serve`: one line of help, and its main (given the arguments after it)."""

    help: str
    main: Callable[[list[str]], int]


def program(module: str) -> str:
    """The name the user ran: the console script (`attain-kpi`), else `python -m <module>`."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name.startswith("attain-") else f"python -m {module}"


def settings_problems(err: ValidationError) -> str:
    """A settings error on one line, each problem under its environment variable's name, without the values."""
    lines = []
    for error in err.errors(include_input=False):
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        lines.append(message if not name or message.startswith(name) else f"{name}: {message}")
    return "; ".join(lines)


def service_main(module: str, description: str, settings: Callable[[], S], serve: Callable[[S], object],
                 commands: Mapping[str, Command] | None = None, argv: Sequence[str] | None = None) -> int:
    """Parse the command line of the service in `module` and run what it names; the exit status.

    For `serve` (or no command) the settings are read (`settings()`: a missing or wrong one is said on one line,
    exit status 2), then `serve(settings)` runs the server. A command of `commands` gets the arguments after its
    name (its own `--help` included).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    commands = commands or {}
    if args and args[0] in commands:
        return commands[args[0]].main(args[1:])
    parser = argparse.ArgumentParser(prog=program(module), description=description)
    sub = parser.add_subparsers(dest="command", title="commands", metavar="[COMMAND]")
    sub.add_parser("serve", help="run the service until SIGTERM (the default)",
                   description="Run the service until SIGTERM or Ctrl-C; every setting comes from the environment.")
    for name, command in commands.items():
        sub.add_parser(name, help=command.help, add_help=False)  # dispatched above, to its own parser
    parser.parse_args(args)  # --help: exit 0; an unknown argument: exit 2
    try:
        read = settings()
    except ValidationError as err:  # its message, no traceback, nothing started
        print(f"error: {settings_problems(err)}", file=sys.stderr)  # noqa: T201 - before logging is configured
        return EXIT_USAGE
    serve(read)
    return 0
