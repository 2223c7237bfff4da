"""``python -m benchmarks.bench``: compare sa1b with curl and aria2c (see ``--help``)."""

import sys

from . import main

sys.exit(main())
