"""Structured logging: JSON (or console) records on stderr, every record through the redaction layer."""

from __future__ import annotations

import logging
import sys

import structlog

from chargeguard.vault.redact import redact_event_dict

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _StderrLogger:
    """Writes rendered records to whatever ``sys.stderr`` is at call time (test runners swap it)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        try:
            stream.write(message + "\n")
            stream.flush()
        except (ValueError, OSError):
            pass  # stderr closed (interpreter shutdown, a finished test's capture): drop the record, never raise

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _StderrLoggerFactory:
    def __call__(self, *args: object) -> _StderrLogger:
        return _StderrLogger()


def configure_logging(level: str = "warning", fmt: str = "json") -> None:
    """Configure structlog once per process; redaction runs last before rendering, so nothing escapes it."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_event_dict,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.WARNING)),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )
