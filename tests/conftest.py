"""Suite-wide set-up: quiet, readable logs (tests that check log events capture them themselves)."""

import os
import tempfile

from bargein.logs import configure_logging

configure_logging(level=os.environ.get("BARGEIN_TEST_LOG_LEVEL", "WARNING"), json=False)

# servers keep contact records and recordings in BARGEIN_DATA_DIR: never in the working tree during tests
os.environ.setdefault("BARGEIN_DATA_DIR", tempfile.mkdtemp(prefix="bargein-test-data-"))

# a real PostgreSQL for the contact-store tests (helpers/postgres_server.py): postgres, postgres_url, database_url
from helpers.postgres_server import database_url, postgres, postgres_url  # noqa: E402, F401
