"""The nightly job: pull the case plans, run, deliver, purge, alert (issue 8).

``regiesignaal scheduler`` starts ``regiesignaal nightly`` as a child process for each
scheduled night; an operator may start it by hand too. In order, all under the run lock
(engine/store/lock.py), so two schedulers on two hosts never process a night twice:

1. the as-of date is today in the configured time zone (or ``--as-of``); when a run for
   that date already succeeded, nothing happens, whoever started it (recorded as
   ``skipped``, exit 0), before any export is taken;
2. with ``[intake] drop_dir`` set, the newest complete export replaces the source data
   (jobs/ops/intake.py); a broken one is refused and alerted, and yesterday's data stays.
   Re-running a night whose export was already accepted (the first attempt was refused,
   failed or aborted after intake) goes on with that export; without any export accepted
   for the date the night is refused (the source would be stale);
3. the rules are checked (alert when they do not), then the run with delivery;
4. retention (jobs/ops/retention.py) purges old bodies, signals and exports;
5. alerts: a failed or refused run, mail undelivered past the threshold, a night that ran
   with the last good rule set because the rule folder broke (operators and policy owners);
6. after a succeeded night, ``[alerts] heartbeat_url`` is called (a dead man's switch), and
   after every night the metrics file is written (``[metrics] textfile_dir``,
   jobs/ops/health.py); neither can fail the night.

SIGTERM/SIGINT while running: the run stops at once, its row is recorded ``aborted`` (not
left ``running``), and a rerun of the date completes it; nothing is sent twice.

Exit codes: 0 done (or already done), 1 refused or failed, 3 mail needs a look (the same
test as ``run`` and ``deliver``: jobs/mail_status.py), 4 another run holds the lock.
:class:`NightlyResult` names the run row recorded for every outcome (``run_id``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

import sqlalchemy as sa

from regiesignaal.engine.store import migrate
from regiesignaal.engine.store.db import store_engine
from regiesignaal.engine.store.lock import EXIT_LOCKED, LockHeld, run_lock
from regiesignaal.engine.store.tables import runs
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.mail_status import EXIT_MAIL_WAITING, mail_needs_look
from regiesignaal.jobs.pipeline import RunOptions, RunRefused, run
from regiesignaal.notifications import operator_alert as alerts
from regiesignaal.notifications.delivery import webhook

log = logging.getLogger("regiesignaal.nightly")


class Terminated(Exception):
    """SIGTERM or SIGINT arrived during the nightly job; ``str()`` is the signal's name."""

    @property
    def label(self) -> str:
        """The Dutch line for the run's problems (not "Terminated: SIGTERM")."""
        return f"afgebroken door {self} (het proces is gestopt); draai de peildatum opnieuw"


class TimeLimit(Exception):
    """The night ran past ``[run] max_minutes`` (raised in the main thread by SIGALRM)."""

    def __init__(self, minutes: float):
        super().__init__(f"de nacht duurde langer dan de tijdslimiet van {minutes:g} minuten")
        self.minutes = minutes

    @property
    def label(self) -> str:
        return str(self)


TIME_LIMIT_REPEAT = 30.0  # seconds: the limit is raised again while the night goes on
TIME_LIMIT_BACKSTOP = 120.0  # seconds after the limit: the process ends whatever it does


def _problems(n: int) -> str:
    return f"{n} probleem" if n == 1 else f"{n} problemen"


@contextmanager
def time_limit(minutes: float, on_backstop: Callable[[], None] | None = None) -> Iterator[None]:
    """Raise :class:`TimeLimit` in the main thread once ``minutes`` have passed (and every
    few seconds after, in case something swallowed it); ``TIME_LIMIT_BACKSTOP`` later a
    night blocked where no signal reaches it calls ``on_backstop`` and ends the process
    (the run lock dies with it)."""
    if minutes <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TimeLimit(minutes)

    def backstop() -> None:
        log.error("night past its time limit and still not stopped: ending the process")
        try:
            if on_backstop is not None:
                on_backstop()
        finally:
            os._exit(1)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    timer = threading.Timer(minutes * 60 + TIME_LIMIT_BACKSTOP, backstop)
    timer.daemon = True
    timer.start()
    signal.setitimer(signal.ITIMER_REAL, minutes * 60, TIME_LIMIT_REPEAT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        timer.cancel()
        signal.signal(signal.SIGALRM, previous)


@dataclass
class NightlyResult:
    exit_code: int
    status: str  # succeeded | skipped | refused | failed | aborted | locked
    run_id: int | None = None
    messages: list[str] = field(default_factory=list)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGINT into :class:`Terminated` in the main thread."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


@contextmanager
def stop_cleanly(settings: Settings) -> Iterator[None]:
    """For a run started by hand: SIGTERM/SIGINT stop it, its run row is recorded
    ``aborted`` (not left ``running``), then :class:`Terminated` propagates. The previous
    signal handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    install_signal_handlers()
    try:
        yield
    except Terminated as exc:
        store = store_engine(settings.store_url)
        try:
            _mark_own_run_aborted(store, exc.label)
        finally:
            store.dispose()
        raise
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _record(store: sa.Engine, as_of: dt.date, trigger: str, status: str, why: str) -> int:
    now = dt.datetime.now(dt.UTC)
    with store.begin() as conn:
        return int(
            conn.execute(
                runs.insert().values(
                    as_of=as_of, trigger=trigger, status=status, started_at=now,
                    finished_at=now, errors=[why], host=socket.gethostname(), pid=os.getpid(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        )  # fmt: skip


def _done_run(store: sa.Engine, as_of: dt.date) -> int | None:
    with store.connect() as conn:
        return conn.execute(
            sa.select(runs.c.id)
            .where(runs.c.as_of == as_of, runs.c.status == "succeeded")
            .order_by(runs.c.id.desc())
            .limit(1)
        ).scalar()


def _mark_own_run_aborted(store: sa.Engine, why: str) -> int | None:
    """After a stop: this process's run row (running or just marked failed) -> aborted.
    Mail that went out before the stop is named and counted (a rerun does not send it
    again)."""
    from regiesignaal.engine.store.tables import outbox

    with store.begin() as conn:
        row = conn.execute(
            sa.select(runs)
            .where(
                runs.c.host == socket.gethostname(),
                runs.c.pid == os.getpid(),
                runs.c.status.in_(("running", "failed")),
            )
            .order_by(runs.c.id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        errors = [e for e in (row.errors if isinstance(row.errors, list) else [])
                  if not str(e).startswith("afgebroken door")]  # fmt: skip
        sent = int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(outbox.c.run_id == row.id, outbox.c.status == "sent")
            ).scalar()
            or 0
        )
        counts = dict(row.counts) if isinstance(row.counts, dict) else {}
        notes = []
        if sent:
            delivery = dict(counts.get("delivery") or {})
            delivery["sent"] = max(int(delivery.get("sent") or 0), sent)
            counts["delivery"] = delivery
            notes.append(
                f"{SENT_BEFORE_STOP} {sent} bericht(en); een herhaling van de peildatum "
                "verstuurt die niet opnieuw"
            )
        conn.execute(
            runs.update()
            .where(runs.c.id == row.id)
            .values(
                status="aborted",
                finished_at=dt.datetime.now(dt.UTC),
                errors=[*errors, why, *notes],
                counts=counts or row.counts,
            )
        )
        return int(row.id)


SENT_BEFORE_STOP = "al verstuurd vóór de stop:"
NOTE_MARKERS = ("is geen werkdag: geen berichten", SENT_BEFORE_STOP)


def errors_and_notes(status: str, problems: list[str] | None) -> tuple[list[str], list[str]]:
    """A run row's problems split into errors and notes, for the ``runs`` list: a night
    that was already done (``skipped``) or left to a standby that holds the lock
    (``locked``) has notes only, and so has a weekend night's "geen werkdag"; an alarm
    can count the errors."""
    items = [str(p) for p in problems or []]
    if status in ("skipped", "locked"):
        return [], items
    notes = [p for p in items if any(m in p for m in NOTE_MARKERS)]
    return [p for p in items if p not in notes], notes


def nightly(
    settings: Settings, *, trigger: str = "scheduler", as_of: dt.date | None = None
) -> NightlyResult:
    """One night: see the module docstring. Never raises for trouble it can report."""
    day = as_of or dt.datetime.now(settings.tz).date()
    if not migrate.is_up_to_date(settings.store_url):
        why = (
            "de opslag (store) heeft niet het juiste schema; voer eerst "
            "'regiesignaal db upgrade' uit"
        )
        log.error("store not at the current schema: night %s not run", day)
        return NightlyResult(1, "refused", None, [why])
    store = store_engine(settings.store_url)
    try:
        result = _nightly(settings, store, trigger, day)
        if result.status == "succeeded" and settings.heartbeat_url:
            # the dead man's switch: an outside monitor notices when these calls stop
            webhook.ping(settings.heartbeat_url, settings.http_timeout_seconds)
        return result
    finally:
        try:
            alerts.check_undelivered(store, settings)
            alerts.deliver_alerts(store, settings)
        except sa.exc.SQLAlchemyError as exc:
            log.error("alert check failed: %s", type(exc).__name__)
        _after_night(settings, store)
        store.dispose()


def _after_night(settings: Settings, store: sa.Engine) -> None:
    """The metrics file, whatever the outcome (issue 17); trouble is logged, never raised."""
    if settings.metrics_dir is None:
        return
    from regiesignaal.jobs.ops.health import MetricsRefused, write_metrics

    try:
        write_metrics(settings, store, settings.metrics_dir)
    except (MetricsRefused, sa.exc.SQLAlchemyError) as exc:
        log.error("metrics file not written: %s", type(exc).__name__)


def _nightly(settings: Settings, store: sa.Engine, trigger: str, day: dt.date) -> NightlyResult:
    def backstop() -> None:
        _stop_for_time_limit(settings, store, day, trigger, TimeLimit(settings.max_minutes))

    try:
        with time_limit(settings.max_minutes, backstop), run_lock(store):
            done = _done_run(store, day)
            if done is not None:
                why = f"peildatum {day} is al verwerkt door run {done}; niets gedaan"
                run_id = _record(store, day, trigger, "skipped", why)
                log.info("night %s already done by run %d (run %d skipped)", day, done, run_id)
                return NightlyResult(0, "skipped", run_id, [why])
            return _locked_night(settings, store, trigger, day)
    except LockHeld as exc:
        run_id = _record(store, day, trigger, "locked", str(exc))
        log.warning("run lock held elsewhere (run %d recorded locked)", run_id)
        return NightlyResult(EXIT_LOCKED, "locked", run_id, [str(exc)])
    except TimeLimit as exc:  # the lock is released: the with block has ended
        return _stop_for_time_limit(settings, store, day, trigger, exc)
    except Terminated as exc:
        why = exc.label
        aborted = _mark_own_run_aborted(store, why)
        log.warning("nightly job stopped by %s (run %s aborted)", exc, aborted)
        return NightlyResult(1, "aborted", aborted, [why])


def _stop_for_time_limit(
    settings: Settings, store: sa.Engine, day: dt.date, trigger: str, exc: TimeLimit
) -> NightlyResult:
    """The night ran past its limit: its run row ``failed`` (naming the stage), alerted."""
    why = f"{exc}; gestopt en als mislukt vastgelegd"
    stage = "intake" if settings.drop_dir is not None else "start"
    with store.begin() as conn:
        row = conn.execute(
            sa.select(runs)
            .where(runs.c.host == socket.gethostname(), runs.c.pid == os.getpid(),
                   runs.c.as_of == day, runs.c.status.in_(("running", "failed")))
            .order_by(runs.c.id.desc())
            .limit(1)
        ).first()  # fmt: skip
        if row is not None:
            stage = row.stage or "start"
            errors = [e for e in (row.errors or []) if "tijdslimiet" not in str(e)]
            conn.execute(
                runs.update()
                .where(runs.c.id == row.id)
                .values(status="failed", finished_at=dt.datetime.now(dt.UTC),
                        errors=[*errors, f"{why} (stap {stage})"])
            )  # fmt: skip
            run_id: int = int(row.id)
    if row is None:
        run_id = _record(store, day, trigger, "failed", f"{why} (stap {stage})")
        with store.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(stage=stage))
    log.error("night %s stopped by its time limit in stage %s (run %d)", day, stage, run_id)
    alerts.raise_alert(
        store,
        settings,
        "run_failed",
        [
            f"De run voor peildatum {day} (run {run_id}) is gestopt: hij duurde langer dan "
            f"[run] max_minutes ({exc.minutes:g} minuten), in de stap {stage}. De vergrendeling "
            "is vrijgegeven; draai de nacht opnieuw met 'regiesignaal nightly --as-of "
            f"{day}' zodra de oorzaak (bijvoorbeeld een vergrendelde brontabel) weg is.",
        ],
        run_id=run_id,
    )
    return NightlyResult(1, "failed", run_id, [why])


def _locked_night(
    settings: Settings, store: sa.Engine, trigger: str, day: dt.date
) -> NightlyResult:
    from regiesignaal.engine.language.compiler import check_rule_dir
    from regiesignaal.jobs.ops import intake, retention

    run_id: int | None = None
    if settings.drop_dir is not None:
        pulled = intake.pull(settings, day)
        if pulled.refused:
            why = "levering geweigerd: " + "; ".join(pulled.problems[:5])
            run_id = _record(store, day, trigger, "refused", why)
            alerts.raise_alert(
                store,
                settings,
                "export_refused",
                [
                    f"De levering {pulled.export_name} in de dropmap is geweigerd "
                    f"({_problems(len(pulled.problems))}); de gegevens van de vorige "
                    "levering blijven staan en er is geen signaal gesloten.",
                    f"Run {run_id} (peildatum {day}) is daarom niet gestart.",
                ],
                run_id=run_id,
            )
            return NightlyResult(1, "refused", run_id, pulled.problems)
    ruledir = check_rule_dir(settings.rules_dir)
    try:
        summary = run(settings, RunOptions(day, trigger))
    except RunRefused as exc:
        run_id = exc.run_id if exc.run_id is not None else _own_latest_run(store)
        if not ruledir.ok:
            alerts.raise_alert(
                store,
                settings,
                "rules",
                [
                    f"De regels in {settings.rules_dir} bevatten "
                    f"{_problems(len(ruledir.problems))}; run {run_id} (peildatum {day}) is "
                    "niet gestart en er is niets verstuurd.",
                    "Herstel ze (zie 'regiesignaal rules check') en draai de nacht opnieuw "
                    f"('regiesignaal nightly --as-of {day}').",
                ],
                run_id=run_id or 0,
            )
        else:
            alerts.raise_alert(
                store,
                settings,
                "run_refused",
                [f"De run voor peildatum {day} is niet gestart (run {run_id}): {exc}"],
                run_id=run_id or 0,
            )
        return NightlyResult(1, "refused", run_id, [str(exc)])
    except (Terminated, TimeLimit):
        raise
    except Exception as exc:
        log.exception("run for %s failed", day)
        run_id = _own_latest_run(store)
        alerts.raise_alert(
            store,
            settings,
            "run_failed",
            [f"De run voor peildatum {day} (run {run_id}) is mislukt ({type(exc).__name__})."],
            run_id=run_id or 0,
        )
        return NightlyResult(1, "failed", run_id, [type(exc).__name__])
    if summary.rules_fallback:
        _alert_rules_fallback(settings, store, day, summary.run_id, summary.rules_fallback)
    try:
        retention.purge(settings, store)
    except sa.exc.SQLAlchemyError as exc:
        log.error("purge failed: %s", type(exc).__name__)
    code = EXIT_MAIL_WAITING if mail_needs_look(summary.delivery, summary.problems) else 0
    return NightlyResult(code, summary.status, summary.run_id, summary.problems)


def policy_owner_addresses(settings: Settings) -> list[str]:
    """The addresses of the staff with role ``beleid`` (the rules' owners); [] when the
    source cannot be read (the operators are told anyway)."""
    from regiesignaal.engine.source.read import load_staff
    from regiesignaal.jobs.pipeline import source_engine

    try:
        source = source_engine(settings.source_url)
    except RunRefused:
        return []
    try:
        staff = load_staff(source)
    except sa.exc.SQLAlchemyError as exc:
        log.error("policy owners not read: %s", type(exc).__name__)
        return []
    finally:
        source.dispose()
    return sorted(
        {str(m["email"]) for m in staff.values() if m.get("role") == "beleid" and m.get("email")}
    )


def _alert_rules_fallback(
    settings: Settings, store: sa.Engine, day: dt.date, run_id: int, problems: int
) -> None:
    """The rule folder broke and the night ran with the last good rule set: tell the
    operators and the policy owners (counts and commands only: no file, rule or case)."""
    alerts.raise_alert(
        store,
        settings,
        "rules_last_good",
        [
            f"De regels in de regelmap bevatten {problems} fout(en). Run {run_id} (peildatum "
            f"{day}) is daarom gedraaid met de laatste regelset die wel klopte; wijzigingen "
            "sinds die versie zijn nog niet in gebruik.",
            "Welk bestand en welke regel: 'regiesignaal rules check' op de server. Herstel ze "
            "vóór de volgende nacht; de versies staan in 'regiesignaal runs show "
            f"{run_id}'.",
        ],
        run_id=run_id,
        counts={"problems": problems},
        also=policy_owner_addresses(settings),
    )


def _own_latest_run(store: sa.Engine) -> int | None:
    """The newest run row this process recorded (the run that just refused or failed)."""
    try:
        with store.connect() as conn:
            return conn.execute(
                sa.select(runs.c.id)
                .where(runs.c.host == socket.gethostname(), runs.c.pid == os.getpid())
                .order_by(runs.c.id.desc())
                .limit(1)
            ).scalar()
    except sa.exc.SQLAlchemyError:
        return None
