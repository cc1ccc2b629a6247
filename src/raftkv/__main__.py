"""``python -m raftkv ...``: the same as the ``raftkv`` command."""

import sys

from raftkv.cli import main

sys.exit(main())
