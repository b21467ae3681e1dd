"""``python -m bargein.simulator``: the ``bargein simulate`` command on its own."""

import sys

from .cli import main

sys.exit(main())
