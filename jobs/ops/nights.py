"""Due nights as the product's own bookkeeping (issue 17), beside APScheduler's next run time.

APScheduler knows one thing: the next run time of its job. A night can be lost around it
(a process group killed with its night, a job replaced because a setting changed while the
scheduler was down, two nights missed that coalesce into one, a schedule before 01:00
around the spring clock change, a SIGTERM at the due second). So the scheduler also asks
this module, at start, after any job change and every ``CHECK_MINUTES``:

- :func:`scheduled_nights` (pure): the nights the configuration schedules in a time
  window: every local date whose weekday is in ``[scheduler] days``, due at ``[run]
  schedule`` on that date's wall clock in ``[run] timezone``. A wall time that does not
  exist on the spring-forward night is due an hour later on the wall clock (the same
  instant as the time with the winter offset); one that occurs twice in autumn is due
  once, at its first occurrence. One night per local date, whatever the time of day.
- :func:`decide` (pure): of those nights, given what the store says of each date, which
  to run now and which to alert as missed.
- :func:`catch_up`: the store's side, under the run lock: every night due since
  ``scheduler_state.nights_from`` without a succeeded run is run once while inside
  ``[scheduler] misfire_grace_minutes`` and recorded ``missed`` (a run row) and alerted
  once beyond it; a ``running`` night whose holder is gone is aborted by the run it
  starts and run again. ``nights_from`` then moves on to the first night not yet settled.

A night counts as settled when its date has a succeeded (or skipped) run by anyone, a
``missed`` row, or a failed or refused run started by the scheduler (that one was already
alerted by the nightly job: it is not retried every few minutes). An ``aborted`` night is
run again, at most ``MAX_ATTEMPTS`` times; after that it is alerted as missed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from regiesignaal.engine.store.lock import LockHeld, run_lock, running_alive
from regiesignaal.engine.store.tables import apscheduler_jobs, runs, scheduler_state

log = logging.getLogger("regiesignaal.scheduler")

CHECK_MINUTES = 5  # the scheduler looks for due nights this often
MAX_ATTEMPTS = 3  # an aborted night is run again at most this often, then alerted
ALERT_LINES = 10  # nights named in one alert; the rest are counted

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SETTLED = frozenset({"succeeded", "skipped", "missed"})
OWN_FINAL = frozenset({"failed", "refused"})  # settled when the scheduler started them


@dataclass(frozen=True, order=True)
class Night:
    due: dt.datetime  # aware
    as_of: dt.date


@dataclass
class DateState:
    """What the store says of one as-of date (see :func:`date_states`)."""

    settled: bool = False
    running_alive: bool = False
    attempts: int = 0  # scheduler runs of the date that ended aborted


@dataclass
class Decision:
    run: list[Night]
    missed: list[Night]
    pending: list[Night]  # due, unsettled, but to look at again later (a run is in progress)


def weekday_set(days: str) -> frozenset[int]:
    """The weekdays (0 = Monday) of an APScheduler ``day_of_week`` such as ``mon-fri``,
    ``mon,wed,fri`` or ``sat-mon``."""
    out: set[int] = set()
    for part in days.lower().replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        a = WEEKDAYS.index(first)
        b = WEEKDAYS.index(last) if last else a
        i = a
        while True:
            out.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    return frozenset(out)


def due_at(day: dt.date, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    """The instant the night of ``day`` is due (see the module docstring), in ``tz``."""
    wall = dt.datetime.combine(day, at.replace(tzinfo=None), tzinfo=tz)  # fold=0
    return wall.astimezone(dt.UTC).astimezone(tz)


def scheduled_nights(
    at: dt.time, days: str, tz: ZoneInfo, after: dt.datetime, until: dt.datetime
) -> list[Night]:
    """Every night due in ``(after, until]`` (aware instants), oldest first."""
    weekdays = weekday_set(days)
    first = after.astimezone(tz).date() - dt.timedelta(days=1)
    last = until.astimezone(tz).date() + dt.timedelta(days=1)
    out: list[Night] = []
    day = first
    while day <= last:
        if day.weekday() in weekdays:
            due = due_at(day, at, tz)
            if after < due <= until:
                out.append(Night(due, day))
        day += dt.timedelta(days=1)
    return out


def decide(
    nights: Sequence[Night],
    states: Mapping[dt.date, DateState],
    now: dt.datetime,
    grace: dt.timedelta,
) -> Decision:
    """Which due nights to run now, which to record missed, which to leave for later."""
    decision = Decision([], [], [])
    for night in sorted(nights):
        state = states.get(night.as_of, DateState())
        if state.settled:
            continue
        if state.running_alive:
            decision.pending.append(night)
        elif now - night.due > grace or state.attempts >= MAX_ATTEMPTS:
            decision.missed.append(night)
        else:
            decision.run.append(night)
    return decision


def date_states(
    store: sa.Engine, dates: Iterable[dt.date], now: dt.datetime | None = None
) -> dict[dt.date, DateState]:
    """What the runs table says of each date."""
    wanted = sorted(set(dates))
    out = {d: DateState() for d in wanted}
    if not wanted:
        return out
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(runs).where(runs.c.as_of.in_(wanted)).order_by(runs.c.id)
        ).all()
    for row in rows:
        state = out[row.as_of]
        if row.status in SETTLED or (row.trigger == "scheduler" and row.status in OWN_FINAL):
            state.settled = True
        elif row.status == "running" and running_alive(store, row, now):
            state.running_alive = True
        elif row.status == "aborted" and row.trigger == "scheduler":
            state.attempts += 1
    return out


def _state_row(conn: sa.Connection) -> sa.Row[tuple[object, ...]] | None:
    return conn.execute(sa.select(scheduler_state).where(scheduler_state.c.id == 1)).first()


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def nights_from(store: sa.Engine, now: dt.datetime) -> dt.datetime:
    """From when nights are to be accounted for: the stored mark; on a store without one,
    the stored APScheduler job's next run time (the first night that job had not yet
    fired: a night missed across an upgrade still counts), else ``now``."""
    with store.connect() as conn:
        row = _state_row(conn)
        if row is not None:
            return _utc(row.nights_from)
        job_next = conn.execute(sa.select(sa.func.min(apscheduler_jobs.c.next_run_time))).scalar()
    if job_next is not None:
        return dt.datetime.fromtimestamp(float(job_next), dt.UTC) - dt.timedelta(seconds=1)
    return now


def _save_state(store: sa.Engine, mark: dt.datetime | None, now: dt.datetime) -> None:
    """Store the mark (UTC: SQLite keeps no zone) and the scheduler's heartbeat."""
    values: dict[str, object] = {
        "heartbeat_at": now.astimezone(dt.UTC), "host": socket.gethostname(), "pid": os.getpid()
    }  # fmt: skip
    if mark is not None:
        values["nights_from"] = mark.astimezone(dt.UTC)
    with store.begin() as conn:
        if _state_row(conn) is None:
            values.setdefault("nights_from", now.astimezone(dt.UTC))
            conn.execute(scheduler_state.insert().values(id=1, **values))
        else:
            conn.execute(scheduler_state.update().where(scheduler_state.c.id == 1).values(values))


def beat(store: sa.Engine, now: dt.datetime | None = None) -> None:
    """Write the scheduler's heartbeat (without moving the mark)."""
    now = now or dt.datetime.now(dt.UTC)
    with store.connect() as conn:
        exists = _state_row(conn) is not None
    _save_state(store, None if exists else nights_from(store, now), now)


@dataclass
class CatchUp:
    ran: list[dt.date]
    missed: list[dt.date]
    pending: list[dt.date]
    locked: bool = False


Launch = Callable[[dt.date], int]  # runs the night of a date; returns its exit code
Alert = Callable[[list[Night], dict[dt.date, DateState]], None]


def catch_up(
    store: sa.Engine,
    *,
    at: dt.time,
    days: str,
    tz: ZoneInfo,
    grace: dt.timedelta,
    launch: Launch,
    alert: Alert,
    now: Callable[[], dt.datetime] | None = None,
    extra: Sequence[Night] = (),
) -> CatchUp:
    """Account for every night due since the mark: see the module docstring. ``extra``:
    nights due besides those (the night APScheduler just fired)."""
    clock = now or (lambda: dt.datetime.now(dt.UTC))
    t = clock()
    start = min(nights_from(store, t), t)
    nights = scheduled_nights(at, days, tz, start, t)
    known = {n.as_of for n in nights}
    nights = sorted([*nights, *(n for n in extra if n.as_of not in known and n.due <= t)])
    decision = decide(nights, date_states(store, (n.as_of for n in nights), t), t, grace)
    result = CatchUp([], [], [n.as_of for n in decision.pending])
    if decision.missed:
        try:
            with run_lock(store):  # two schedulers on one store record a night once
                states = date_states(store, (n.as_of for n in decision.missed), t)
                fresh = [n for n in decision.missed if not states[n.as_of].settled]
                _record_missed(store, fresh, states, t)
        except LockHeld:
            result.locked = True
            fresh = []
        if fresh:
            alert(fresh, states)
        result.missed = [n.as_of for n in fresh]
    for night in decision.run:
        code = launch(night.as_of)
        result.ran.append(night.as_of)
        log.info("due night %s: exit %d", night.as_of, code)
    # the mark moves to just before the first night still open
    t2 = clock()
    again = date_states(store, (n.as_of for n in nights), t2)
    still = [n for n in nights if not again[n.as_of].settled]
    mark = min(n.due for n in still) - dt.timedelta(microseconds=1) if still else t
    _save_state(store, min(max(mark, start), t), t2)
    return result


def _record_missed(
    store: sa.Engine, nights: Sequence[Night], states: Mapping[dt.date, DateState], now: dt.datetime
) -> None:
    with store.begin() as conn:
        at = now.astimezone(dt.UTC)
        for night in nights:
            tries = states[night.as_of].attempts
            why = (
                f"geplande nacht van {night.due:%Y-%m-%d %H:%M %Z} niet gedraaid"
                + (f" (na {tries} afgebroken pogingen)" if tries else "")
                + f"; draai hem met 'regiesignaal nightly --as-of {night.as_of}'"
            )
            conn.execute(
                runs.insert().values(
                    as_of=night.as_of, trigger="scheduler", status="missed", started_at=at,
                    finished_at=at, errors=[why], host=socket.gethostname(), pid=os.getpid(),
                )
            )  # fmt: skip
            log.warning("scheduled night %s missed (recorded, alerted)", night.as_of)


def missed_lines(nights: Sequence[Night], grace_minutes: int) -> list[str]:
    """The alert's lines (dates and times only)."""
    shown = [f"- {n.due:%Y-%m-%d %H:%M %Z}" for n in nights[:ALERT_LINES]]
    more = len(nights) - len(shown)
    return [
        f"{len(nights)} geplande nacht(en) zijn niet gedraaid: de scheduler draaide niet "
        f"binnen de marge van {grace_minutes} minuten (of de run werd steeds afgebroken).",
        *shown,
        *([f"- en nog {more}"] if more > 0 else []),
        "Draai een nacht met 'regiesignaal nightly --as-of JJJJ-MM-DD'; 'regiesignaal runs' "
        "toont ze als 'missed'.",
    ]
