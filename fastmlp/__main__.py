"""``python -m fastmlp``: the ``fastmlp`` command (see :mod:`fastmlp.cli`)."""

import sys

from fastmlp.cli import main

sys.exit(main())
