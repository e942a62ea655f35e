"""``python -m tmapi_async``: the ``tmapi-async`` command line (see ``--help``)."""

import sys

from ._cli import main

sys.exit(main())
