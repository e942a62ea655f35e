"""The ``tmapi-async`` command line (also ``python -m tmapi_async``).

One module per subcommand (:data:`COMMANDS`), each with ``add_parser(subparsers)`` and
``run(args) -> int``; exit codes come from one table (:class:`ExitCode`). Heavy modules
(the client, aiohttp, rich, pyarrow) are imported inside ``run``, so ``--help`` is quick.
"""

from ._exit import ExitCode
from ._main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "ExitCode", "build_parser", "main"]
