"""The health surface for monitoring: ``regiesignaal status`` and the metrics file (issue 17).

``status`` answers in one line with the exit codes of the monitoring-plugin convention
(Nagios, Icinga, Checkmk, Zabbix, Sensu): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. It looks
at three things, and the worst decides:

- **the night**: the latest scheduled night (``[run] schedule``, ``[scheduler] days``,
  ``[run] timezone``: the scheduler's own fire times, both clock changes included) whose
  time lies at least ``[status] night_late_minutes`` in the past must have a succeeded run
  for its date: CRITICAL otherwise. An earlier scheduled night of the last
  ``NIGHTS_WINDOW_DAYS`` days without one: WARNING (run it with ``nightly --as-of``).
  Nights before the store's first run do not count (a new installation); a store without
  any run is a WARNING;
- **the mail**: a ``failed`` message of the last ``[status] mail_days`` days is CRITICAL
  (someone did not get a list), an ``uncertain`` one (may have arrived) WARNING; mail
  pending or in flight for longer than ``[status] mail_pending_minutes`` is a WARNING,
  longer than ``[alerts] undelivered_hours`` CRITICAL;
- **the scheduler**: the age of the newest heartbeat a running ``regiesignaal
  scheduler`` writes every minute (engine/store/heartbeat.py): WARNING after ``[status]
  heartbeat_warning_minutes``, CRITICAL after ``heartbeat_critical_minutes`` or when no
  scheduler ever beat; ``heartbeat_warning_minutes = 0`` switches this check off (for a
  site that starts ``nightly`` from cron or a systemd timer).

UNKNOWN: the configuration or the store cannot be read (missing, unreachable, not at the
current schema).

The metrics file (``write_metrics``) holds the same facts and more in the Prometheus text
exposition format, for node_exporter's textfile collector: written to a temporary file
in the same folder and renamed over ``regiesignaal.prom``, so the collector never reads
half a file. Both hold ids, dates and counts only.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.store import migrate
from regiesignaal.engine.store.db import engine_options, sqlite_file
from regiesignaal.engine.store.heartbeat import last_beat
from regiesignaal.engine.store.tables import outbox, runs, signals
from regiesignaal.jobs.config import Settings

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
NIGHTS_WINDOW_DAYS = 7  # scheduled nights this far back are looked at for misses
METRICS_FILE = "regiesignaal.prom"
SEVERITIES = ("low", "medium", "high", "critical")
OUTBOX_STATUSES = (
    "pending",
    "sending",
    "transmitting",
    "sent",
    "failed",
    "uncertain",
    "superseded",
)  # fmt: skip  (notifications.delivery.outbox.STATUSES; jobs may not import it for this)
IN_FLIGHT = ("pending", "sending", "transmitting")


@dataclass
class Check:
    """One part of the status: its code and a Dutch phrase for the line."""

    code: int
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Health:
    code: int
    night: Check | None = None
    mail: Check | None = None
    scheduler: Check | None = None
    problem: str | None = None  # UNKNOWN: why

    @property
    def label(self) -> str:
        return LABELS[self.code]

    def line(self) -> str:
        """The one line for monitoring: ``REGIESIGNAAL <STATUS> - ... | perfdata``."""
        if self.problem is not None:
            return f"REGIESIGNAAL {self.label} - {self.problem}"
        parts = [c.text for c in (self.night, self.mail, self.scheduler) if c is not None]
        perf = []
        if self.night is not None:
            perf.append(f"nachten_gemist={self.night.data.get('missed', 0)}")
        if self.mail is not None:
            for key in ("failed", "uncertain", "waiting"):
                perf.append(f"mail_{key}={self.mail.data.get(key, 0)}")
        if self.scheduler is not None and self.scheduler.data.get("age_seconds") is not None:
            perf.append(f"hartslag_leeftijd={self.scheduler.data['age_seconds']}s")
        return f"REGIESIGNAAL {self.label} - {'; '.join(parts)} | {' '.join(perf)}".rstrip(" |")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.label, "code": self.code, "line": self.line()}
        if self.problem is not None:
            out["problem"] = self.problem
        for name in ("night", "mail", "scheduler"):
            check = getattr(self, name)
            if check is not None:
                out[name] = {"status": LABELS[check.code], **asdict(check)}
        return out


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def scheduled_nights(settings: Settings, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The scheduler's fire times in ``(start, end]`` (aware, in the configured zone)."""
    from regiesignaal.jobs.ops.scheduler import fire_times

    out: list[dt.datetime] = []
    span_days = max(1, math.ceil((end - start).total_seconds() / 86400))
    for when in fire_times(settings, start, span_days + 2):
        if when > end:
            break
        if when > start:  # via UTC: a wall time that does not exist becomes the real one
            out.append(when.astimezone(dt.UTC).astimezone(settings.tz))
    return out


def open_store(settings: Settings) -> sa.Engine:
    """An engine for a store that must exist already (never creates a SQLite file).

    Raises LookupError with a Dutch message when it is missing or not migrated."""
    path = sqlite_file(settings.store_url)
    if path is not None and not path.exists():
        raise LookupError(f"er is geen store op {path} (zie 'regiesignaal config show')")
    if not migrate.is_up_to_date(settings.store_url):
        raise LookupError(
            "de store heeft niet het juiste schema; voer 'regiesignaal db upgrade' uit"
        )
    return sa.create_engine(settings.store_url, **engine_options(settings.store_url))


def _succeeded_dates(conn: sa.Connection, since: dt.date) -> set[dt.date]:
    rows = conn.execute(
        sa.select(runs.c.as_of).where(runs.c.status == "succeeded", runs.c.as_of >= since)
    ).all()
    return {r.as_of for r in rows}


def _first_run_at(conn: sa.Connection) -> dt.datetime | None:
    return _utc(conn.execute(sa.select(sa.func.min(runs.c.started_at))).scalar())


def missed_nights(settings: Settings, conn: sa.Connection, now: dt.datetime) -> list[dt.date]:
    """Scheduled nights of the last ``NIGHTS_WINDOW_DAYS`` days, late enough to be due,
    after the store's first run, without a succeeded run for their date (oldest first)."""
    due_until = now - dt.timedelta(minutes=settings.status_night_late_minutes)
    first = _first_run_at(conn)
    if first is None:
        return []
    start = max(now - dt.timedelta(days=NIGHTS_WINDOW_DAYS), first - dt.timedelta(seconds=1))
    nights = [
        t.astimezone(settings.tz).date() for t in scheduled_nights(settings, start, due_until)
    ]
    if not nights:
        return []
    done = _succeeded_dates(conn, min(nights))
    return [day for day in nights if day not in done]


def night_check(settings: Settings, conn: sa.Connection, now: dt.datetime) -> Check:
    due_until = now - dt.timedelta(minutes=settings.status_night_late_minutes)
    due = scheduled_nights(settings, due_until - dt.timedelta(days=8), due_until)
    last_ok = conn.execute(
        sa.select(runs.c.id, runs.c.as_of, runs.c.finished_at)
        .where(runs.c.status == "succeeded")
        .order_by(runs.c.as_of.desc(), runs.c.id.desc())
        .limit(1)
    ).first()
    data: dict[str, Any] = {
        "last_succeeded_as_of": str(last_ok.as_of) if last_ok else None,
        "last_succeeded_run": int(last_ok.id) if last_ok else None,
        "due_as_of": str(due[-1].astimezone(settings.tz).date()) if due else None,
        "missed": 0,
        "missed_dates": [],
    }
    if _first_run_at(conn) is None:
        return Check(WARNING, "nog geen enkele run in de store", data)
    missed = missed_nights(settings, conn, now)
    data["missed"] = len(missed)
    data["missed_dates"] = [str(d) for d in missed]
    shown_last = (
        f"laatste geslaagde nacht {last_ok.as_of} (run {last_ok.id})"
        if last_ok
        else "nog geen geslaagde nacht"
    )
    if due and due[-1].astimezone(settings.tz).date() in missed:
        when = due[-1].astimezone(settings.tz)
        running = conn.execute(
            sa.select(runs.c.id).where(runs.c.status == "running", runs.c.as_of == when.date())
        ).scalar()
        state = f"loopt nog (run {running})" if running is not None else "niet geslaagd"
        return Check(
            CRITICAL,
            f"nacht {when.date()} (gepland {when:%H:%M}) {state}; {shown_last}",
            data,
        )
    if missed:
        return Check(
            WARNING,
            f"{len(missed)} eerdere nacht(en) niet geslaagd (oudste {missed[0]}; draai "
            f"'regiesignaal nightly --as-of {missed[0]}'); {shown_last}",
            data,
        )
    return Check(OK, shown_last, data)


def mail_check(settings: Settings, conn: sa.Connection, now: dt.datetime) -> Check:
    since = now - dt.timedelta(days=settings.status_mail_days)
    pending_limit = now - dt.timedelta(minutes=settings.status_mail_pending_minutes)
    critical_limit = now - dt.timedelta(hours=settings.alert_undelivered_hours)

    def count(*conditions: sa.ColumnElement[bool]) -> int:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(*conditions)
            ).scalar_one()
        )

    failed = count(outbox.c.status == "failed", outbox.c.created_at >= since)
    uncertain = count(outbox.c.status == "uncertain", outbox.c.created_at >= since)
    waiting = count(outbox.c.status.in_(IN_FLIGHT), outbox.c.created_at < pending_limit)
    overdue = count(outbox.c.status.in_(IN_FLIGHT), outbox.c.created_at < critical_limit)
    data = {"failed": failed, "uncertain": uncertain, "waiting": waiting, "overdue": overdue}
    if not (failed or uncertain or waiting):
        return Check(OK, "mail: alles afgeleverd", data)
    parts = []
    if failed:
        parts.append(f"{failed} mislukt")
    if uncertain:
        parts.append(f"{uncertain} mogelijk aangekomen")
    if waiting:
        parts.append(f"{waiting} wacht langer dan {settings.status_mail_pending_minutes} min")
    code = CRITICAL if failed or overdue else WARNING
    return Check(code, "mail: " + ", ".join(parts) + " (zie 'regiesignaal deliver')", data)


def scheduler_check(settings: Settings, conn: sa.Connection, now: dt.datetime) -> Check | None:
    if settings.status_heartbeat_warning_minutes == 0:
        return None
    beat = last_beat(conn)
    if beat is None:
        return Check(
            CRITICAL,
            "scheduler: nog nooit een hartslag (draait 'regiesignaal scheduler'?)",
            {"age_seconds": None},
        )
    age = max(0, int((now - beat).total_seconds()))
    data = {"age_seconds": age, "last_beat": beat.isoformat()}
    shown = f"scheduler: hartslag {age // 60} min geleden"
    if age >= settings.status_heartbeat_critical_minutes * 60:
        return Check(CRITICAL, shown + " (draait de scheduler nog?)", data)
    if age >= settings.status_heartbeat_warning_minutes * 60:
        return Check(WARNING, shown, data)
    return Check(OK, shown, data)


def status_of_store(settings: Settings, store: sa.Engine, now: dt.datetime) -> Health:
    with store.connect() as conn:
        night = night_check(settings, conn, now)
        mail = mail_check(settings, conn, now)
        scheduler = scheduler_check(settings, conn, now)
    code = max(c.code for c in (night, mail, scheduler) if c is not None)
    return Health(code, night, mail, scheduler)


def status(settings: Settings, now: dt.datetime | None = None) -> Health:
    """The health of the installation (see the module docstring); never raises for a
    store that cannot be read: that is UNKNOWN."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        store = open_store(settings)
    except LookupError as exc:
        return Health(UNKNOWN, problem=str(exc))
    except sa.exc.SQLAlchemyError as exc:
        return Health(UNKNOWN, problem=_db_problem(exc))
    except Exception as exc:  # e.g. a database driver that is not installed
        return Health(UNKNOWN, problem=f"de store is niet te openen ({type(exc).__name__})")
    try:
        return status_of_store(settings, store, now)
    except sa.exc.SQLAlchemyError as exc:
        return Health(UNKNOWN, problem=_db_problem(exc))
    except Exception as exc:  # a monitoring check answers UNKNOWN, never a traceback
        return Health(UNKNOWN, problem=f"onverwachte fout ({type(exc).__name__})")
    finally:
        store.dispose()


def _db_problem(exc: Exception) -> str:
    cause = getattr(exc, "orig", None) or exc
    return f"de store is niet te lezen ({type(cause).__name__}); zie 'regiesignaal config show'"


# ------------------------------------------------------------------ metrics


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self,
        name: str,
        help_text: str,
        samples: Iterable[tuple[dict[str, str], float]],
        kind: str = "gauge",
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            shown = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            self.lines.append(
                f"{name}{{{shown}}} {_number(value)}" if shown else f"{name} {_number(value)}"
            )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def metrics_text(settings: Settings, store: sa.Engine, now: dt.datetime | None = None) -> str:
    """The metrics in the Prometheus text exposition format (version 0.0.4)."""
    now = now or dt.datetime.now(dt.UTC)
    health = status_of_store(settings, store, now)
    out = _Exposition()
    with store.connect() as conn:
        last = conn.execute(
            sa.select(runs.c.id, runs.c.as_of, runs.c.finished_at, runs.c.durations)
            .where(runs.c.status == "succeeded")
            .order_by(runs.c.finished_at.desc(), runs.c.id.desc())
            .limit(1)
        ).first()
        open_by_severity: dict[str, int] = dict(
            conn.execute(
                sa.select(signals.c.severity, sa.func.count())
                .where(signals.c.closed_on.is_(None), signals.c.shadow.is_(False))
                .group_by(signals.c.severity)
            ).all()
        )
        open_in_shadow = int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    signals.c.closed_on.is_(None), signals.c.shadow.is_(True)
                )
            ).scalar()
            or 0
        )
        outbox_by_status: dict[str, int] = dict(
            conn.execute(
                sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
            ).all()
        )
        missed = missed_nights(settings, conn, now)
        beat = last_beat(conn)
    out.metric(
        "regiesignaal_status",
        "Uitkomst van 'regiesignaal status': 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        [({}, health.code)],
    )
    finished = _utc(last.finished_at) if last is not None else None
    out.metric(
        "regiesignaal_last_success_timestamp_seconds",
        "Eindtijd (Unix-tijd) van de laatste geslaagde run; 0 als er nog geen is.",
        [({}, finished.timestamp() if finished else 0)],
    )
    as_of_ts = dt.datetime.combine(last.as_of, dt.time(0), settings.tz).timestamp() if last else 0
    out.metric(
        "regiesignaal_last_success_as_of_timestamp_seconds",
        "Peildatum (middernacht, Unix-tijd) van de laatste geslaagde run; 0 als er geen is.",
        [({}, as_of_ts)],
    )
    durations = (last.durations if last is not None else None) or {}
    out.metric(
        "regiesignaal_stage_duration_seconds",
        "Duur per stap van de laatste geslaagde run, in seconden.",
        [({"stage": str(stage)}, float(sec)) for stage, sec in sorted(durations.items())],
    )
    severities = [*SEVERITIES, *sorted(set(open_by_severity) - set(SEVERITIES))]
    out.metric(
        "regiesignaal_signals_open",
        "Open signalen per ernst.",
        [({"severity": str(s)}, int(open_by_severity.get(s, 0))) for s in severities],
    )
    out.metric(
        "regiesignaal_shadow_signals_open",
        "Open signalen van regels in schaduw (mode: shadow; aan niemand getoond).",
        [({}, open_in_shadow)],
    )
    statuses = [*OUTBOX_STATUSES, *sorted(set(outbox_by_status) - set(OUTBOX_STATUSES))]
    out.metric(
        "regiesignaal_outbox_messages",
        "Berichten in de outbox per status.",
        [({"status": str(s)}, int(outbox_by_status.get(s, 0))) for s in statuses],
    )
    out.metric(
        "regiesignaal_nights_missed",
        f"Geplande nachten van de laatste {NIGHTS_WINDOW_DAYS} dagen zonder geslaagde run.",
        [({}, len(missed))],
    )
    if beat is not None:
        out.metric(
            "regiesignaal_scheduler_heartbeat_timestamp_seconds",
            "Laatste hartslag (Unix-tijd) van een draaiende scheduler.",
            [({}, beat.timestamp())],
        )
    out.metric(
        "regiesignaal_metrics_written_timestamp_seconds",
        "Wanneer dit bestand geschreven is (Unix-tijd).",
        [({}, now.timestamp())],
    )
    return out.text()


class MetricsRefused(Exception):
    """The metrics file cannot be written; ``str()`` says where and what to do."""


def write_metrics(
    settings: Settings, store: sa.Engine, directory: Path, now: dt.datetime | None = None
) -> Path:
    """Write ``regiesignaal.prom`` into ``directory`` atomically (temporary file + rename).

    Raises MetricsRefused (the folder is missing or not writable)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MetricsRefused(
            f"de map {directory} voor het metrics-bestand bestaat niet; maak haar aan of "
            "kies een andere ([metrics] textfile_dir of --out)"
        )
    text = metrics_text(settings, store, now)
    target = directory / METRICS_FILE
    try:
        fd, tmp = tempfile.mkstemp(prefix=".regiesignaal.", suffix=".prom.tmp", dir=directory)
    except OSError as exc:
        raise MetricsRefused(
            f"kan niet schrijven in {directory} ({type(exc).__name__}); geef de gebruiker "
            "van regiesignaal schrijfrecht of kies een andere map"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # node_exporter usually runs as another user
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise MetricsRefused(
            f"kan {target} niet schrijven ({type(exc).__name__}); controleer de map"
        ) from None
    return target
