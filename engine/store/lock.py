"""One run at a time per store, across hosts: the run lock.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) taken on a
connection of its own and held for the whole run. The server releases it when that
connection ends, so the lock dies with its holder: a process killed on another host,
or a container that vanished, never blocks the next run. Whoever holds it is named by
the ``application_name`` of the holding connection (``regiesignaal <host> pid <pid>``).

SQLite: the one row of table ``run_lock``, inserted (primary key 1, so only one insert
can succeed) by the process that takes the lock and deleted when it lets go. Its
heartbeat (written every ``HEARTBEAT_INTERVAL``, as is ``runs.heartbeat_at``) tells a
live holder from a dead one: a row without a heartbeat for ``HEARTBEAT_STALE``, or of a
process on this host that no longer exists, is taken over, whatever host wrote it.

A run that holds the lock marks every other ``running`` row that is dead as ``aborted``
(its work is resumable: rerunning the date gives the same signals and sends nothing
twice). ``abort_run`` is the operator's command for a run that is stuck.

The lock fails closed (issue 17): holding the lock is not proof that every other run is
dead. A run whose lock session dropped (an idle-session timeout, a failover, a terminated
backend) is still alive, so a ``running`` row is only aborted when its holder is gone:
on this host its pid no longer exists; on PostgreSQL no connection of the database carries
its name (every connection of a run is named ``regiesignaal <host> pid <pid>``); on
SQLite its heartbeat is older than ``HEARTBEAT_STALE``. The second run then finds the one
running row taken and is recorded ``locked``. The run that lost its lock notices at the
start of its next stage (:func:`ensure_lock`, called by the pipeline before every stage,
so before any write of that stage) and stops with :class:`LockLost`.

The lock is re-entrant within one process: the nightly job takes it before pulling an
export and the run inside it does not take it again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.store.tables import run_lock as run_lock_table
from regiesignaal.engine.store.tables import runs

log = logging.getLogger("regiesignaal.lock")

LOCK_KEY = 0x7265_6769  # "regi": the advisory lock's key, one per store database
HEARTBEAT_INTERVAL = 30.0  # seconds between heartbeats of a running run
HEARTBEAT_FIRST = 2.0  # seconds before the first heartbeat
HEARTBEAT_STALE = dt.timedelta(minutes=5)  # no heartbeat for this long: the run is dead
EXIT_LOCKED = 4  # exit code of a command refused because another run holds the lock

_held = threading.local()
_process_holds = 0  # re-entrancy count for this process
_holding: dict[str, Any] = {}  # while held: the store and the lock connection or token


class LockLost(RuntimeError):
    """This run no longer holds the run lock; it stops before its next write."""

    def __init__(self) -> None:
        super().__init__(
            "de run heeft zijn vergrendeling verloren (de verbinding met de database viel "
            "weg); hij is gestopt voor de volgende schrijfstap. Draai de peildatum opnieuw."
        )

    @property
    def label(self) -> str:
        return str(self)


class LockHeld(Exception):
    """Another run holds the lock; ``str()`` names the holder in Dutch."""

    def __init__(self, holder: str):
        super().__init__(
            f"er loopt al een run ({holder}); er draait nooit meer dan één run tegelijk. "
            "Wacht tot die klaar is. Is dat proces dood en blijft het zo staan? Zie "
            "'regiesignaal runs' en 'regiesignaal runs abort ID'."
        )
        self.holder = holder


@dataclass
class Identity:
    host: str
    pid: int

    @classmethod
    def here(cls) -> Identity:
        return cls(socket.gethostname(), os.getpid())

    def label(self) -> str:
        return f"regiesignaal {self.host} pid {self.pid}"[:63]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def holds_lock() -> bool:
    """Whether this process holds the run lock now."""
    return _process_holds > 0


def _pg_holder(conn: sa.Connection) -> str:
    row = conn.execute(
        sa.text(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.objid = :key AND l.pid <> pg_backend_pid() "
            # advisory locks are per database: another store on the same server holds
            # its own lock, and must not be named as this one's holder
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"key": LOCK_KEY},
    ).first()
    if row is None:
        return "een ander proces"
    name = row.application_name or "onbekend proces"
    return f"{name}, verbonden sinds {row.backend_start:%Y-%m-%d %H:%M} UTC"


def _running_holder(conn: sa.Connection) -> str:
    row = conn.execute(
        sa.select(runs).where(runs.c.status == "running").order_by(runs.c.id).limit(1)
    ).first()
    if row is None:
        return "een ander proces"
    return f"run {row.id}, peildatum {row.as_of}, {row.host} pid {row.pid}"


@contextmanager
def run_lock(store: sa.Engine) -> Iterator[None]:
    """Hold the store's run lock for the ``with`` block; raises :class:`LockHeld`.

    Also keeps the heartbeat of this process's running run(s) fresh while held, and
    marks dead running runs aborted once the lock is taken.
    """
    global _process_holds
    if _process_holds:
        _process_holds += 1
        try:
            yield
        finally:
            _process_holds -= 1
        return
    me = Identity.here()
    lock_conn: sa.Connection | None = None
    token = ""
    if store.dialect.name == "postgresql":
        lock_conn = store.connect()
        lock_conn.execute(
            sa.text("SELECT set_config('application_name', :n, false)"), {"n": me.label()}
        )
        got = bool(
            lock_conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
            ).scalar()
        )
        lock_conn.commit()
        if not got:
            try:
                holder = _pg_holder(lock_conn)
            finally:
                lock_conn.close()
            raise LockHeld(holder)
    else:
        token = _take_sqlite_lock(store, me)
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(store, me, stop), name="run-heartbeat", daemon=True
    )
    _process_holds = 1
    _holding.update(store=store, conn=lock_conn, token=token)
    try:
        abort_stale_runs(store)
        beat.start()
        yield
    finally:
        _process_holds = 0
        _holding.clear()
        stop.set()
        if beat.is_alive():
            beat.join(timeout=5)
        if lock_conn is None:
            with store.begin() as conn:
                conn.execute(run_lock_table.delete().where(run_lock_table.c.token == token))
        else:
            try:
                lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                lock_conn.commit()
            except sa.exc.SQLAlchemyError:  # the session is gone, and the lock with it
                log.warning("run lock session was gone at release")
            finally:
                lock_conn.close()


def ensure_lock(within: sa.Connection | None = None) -> None:
    """Raise :class:`LockLost` when this process took the run lock and no longer holds it
    (its PostgreSQL session ended, or its SQLite lock row was taken over). Does nothing
    outside the lock.

    ``within``: on SQLite, read the lock row in this connection (the caller's open write
    transaction, which another connection of this process could not read past)."""
    if not _process_holds or not _holding:
        return
    store: sa.Engine = _holding["store"]
    lock_conn: sa.Connection | None = _holding["conn"]
    try:
        if lock_conn is not None:
            held = lock_conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND objid = :key AND pid = pg_backend_pid()"
                ),
                {"key": LOCK_KEY},
            ).scalar()
            lock_conn.commit()
        else:
            count = (
                sa.select(sa.func.count())
                .select_from(run_lock_table)
                .where(run_lock_table.c.token == _holding["token"])
            )
            if within is not None:
                held = within.execute(count).scalar()
            else:
                with store.connect() as conn:
                    held = conn.execute(count).scalar()
    except sa.exc.SQLAlchemyError:
        held = 0
    if not held:
        log.error("run lock lost: stopping before the next write")
        raise LockLost()


def _take_sqlite_lock(store: sa.Engine, me: Identity) -> str:
    """Insert the lock row (after removing a dead holder's); returns this holder's token."""
    now = utcnow()
    token = uuid.uuid4().hex
    with store.begin() as conn:
        held = conn.execute(sa.select(run_lock_table)).first()
        if held is not None and _holder_dead(dict(held._mapping), now):
            conn.execute(run_lock_table.delete().where(run_lock_table.c.token == held.token))
            log.warning("run lock of %s pid %s taken over (holder gone)", held.host, held.pid)
    try:
        with store.begin() as conn:
            conn.execute(
                run_lock_table.insert().values(
                    id=1, token=token, host=me.host, pid=me.pid, acquired_at=now,
                    heartbeat_at=now,
                )
            )  # fmt: skip
    except sa.exc.IntegrityError:
        with store.connect() as conn:
            held = conn.execute(sa.select(run_lock_table)).first()
            running = _running_holder(conn)
        if held is None:
            raise LockHeld("een ander proces") from None
        since = _utc(held.acquired_at)
        raise LockHeld(
            f"{running}; vergrendeld door {held.host} pid {held.pid} sinds "
            f"{since:%Y-%m-%d %H:%M} UTC"
            if running != "een ander proces"
            else f"{held.host} pid {held.pid}, sinds {since:%Y-%m-%d %H:%M} UTC"
        ) from None
    return token


def _holder_dead(m: Mapping[str, Any], now: dt.datetime) -> bool:
    if m["host"] == socket.gethostname() and not _alive(int(m["pid"])):
        return True
    return now - _utc(m["heartbeat_at"]) > HEARTBEAT_STALE


def _heartbeat(store: sa.Engine, me: Identity, stop: threading.Event) -> None:
    if stop.wait(HEARTBEAT_FIRST):  # the run's row is inserted just after the lock is taken
        return
    while True:
        try:
            beat(store, me)
        except sa.exc.SQLAlchemyError as exc:  # busy database: try again next time
            log.warning("heartbeat not written: %s", type(exc).__name__)
        if stop.wait(HEARTBEAT_INTERVAL):
            return


def beat(store: sa.Engine, me: Identity | None = None) -> int:
    """Write the heartbeat of this process's running run(s); returns the rows touched."""
    me = me or Identity.here()
    with store.begin() as conn:
        if store.dialect.name == "postgresql":  # so others can see this run is alive
            conn.execute(
                sa.text("SELECT set_config('application_name', :n, false)"), {"n": me.label()}
            )
        conn.execute(
            run_lock_table.update()
            .where(run_lock_table.c.host == me.host, run_lock_table.c.pid == me.pid)
            .values(heartbeat_at=utcnow())
        )
        return int(
            conn.execute(
                runs.update()
                .where(runs.c.status == "running", runs.c.host == me.host, runs.c.pid == me.pid)
                .values(heartbeat_at=utcnow())
            ).rowcount
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped: a container without an init) is gone too
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


def is_dead(row: sa.Row[tuple[object, ...]] | Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether a ``running`` row belongs to a process that is gone (SQLite rules)."""
    m: Mapping[str, Any] = row._mapping if isinstance(row, sa.Row) else row  # type: ignore[assignment]
    if m["host"] == socket.gethostname() and m["pid"] is not None:
        if int(m["pid"]) == os.getpid():
            return False
        if not _alive(int(m["pid"])):
            return True
    last = m["heartbeat_at"] or m["started_at"]
    return now - _utc(last) > HEARTBEAT_STALE


def running_alive(
    store: sa.Engine, row: sa.Row[tuple[object, ...]], now: dt.datetime | None = None
) -> bool:
    """Whether the holder of a ``running`` row is alive (see the module docstring)."""
    now = now or utcnow()
    me = Identity.here()
    if row.host == me.host and row.pid is not None:
        return int(row.pid) == me.pid or _alive(int(row.pid))
    if store.dialect.name == "postgresql" and row.host and row.pid is not None:
        label = Identity(str(row.host), int(row.pid)).label()
        with store.connect() as conn:
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n "
                        "AND datname = current_database() AND pid <> pg_backend_pid()"
                    ),
                    {"n": label},
                ).scalar()
            )
    return not is_dead(row, now)


def abort_stale_runs(store: sa.Engine) -> list[int]:
    """Mark dead ``running`` runs ``aborted``; call only while holding the lock.

    A running row whose holder is still alive (it lost its lock, see the module
    docstring) is left alone. Returns the ids marked.
    """
    now = utcnow()
    marked: list[int] = []
    with store.connect() as conn:
        rows = conn.execute(sa.select(runs).where(runs.c.status == "running")).all()
    dead = [row for row in rows if not running_alive(store, row, now)]
    with store.begin() as conn:
        for row in dead:
            _mark_aborted(conn, row, now, "afgebroken: het proces bestaat niet meer")
            marked.append(int(row.id))
            log.warning("run %d marked aborted (process gone)", row.id)
    return marked


def _mark_aborted(
    conn: sa.Connection, row: sa.Row[tuple[object, ...]], now: dt.datetime, why: str
) -> None:
    errors = row.errors if isinstance(row.errors, list) else []
    conn.execute(
        runs.update()
        .where(runs.c.id == row.id, runs.c.status == "running")
        .values(status="aborted", finished_at=now, errors=[*errors, why])
    )


class AbortRefused(Exception):
    """``abort_run`` did nothing; ``str()`` says why (Dutch)."""


def abort_run(store: sa.Engine, run_id: int, *, force: bool = False) -> None:
    """Operator action: mark the running run ``run_id`` aborted.

    Refused when the run is not running, or when it still looks alive (on PostgreSQL: the
    run lock is held; on SQLite: a heartbeat within ``HEARTBEAT_STALE``) unless ``force``.
    Rerunning its date afterwards is safe: nothing is sent twice.
    """
    with store.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise AbortRefused(f"run {run_id} bestaat niet (zie 'regiesignaal runs')")
        if row.status != "running":
            raise AbortRefused(f"run {run_id} loopt niet (status {row.status}); niets te doen")
        if store.dialect.name == "postgresql":  # the lock is the truth: it dies with its holder
            alive = _pg_lock_taken(conn)
        else:
            alive = not is_dead(row, utcnow())
    if alive and not force:
        raise AbortRefused(
            f"run {run_id} lijkt nog te lopen ({row.host} pid {row.pid}: de vergrendeling is "
            "bezet of het laatste teken van leven is minder dan 5 minuten oud). Stop dat "
            "proces, of gebruik --force als u zeker weet dat het niet meer bestaat."
        )
    with store.begin() as conn:
        _mark_aborted(conn, row, utcnow(), "afgebroken door de beheerder (runs abort)")
        if row.host and row.pid is not None:  # its SQLite lock row goes with it
            conn.execute(
                run_lock_table.delete().where(
                    run_lock_table.c.host == row.host, run_lock_table.c.pid == row.pid
                )
            )


def _pg_lock_taken(conn: sa.Connection) -> bool:
    got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar()
    if got:
        conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
    conn.commit()
    return not got
