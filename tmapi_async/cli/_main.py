"""The entry point: the parser with one subcommand per module of :data:`COMMANDS`."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Protocol, cast

from ._exit import EXIT_CODES_HELP, ExitCode
from ._loop import HELP as LOOP_HELP
from ._loop import LOOPS, take_loop_option, use_loop
from ._output import UsageError, err, secrets

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommands, in the order --help lists them: each is a module of this package
#: with ``add_parser(subparsers) -> ArgumentParser`` and ``run(args) -> int``, given with
#: its line of --help, so that --help and --version import no command at all.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("harvest", "harvest the shops of a list into an export (resumable)"),
    ("estimate", "fetch page 1 of each shop: the pages and requests a harvest will cost"),
    ("diff", "what changed between two exports: new, gone and changed items"),
    ("simulate", "serve a simulated TMAPI on loopback (for tests and trials)"),
    ("demo", "harvest a few hundred simulated shops (no token, no network)"),
    ("worker", "serve the harvests submitted to a Redis (scale out)"),
    ("status", "harvests, workers and token limits of a Redis (scale out)"),
    ("dashboard", "a live status page of a Redis of harvests (scale out)"),
    ("pause", "hold a harvest: nothing new is sent for it (scale out)"),
    ("resume", "let a paused harvest go on (scale out)"),
    ("cancel", "end a harvest: its coordinator and workers stop serving it (scale out)"),
    ("forget", "delete every key of a harvest from a Redis (scale out)"),
)


class Command(Protocol):
    """What a command module offers."""

    def add_parser(self, commands: Any) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> int: ...


_EPILOG = (
    """\
examples:
  tmapi-async demo                                  # try it: a simulated TMAPI, no token
  export TMAPI_TOKEN=...                            # never printed, logged or stored
  tmapi-async estimate shops.txt                    # pages and requests a harvest costs
  tmapi-async harvest shops.txt --output items.jsonl --rate 10 --concurrency 8
  tmapi-async harvest shops.txt --output items.jsonl  # again: resumes where it stopped
  tmapi-async harvest - --output items.csv --format csv < shops.txt
  tmapi-async simulate --port 8080 --fault-rate 0.1 # serve a TMAPI simulator

"""
    + EXIT_CODES_HELP
)


class _Parser(argparse.ArgumentParser):
    """argparse, with the token scrubbed from its error messages (e.g. a mistyped flag)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {secrets.scrub(message)}\n")


def _command(name: str) -> Command:
    return cast(Command, importlib.import_module(f"{__package__}.{name}"))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``tmapi-async`` argument parser with its subcommands.

    Given ``argv``, only the command it names gets its options (the others are listed
    by name and help line): a run imports the one command it runs.
    """
    from .. import __version__

    parser = _Parser(
        prog="tmapi-async",
        description="Harvest every product of many 1688 shops through TMAPI's "
        "/1688/shop/items/v2: throttled, retried, resumable after any crash.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Taken out of the arguments by main() wherever it stands: listed here for --help.
    parser.add_argument("--loop", choices=LOOPS, help=LOOP_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # The top level has only flags without values: the first word is the command.
    wanted = None if argv is None else next((a for a in argv if not a.startswith("-")), None)
    for name, summary in COMMANDS:
        if argv is not None and name != wanted:
            commands.add_parser(name, help=summary, add_help=False)
            continue
        command = _command(name)
        sub = command.add_parser(commands)
        if sub.epilog and "exit codes" not in sub.epilog:
            sub.epilog = f"{sub.epilog}\n{EXIT_CODES_HELP}"
        sub.set_defaults(handler=command.run)
    return parser


def _collect_secrets(argv: Sequence[str]) -> None:
    """Learn the token before anything may print (argparse errors included)."""
    secrets.add(os.environ.get("TMAPI_TOKEN"))
    for i, arg in enumerate(argv):
        if arg == "--token" and i + 1 < len(argv):
            secrets.add(argv[i + 1])
        elif arg.startswith("--token="):
            secrets.add(arg.partition("=")[2])


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tmapi-async``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _collect_secrets(argv)
    argv, loop = take_loop_option(argv)
    parser = build_parser(argv)
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        use_loop(loop)
        return handler(args)
    except UsageError as exc:
        err(f"tmapi-async {args.command}: error: {exc}")
        return ExitCode.USAGE
    except KeyboardInterrupt:  # before the signal handlers were installed
        err("interrupted")
        return ExitCode.SIGINT
    except BrokenPipeError:  # e.g. piped into head: not an error worth a traceback
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return ExitCode.OK
