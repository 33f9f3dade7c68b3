"""``python -m meterline``: the ``meterline`` command."""

import sys

from meterline.cli import main

sys.exit(main())
