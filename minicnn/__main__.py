"""``python -m minicnn``: the same as the ``minicnn`` command (see :mod:`minicnn.cli`)."""

import sys

from .cli import main

sys.exit(main())
