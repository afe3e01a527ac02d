"""The scheduler's heartbeat: one row per scheduler host in ``scheduler_heartbeat``.

A running ``regiesignaal scheduler`` writes ``beat_at`` about every ``BEAT_INTERVAL``;
``regiesignaal status`` and the metrics file report the age of the newest beat of any
host. The row is small and overwritten in place: nothing accumulates.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

import sqlalchemy as sa

from regiesignaal.engine.store.tables import scheduler_heartbeat

BEAT_INTERVAL = 60.0  # seconds between two beats of a running scheduler


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite keeps no zone: naive values read back are UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def beat(
    store: sa.Engine,
    *,
    started_at: dt.datetime,
    now: dt.datetime | None = None,
    host: str | None = None,
    pid: int | None = None,
) -> None:
    """Record that the scheduler on this host is alive now (raises SQLAlchemyError)."""
    now = now or dt.datetime.now(dt.UTC)
    host = (host or socket.gethostname())[:255]
    values = {"pid": pid or os.getpid(), "started_at": started_at, "beat_at": now}
    with store.begin() as conn:
        done = conn.execute(
            scheduler_heartbeat.update().where(scheduler_heartbeat.c.host == host).values(values)
        ).rowcount
        if not done:
            conn.execute(scheduler_heartbeat.insert().values(host=host, **values))


def last_beat(conn: sa.Connection) -> dt.datetime | None:
    """The newest beat of any scheduler (UTC), or None when no scheduler ever beat."""
    value = conn.execute(sa.select(sa.func.max(scheduler_heartbeat.c.beat_at))).scalar()
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's max() over a DateTime column returns the text
        value = dt.datetime.fromisoformat(value)
    return _utc(value)
