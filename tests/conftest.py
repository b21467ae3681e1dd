"""Suite-wide set-up: quiet, readable logs (tests that check log events capture them themselves)."""

import os

from bargein.logs import configure_logging

configure_logging(level=os.environ.get("BARGEIN_TEST_LOG_LEVEL", "WARNING"), json=False)
