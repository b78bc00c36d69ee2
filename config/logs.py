"""JSON log lines with the request id attached and secrets scrubbed.

Written by hand (about 40 lines) rather than adding a dependency: the format is one JSON
object per line plus a redaction pass, and the redaction is the part we must own anyway.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from config.context import current_request_id

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# Platform keys, provider keys, bearer tokens, Stripe and webhook secrets, Fernet tokens.
_SECRET_PATTERNS = re.compile(
    r"(oxi_[0-9a-f]{8,}|sk-[A-Za-z0-9_\-]{8,}|sk_(live|test)_[A-Za-z0-9]{8,}|whsec_[A-Za-z0-9+/=]{8,}"
    r"|oxs_[A-Za-z0-9_\-]{8,}|gAAAAA[A-Za-z0-9_\-=]{20,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
)


def redact(text: str) -> str:
    return _SECRET_PATTERNS.sub("[REDACTED]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = current_request_id()
        if rid:
            payload["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_NOISY = ("uvicorn.access", "httpx", "httpcore", "temporalio.worker._workflow_instance")
_PLAIN_FORMAT = "%(levelname)s %(name)s %(message)s"


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter(_PLAIN_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def logging_dict(level: str = "INFO", *, json_lines: bool = True) -> dict[str, Any]:
    """`configure_logging` as a `logging.config.dictConfig` document, for processes we do not
    start ourselves: uvicorn applies it in each of its `--workers` processes."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if json_lines
        else {"()": f"{__name__}.PlainFormatter", "fmt": _PLAIN_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"oxinf": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "oxinf",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"level": "WARNING"} for name in _NOISY},
    }
