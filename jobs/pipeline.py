"""The nightly run: extract -> facts -> evaluate -> reconcile -> prioritise -> compose ->
deliver -> record (DESIGN section 4).

One run evaluates everything as of one date. Running the same as-of date again gives the
same signals and sends nothing twice: reconcile is idempotent per date and the outbox holds
at most one message per (date, kind, recipient).
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.pool import Pool
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine import reconcile
from regiesignaal.engine.checkpoint import checkpoint
from regiesignaal.engine.evaluate import (
    calendar_for_workers,
    evaluate_source,
    unknown_explanation_rules,
    worker_init,
)
from regiesignaal.engine.language.casefile import shown_key
from regiesignaal.engine.language.compiled import CompiledRuleSet
from regiesignaal.engine.language.compiler import RuleSetError, check_rule_dir, compile_rules
from regiesignaal.engine.language.evaluator import ENGINE_SKIP
from regiesignaal.engine.language.rulefile.model import Problem, RuleDir
from regiesignaal.engine.source.read import count_cases, load_staff
from regiesignaal.engine.spool import HitSpool
from regiesignaal.engine.store import migrate, rulesets
from regiesignaal.engine.store.db import (
    engine_options,
    ensure_sqlite_dir,
    sqlite_file,
    store_engine,
)
from regiesignaal.engine.store.episodes import missing_rules
from regiesignaal.engine.store.lock import LockHeld, abort_stale_runs, ensure_lock, run_lock
from regiesignaal.engine.store.tables import runs
from regiesignaal.jobs.config import Settings
from regiesignaal.notifications.delivery.smtp import DeliveryReport, deliver_pending
from regiesignaal.notifications.night import queue_night, template_problems, unsettled_problems

log = logging.getLogger("regiesignaal.run")


class RunRefused(Exception):
    """The run did not start; the message says why and what to do."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []
        self.run_id: int | None = None  # the refused run's row, once recorded


class RunLocked(RunRefused):
    """Another run holds the store's run lock (exit code 4); the message names it."""


@dataclass
class RunOptions:
    as_of: dt.date
    trigger: str = "manual"  # manual | scheduler | demo
    deliver: bool = True
    # run even when the source looks wrong (no open cases, far fewer than last time) or the
    # as-of date lies more than a day ahead: both would rewrite the signal history
    force: bool = False
    # case managers (and daily digests) get mail on working days only, unless this says so
    case_manager_mail_any_day: bool = False


@dataclass
class RunSummary:
    run_id: int
    as_of: dt.date
    status: str
    ruleset_version: str
    cases: int = 0
    signals_per_rule: dict[str, int] = field(default_factory=dict)
    shadow_rules: list[str] = field(default_factory=list)  # rules in shadow mode tonight
    reconcile: dict[str, int] = field(default_factory=dict)
    messages_enqueued: dict[str, int] = field(default_factory=dict)
    delivery: DeliveryReport | None = None
    durations: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # the rule folder was broken and the run used the last good rule set: its problems
    rules_fallback: int = 0


# ---------------------------------------------------------------- workers


def start_pool(
    workers: int, ruledir: RuleDir, compiled: CompiledRuleSet, source: sa.Engine
) -> Pool | None:
    """Worker processes for evaluation and composition (None for ``workers <= 1``).

    Spawned, not forked: durable-rules runs timer threads that must not be forked.
    """
    if workers <= 1:
        return None
    ctx = multiprocessing.get_context("spawn")
    source_url = source.url.render_as_string(hide_password=False)
    return ctx.Pool(
        workers,
        initializer=worker_init,
        initargs=(
            str(ruledir.root),
            compiled.as_of,
            compiled.version,
            source_url,
            calendar_for_workers(),
        ),
    )


# ---------------------------------------------------------------- the run


CASE_DROP_LIMIT = 0.5  # refuse when open cases fall below half of the last good run's


def source_engine(url: str) -> sa.Engine:
    """An engine for the source; never creates it: a missing database is an error."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise RunRefused(
            f"de brondatabase {path} bestaat niet; controleer source_url "
            "(REGIESIGNAAL_SOURCE_URL of [database] source_url)"
        )
    return sa.create_engine(url, **engine_options(url))


def load_checked_rules(settings: Settings) -> RuleDir:
    ruledir = check_rule_dir(settings.rules_dir)
    if not ruledir.ok:
        raise RunRefused(
            f"de regels in {settings.rules_dir} bevatten fouten; er is niets verstuurd. "
            "Herstel ze (zie 'regiesignaal rules check') en start de run opnieuw.",
            [str(p) for p in ruledir.problems],
        )
    return ruledir


def rules_for_run(
    settings: Settings, store: sa.Engine, cleanup: ExitStack
) -> tuple[RuleDir, RuleDir | None]:
    """The rule set a run uses, and the broken folder when it is not the configured one.

    A folder that checks is used. A broken one refuses the run, unless ``[rules]
    on_broken = "last_good"`` (the default) and the store keeps a rule set that checked
    (engine/store/rulesets.py): that one is written into a temporary folder (removed by
    ``cleanup`` when the run ends) and used, and the broken folder is returned beside it
    so the caller can say so."""
    ruledir = check_rule_dir(settings.rules_dir)
    if ruledir.ok:
        return ruledir, None
    good = rulesets.last_good(store) if settings.rules_on_broken == "last_good" else None
    if good is not None:
        try:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="rs-")))
            fallback = check_rule_dir(rulesets.write_files(good.files, workdir / "regels"))
        except (OSError, ValueError) as exc:
            log.error("stored rule set %s not usable: %s", good.version, type(exc).__name__)
            fallback = RuleDir(settings.rules_dir)
            fallback.problems.append(Problem("", 0, 0, "onbruikbaar"))
        if fallback.ok and fallback.version == good.version:
            log.warning(
                "rules folder broken (%d problems): using last good rule set %s",
                len(ruledir.problems),
                good.version,
            )
            return fallback, ruledir
        log.error("stored rule set %s does not check any more; not used", good.version)
    why = (
        " Er is geen eerdere goede regelset om mee te draaien."
        if settings.rules_on_broken == "last_good"
        else ""
    )
    raise RunRefused(
        f"de regels in {settings.rules_dir} bevatten fouten; er is niets verstuurd. "
        f"Herstel ze (zie 'regiesignaal rules check') en start de run opnieuw.{why}",
        [str(p) for p in ruledir.problems],
    )


def remember_rules(store: sa.Engine, ruledir: RuleDir) -> None:
    """Keep the rule set a run succeeded with, as the last good one; never fatal."""
    try:
        rulesets.remember(store, ruledir.version, rulesets.read_files(ruledir.root))
    except (OSError, UnicodeDecodeError, sa.exc.SQLAlchemyError) as exc:
        log.error("rule set %s not kept: %s", ruledir.version, type(exc).__name__)


def check_templates(settings: Settings) -> None:
    """Refuse the run (before anything is queued) when a template override is broken."""
    problems = template_problems(settings)
    if problems:
        raise RunRefused(
            f"de sjablonen in {settings.mail_templates_dir} bevatten fouten; er is niets "
            "verstuurd. Herstel ze of haal [mail] templates_dir weg en start de run opnieuw.",
            problems,
        )


stage_listeners: list[Callable[[str], None]] = []  # told each stage as it starts (progress)


@contextmanager
def _timed(durations: dict[str, float], stage: str) -> Iterator[None]:
    for listener in stage_listeners:
        listener(stage)
    start = time.perf_counter()
    try:
        yield
    finally:
        durations[stage] = round(time.perf_counter() - start, 3)


@contextmanager
def _stage(
    store: sa.Engine, summary: RunSummary, stage: str, durations: dict[str, float]
) -> Iterator[None]:
    """A stage of the run: the lock is checked first (a run that lost it stops before
    writing anything of the stage), the run row names the stage, then it is timed."""
    ensure_lock()
    with store.begin() as conn:
        conn.execute(runs.update().where(runs.c.id == summary.run_id).values(stage=stage))
    with _timed(durations, stage):
        yield


def _record_refusal(
    store: sa.Engine, options: RunOptions, exc: RunRefused, status: str = "refused"
) -> None:
    now = dt.datetime.now(dt.UTC)
    with store.begin() as conn:
        exc.run_id = conn.execute(
            runs.insert().values(
                as_of=options.as_of,
                trigger=options.trigger,
                status=status,
                started_at=now,
                finished_at=now,
                errors=[str(exc), *exc.details[:200]],
                host=socket.gethostname(),
                pid=os.getpid(),
            )
        ).inserted_primary_key[0]  # type: ignore[index]


def run(settings: Settings, options: RunOptions) -> RunSummary:
    """One whole run. Raises RunRefused when it cannot start (nothing is sent then)."""
    store = store_engine(settings.store_url)
    try:
        source = source_engine(settings.source_url)
    except RunRefused as exc:
        if migrate.is_up_to_date(settings.store_url):
            _record_refusal(store, options, exc)
        store.dispose()
        raise
    try:
        if not migrate.is_up_to_date(settings.store_url):
            raise RunRefused(
                "de opslag (store) heeft niet het juiste schema; voer eerst "
                "'regiesignaal db upgrade' uit"
            )
        with run_lock(store), ExitStack() as cleanup:
            return _run(settings, options, store, source, cleanup)
    except LockHeld as exc:
        locked = RunLocked(str(exc))
        if migrate.is_up_to_date(settings.store_url):
            _record_refusal(store, options, locked, status="locked")
        raise locked from None
    finally:
        store.dispose()
        source.dispose()


def _preflight(
    settings: Settings, options: RunOptions, store: sa.Engine, source: sa.Engine
) -> None:
    """Refuse a run that would damage the signal history; ``force`` overrides."""
    if options.force:
        return
    today = dt.datetime.now(settings.tz).date()
    if options.as_of > today + dt.timedelta(days=1):
        raise RunRefused(
            f"peildatum {options.as_of} ligt in de toekomst (vandaag is {today}); een run "
            "kan daarna niet meer terug in de tijd. Bedoeld? Gebruik --force."
        )
    open_now = count_cases(source, status="open")
    if open_now == 0:
        raise RunRefused(
            "de brondatabase heeft geen open zaken; de run zou alle signalen sluiten. "
            "Controleer source_url en de levering; bedoeld? Gebruik --force."
        )
    with store.connect() as conn:
        last = conn.execute(
            sa.select(runs.c.id, runs.c.counts)
            .where(runs.c.status == "succeeded")
            .order_by(runs.c.id.desc())
            .limit(1)
        ).first()
    before = int((last.counts or {}).get("cases", 0)) if last is not None else 0
    if last is not None and before and open_now < CASE_DROP_LIMIT * before:
        raise RunRefused(
            f"de bron heeft {open_now} open zaken, de vorige geslaagde run (id {last.id}) "
            f"had er {before}; een onvolledige levering zou signalen ten onrechte sluiten. "
            "Controleer de bron; klopt het toch? Gebruik --force."
        )


def _check_rule_set(conn: sa.Connection, ruledir: RuleDir) -> None:
    """Refuse an empty rule set, or one that lacks rules holding open signals (unless
    those rules were retired with ``regiesignaal rules retire``)."""
    if not ruledir.rules:
        raise RunRefused(
            f"de regelmap {ruledir.root} bevat geen regels; de run zou alle signalen sluiten. "
            "Controleer rules_dir (REGIESIGNAAL_RULES_DIR of [rules] dir)."
        )
    missing = missing_rules(conn, {r.id for r in ruledir.rules})
    if missing:
        raise RunRefused(
            f"{len(missing)} regel(s) met open signalen ontbreken in {ruledir.root}: "
            f"{', '.join(missing)}. Zet de regelbestanden terug, of trek de regels bewust in "
            f"met 'regiesignaal rules retire {' '.join(missing)}' (hun signalen sluiten dan "
            "met reden rule_retired).",
            [f"ontbrekende regel: {rule_id}" for rule_id in missing],
        )


def _abort_stale_runs(store: sa.Engine) -> None:
    """Mark runs left 'running' by a process that died as aborted (see engine/store/lock.py)."""
    abort_stale_runs(store)


def _run(
    settings: Settings,
    options: RunOptions,
    store: sa.Engine,
    source: sa.Engine,
    cleanup: ExitStack,
) -> RunSummary:
    as_of = options.as_of
    if not migrate.is_up_to_date(settings.store_url):
        raise RunRefused(
            "de opslag (store) heeft niet het juiste schema; voer eerst "
            "'regiesignaal db upgrade' uit"
        )
    _abort_stale_runs(store)
    try:
        ruledir, broken = rules_for_run(settings, store, cleanup)
        check_templates(settings)
        with store.connect() as conn:
            reconcile.check_forward(conn, as_of)
            _check_rule_set(conn, ruledir)
        _preflight(settings, options, store, source)
    except reconcile.ReconcileError as exc:
        refused = RunRefused(str(exc))
        _record_refusal(store, options, refused)
        raise refused from exc
    except RunRefused as exc:
        _record_refusal(store, options, exc)
        raise

    compiled = compile_rules(ruledir, as_of)
    started = dt.datetime.now(dt.UTC)
    try:
        with store.begin() as conn:
            run_id = int(
                conn.execute(  # type: ignore[index]
                    runs.insert().values(
                        as_of=as_of,
                        trigger=options.trigger,
                        status="running",
                        started_at=started,
                        ruleset_version=ruledir.version,
                        stage="start",
                        host=socket.gethostname(),
                        pid=os.getpid(),
                    )
                ).inserted_primary_key[0]
            )
    except sa.exc.IntegrityError:
        with store.connect() as conn:
            other = conn.execute(sa.select(runs).where(runs.c.status == "running")).first()
        where = ""
        if other is not None:
            where = f" (run {other.id}, peildatum {other.as_of}, {other.host} pid {other.pid})"
        raise LockHeld(where.strip(" ()") or "een ander proces") from None
    summary = RunSummary(run_id, as_of, "running", ruledir.version)
    if broken is not None:
        summary.rules_fallback = len(broken.problems)
        summary.problems.append(
            f"de regels in {settings.rules_dir} bevatten {len(broken.problems)} fout(en) "
            f"(versie {broken.version}); deze run gebruikte de laatste goede regelset "
            f"(versie {ruledir.version}). Herstel de regels (zie 'regiesignaal rules check')."
        )
    log.info("run %d started: as_of=%s rules=%s", run_id, as_of, ruledir.version)
    try:
        _stages(settings, options, store, source, ruledir, compiled, summary)
        summary.status = "succeeded"
        remember_rules(store, ruledir)
    except Exception as exc:
        summary.status = "failed"
        label = getattr(exc, "label", None)  # a stop with its own Dutch line (nightly.py)
        summary.problems.append(
            label if isinstance(label, str) else f"{type(exc).__name__}: {str(exc)[:300]}"
        )
        log.error("run %d failed: %s", run_id, type(exc).__name__)
        raise
    finally:
        with store.begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    status=summary.status,
                    finished_at=dt.datetime.now(dt.UTC),
                    counts={
                        "cases": summary.cases,
                        "signals_per_rule": summary.signals_per_rule,
                        "reconcile": summary.reconcile,
                        "messages_enqueued": summary.messages_enqueued,
                        "delivery": _delivery_counts(summary.delivery),
                    }
                    | (
                        {"rules_fallback": summary.rules_fallback} if summary.rules_fallback else {}
                    ),
                    durations=summary.durations,
                    errors=summary.problems[:200],
                )
            )
        log.info("run %d %s", run_id, summary.status)
    return summary


def _delivery_counts(report: DeliveryReport | None) -> dict[str, int] | None:
    if report is None:
        return None
    return {
        "sent": report.sent,
        "deferred": report.deferred,
        "failed": report.failed,
        "uncertain": report.uncertain,
        "untried": report.untried,
    }


def _stages(
    settings: Settings,
    options: RunOptions,
    store: sa.Engine,
    source: sa.Engine,
    ruledir: RuleDir,
    compiled: CompiledRuleSet,
    summary: RunSummary,
) -> None:
    pool = start_pool(settings.workers, ruledir, compiled, source)
    try:
        all_rule_ids = frozenset(r.id for r in ruledir.rules)
        _pipeline(settings, options, store, source, compiled, summary, pool, all_rule_ids)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if pool is not None:
            pool.terminate()


def _pipeline(
    settings: Settings,
    options: RunOptions,
    store: sa.Engine,
    source: sa.Engine,
    compiled: CompiledRuleSet,
    summary: RunSummary,
    pool: Pool | None,
    all_rule_ids: frozenset[str] = frozenset(),
) -> None:
    spool = HitSpool({cr.rule.id: cr.rule.severity for cr in compiled.rules})
    try:
        _after_extract(
            settings, options, store, source, compiled, summary, pool, all_rule_ids, spool
        )
    finally:
        spool.close()


class ReconcileBehind:
    """Reconcile in a thread of its own while the workers still evaluate (issue 19).

    The thread opens the store transaction that reconcile has always run in (on SQLite it
    holds the store's write lock from the first range: nothing else in this process may
    touch the store until :meth:`finish`), and
    reconciles each case_ref range from the spool (``HitSpool.following``) as soon as its
    hits are in; the last range waits for :meth:`finish`, which commits and returns the
    counts. Leaving the ``with`` block any other way (an error, the time limit, a lost
    lock, too many cases the engine could not judge) aborts the spool and rolls the
    transaction back: as before, a run that stops after evaluation changes nothing. The
    result is that of reconciling after evaluation: the ranges, their order and the
    transaction are the same; only the waiting is gone.

    ``reconcile_ranges``: ``engine.reconcile.reconcile_in_ranges`` with everything but the
    connection, the chunks and the untouched case_refs bound.
    """

    def __init__(
        self, store: sa.Engine, spool: HitSpool, reconcile_ranges: Callable[..., Any]
    ) -> None:
        self._store = store
        self._spool = spool
        self._reconcile = reconcile_ranges
        self._thread = threading.Thread(target=self._work, name="reconcile-behind", daemon=True)
        self._counts: reconcile.ReconcileCounts | None = None
        self._error: BaseException | None = None

    def _work(self) -> None:
        untouched: set[str] = set()  # grows range by range (HitSpool.following)
        try:
            with self._store.begin() as conn:
                self._counts = self._reconcile(
                    conn, self._spool.following(untouched), untouched_case_refs=untouched
                )
                ensure_lock(conn)  # a run that lost its lock commits nothing
        except BaseException as exc:  # handed to the main thread
            self._error = exc

    def __enter__(self) -> ReconcileBehind:
        self._thread.start()
        return self

    def finish(self) -> reconcile.ReconcileCounts:
        """Every range is in: reconcile the last, commit, and give the counts. Raises
        what the reconcile thread raised."""
        self._spool.seal()
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._counts is not None
        return self._counts

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread.is_alive():  # left without finish(): roll back
            self._spool.abort()
            self._thread.join()


def _after_extract(
    settings: Settings,
    options: RunOptions,
    store: sa.Engine,
    source: sa.Engine,
    compiled: CompiledRuleSet,
    summary: RunSummary,
    pool: Pool | None,
    all_rule_ids: frozenset[str],
    spool: HitSpool,
) -> None:
    as_of = options.as_of
    d = summary.durations
    rules_by_id = {cr.rule.id: cr.rule for cr in compiled.rules}
    active = {
        rid: reconcile.RuleInfo(r.severity, r.escalate_after, r.max_explanation, r.covers, r.shadow)
        for rid, r in rules_by_id.items()
    }
    reconcile_problems: list[str] = []
    behind = ReconcileBehind(
        store,
        spool,
        partial(
            reconcile.reconcile_in_ranges,
            open_case_refs=spool.open_refs,
            active_rules=active,
            as_of=as_of,
            run_id=summary.run_id,
            policy=reconcile.Policy(settings.grace_days, settings.baseline_spread_days),
            baseline=True,
            ruleset_version=compiled.version,
            problems=reconcile_problems,
        ),
    )
    with _stage(store, summary, "extract_evaluate", d), behind:
        staff = load_staff(source)
        extracted = evaluate_source(
            source, compiled, settings.batch_size, pool, spool.add, spool.add_open_refs
        )
        checkpoint("evaluated")
        summary.cases = extracted.open_count
        engine_failed = sum(1 for k in extracted.unreadable.values() if k.startswith(ENGINE_SKIP))
        if engine_failed > max(10, extracted.open_count // 10):
            # one case is that case's problem; this many is the engine's: stop, change
            # nothing (reconcile, behind, rolls back what it did)
            raise RuntimeError(
                f"de regelengine kon {engine_failed} van {extracted.open_count} zaken niet "
                "beoordelen; de run stopt zonder iets te wijzigen"
            )
        with _timed(d, "reconcile"):
            counts = behind.finish()
    for case_ref, kind in sorted(extracted.unreadable.items()):
        summary.problems.append(
            f"zaak {shown_key(case_ref)}: onleesbare gegevens in de brondatabase ({kind}); "
            "overgeslagen, haar open signalen blijven ongewijzigd staan. Herstel de zaak in "
            "de bron."
        )
    summary.problems.extend(
        unknown_explanation_rules(
            extracted.explanation_refs, set(all_rule_ids or compiled.rule_ids)
        )
    )
    for name, count in sorted(extracted.unknown_choices.items()):
        summary.problems.append(
            f"veld {name}: {count} {'waarde' if count == 1 else 'waarden'} buiten de "
            "keuzelijst in de bron (een nieuwe keuze in het bronsysteem?); regels die dit veld "
            "vergelijken zien ze als 'een andere waarde'"
        )
    per_rule = spool.per_rule
    summary.signals_per_rule = {r: per_rule.get(r, 0) for r in compiled.rule_ids}
    summary.shadow_rules = sorted(cr.rule.id for cr in compiled.rules if cr.rule.shadow)
    summary.problems.extend(reconcile_problems)
    summary.reconcile = counts.as_dict()
    checkpoint("reconciled")

    with _stage(store, summary, "compose", d):
        night = queue_night(
            store,
            settings,
            as_of,
            run_id=summary.run_id,
            staff=staff,
            rules_by_id=rules_by_id,
            bonus=spool.bonus,
            open_cases_per_manager=extracted.open_per_manager,
            any_day=options.case_manager_mail_any_day,
            pool=pool,
            open_cases=extracted.open_count,
        )
    summary.problems.extend(night.problems)
    summary.messages_enqueued = dict(night.enqueued)
    checkpoint("composed")

    if options.deliver and settings.mail_enabled:
        with _stage(store, summary, "deliver", d):
            summary.delivery = deliver_pending(store, settings.smtp)
        summary.problems.extend(summary.delivery.errors[:50])
    summary.problems.extend(unsettled_problems(store, as_of))


def upgrade_store(settings: Settings) -> None:
    ensure_sqlite_dir(settings.store_url)
    migrate.upgrade(settings.store_url)


__all__ = ["RuleSetError", "RunOptions", "RunRefused", "RunSummary", "run"]
