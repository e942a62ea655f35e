"""``python -m tmapi_async``: the ``tmapi-async`` command line (see ``--help``)."""

import sys

from .cli import main

sys.exit(main())
