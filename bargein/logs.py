"""structlog set-up: readable in a terminal, JSON in production."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    """Configure structlog once for the process. ``BARGEIN_LOG_LEVEL`` / ``BARGEIN_LOG_JSON`` override."""
    level = (level or os.environ.get("BARGEIN_LOG_LEVEL") or "INFO").upper()
    os.environ["BARGEIN_LOG_LEVEL"] = level  # child processes (media workers) log at the same level
    if json is None:
        json = os.environ.get("BARGEIN_LOG_JSON", "").lower() in ("1", "true", "yes") or not sys.stderr.isatty()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,  # a bound logger per call site, not a re-bind per event
    )
