"""``python -m tmapi_async.testing``: serve the TMAPI simulator (see ``--help``)."""

import sys

from ._cli import main

sys.exit(main())
