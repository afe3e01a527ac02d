"""Log lines: one line per event, plain or JSON (``[logging] format``).

Plain: ``2026-03-02 06:00:01.234+01:00 INFO regiesignaal.run: run 12 started ...`` (the
time with its zone offset, the machine's local zone, as the scheduler prints its times).
JSON: one object per line with ``ts`` (ISO 8601, UTC), ``level``, ``logger`` and
``event`` (the message), plus ``error`` (the exception type only) when one is attached.
Messages hold ids and counts only; bodies and case contents are never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ZonedFormatter(logging.Formatter):
    """The plain format, its time stamp with the zone offset (ISO 8601)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = dt.datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(sep=" ", timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage().replace("\n", " "),
        }
        if record.exc_info and record.exc_info[0] is not None:
            data["error"] = record.exc_info[0].__name__
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: int, fmt: str = "plain") -> None:
    """Configure the root logger like ``logging.basicConfig``: a handler (stderr) is added
    only when there is none yet; ``fmt`` is 'plain' or 'json'."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter() if fmt == "json" else ZonedFormatter(PLAIN_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter, not ours
