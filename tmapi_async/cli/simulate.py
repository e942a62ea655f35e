"""``tmapi-async simulate``: the TMAPI simulator of :mod:`tmapi_async.testing`, whose
own command line owns every flag; it is loaded only when this command runs, so that
``tmapi-async --help`` does not import the simulator's web server."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``simulate``; its arguments go to the simulator's parser as they are."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "simulate",
        help="serve a simulated TMAPI on loopback (for tests and trials)",
        add_help=False,  # --help is the simulator's
        prefix_chars="\0",  # every argument is the simulator's, none ours
    )
    parser.set_defaults(passthrough=True)
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    from ..testing._cli import configure_parser
    from ..testing._cli import run as serve

    parser = argparse.ArgumentParser(prog="tmapi-async simulate")
    configure_parser(parser)
    return serve(parser.parse_args(args.rest))
