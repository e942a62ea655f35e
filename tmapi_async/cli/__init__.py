"""The ``tmapi-async`` command line (also ``python -m tmapi_async``).

One module per subcommand, each with ``add_parser(subparsers)`` and ``run(args) -> int``,
registered by one line of :data:`COMMANDS` (its name and its line of --help); exit codes
come from one table (:class:`ExitCode`). A run imports only the command it runs, and a
command imports heavy modules (the client, aiohttp, rich, pyarrow) inside ``run``, so
``--help`` and ``--version`` are quick.
"""

from ._exit import ExitCode
from ._main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "ExitCode", "build_parser", "main"]
