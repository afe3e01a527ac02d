"""The nightly run: extract -> facts -> evaluate -> reconcile -> prioritise -> compose ->
deliver -> record (DESIGN section 4).

One run evaluates everything as of one date. Running the same as-of date again gives the
same signals and sends nothing twice: reconcile is idempotent per date and the outbox holds
at most one message per (date, kind, recipient).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import multiprocessing
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine import migrate, reconcile
from engine.casefile import shown_key
from engine.checkpoint import checkpoint
from engine.compiler import CompiledRuleSet, RuleSetError, check_rule_dir, compile_rules
from engine.dates import calendar_files, is_working_day, use_calendar_file
from engine.db import engine_options, ensure_sqlite_dir, sqlite_file, store_engine
from engine.evaluate import ENGINE_SKIP, Evaluator, Hit
from engine.facts import explanation_rule_refs
from engine.needs import SourceNeeds, needs_of
from engine.rulefile import RuleDir, load_rule_dir
from engine.source import (
    count_cases,
    count_unknown_choices,
    iter_case_index,
    load_staff,
    read_case_range,
)
from engine.store import runs
from jobs.config import Settings
from jobs.lock import LockHeld, abort_stale_runs, run_lock
from jobs.mail_stage import mail_options, queue_rule_report, template_problems
from jobs.spool import HitSpool
from notifications import outbox
from notifications.addresses import AddressError, check_address, domain_allowed
from notifications.compose import (
    MailOptions,
    compose_case_manager,
    compose_team_digest,
    count_nl,
)
from notifications.delivery import DeliveryReport, deliver_pending
from notifications.digests import (
    RuleMeta,
    iter_case_manager_lines,
    missed_digest_starts,
    new_since,
    team_digests,
)
from notifications.model import ComposedMessage, Recipient, SignalLine, TeamDigest

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
    reconcile: dict[str, int] = field(default_factory=dict)
    messages_enqueued: dict[str, int] = field(default_factory=dict)
    delivery: DeliveryReport | None = None
    durations: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- evaluation


_worker: dict[str, Any] = {}


def _worker_init(
    rules_dir: str, as_of: dt.date, version: str, source_url: str, calendar: str | None = None
) -> None:
    use_calendar_file(Path(calendar) if calendar else None)  # the same working days
    ruledir = load_rule_dir(Path(rules_dir))
    if ruledir.version != version:
        raise RuntimeError("de regels zijn tijdens de run gewijzigd; start de run opnieuw")
    compiled = compile_rules(ruledir, as_of)
    _worker["evaluator"] = Evaluator(compiled, "durable")
    _worker["needs"] = needs_of(compiled)
    _worker["source"] = source_engine(source_url)


@dataclass
class RangeResult:
    hits: list[Hit]
    unreadable: dict[str, str]  # case_ref -> kind of problem
    # explanations naming a rule that is not active: (case_ref, position, rule as written)
    explanation_refs: list[tuple[str, int, str]] = field(default_factory=list)


def _evaluate_range(
    evaluator: Evaluator,
    source: sa.Engine,
    key_range: tuple[str, str],
    needs: SourceNeeds | None = None,
) -> RangeResult:
    """Read one case_ref range (only what ``needs`` names; None: whole cases) and
    evaluate it."""
    read = read_case_range(source, *key_range, needs=needs)
    unreadable = dict(read.unreadable)
    active = set(evaluator.compiled.rule_ids)
    refs = [
        (case["case_ref"], i, rule)
        for case in read.cases
        for i, rule in explanation_rule_refs(case)
        if rule not in active
    ]
    return RangeResult(evaluator.hits(read.cases, unreadable), unreadable, refs)


def _worker_eval(key_range: tuple[str, str]) -> RangeResult:
    """In a worker process: read one case_ref range from the source and evaluate it."""
    return _evaluate_range(_worker["evaluator"], _worker["source"], key_range, _worker["needs"])


@dataclass
class Extracted:
    """What evaluating the source gave. Nothing in it grows with the number of cases but
    the hits (when no sink takes them) and the problem cases (``unreadable``)."""

    hits: list[Hit] = field(default_factory=list)
    open_count: int = 0  # open cases in the source
    open_per_manager: Counter[str] = field(default_factory=Counter)  # regievoerder -> cases
    unreadable: dict[str, str] = field(default_factory=dict)
    explanation_refs: list[tuple[str, int, str]] = field(default_factory=list)
    unknown_choices: Counter[str] = field(default_factory=Counter)


COMPOSE_GROUP = 64
"""Case managers whose messages are composed (by the worker pool) and queued together."""

ComposeTask = tuple[str, str, dt.date, list[SignalLine], MailOptions, dt.date | None]


def _worker_compose(task: ComposeTask) -> ComposedMessage:
    """In a worker process: render one case manager's message."""
    staff_id, email, as_of, lines, mail_options, since = task
    return compose_case_manager(
        Recipient(staff_id, email), as_of, lines, mail_options, new_since=since
    )


DigestTask = tuple[str, str, TeamDigest, MailOptions]


def _worker_compose_digest(task: DigestTask) -> ComposedMessage:
    """In a worker process: render one team lead's digest."""
    lead, email, digest, mail_options = task
    return compose_team_digest(Recipient(lead, email), digest, mail_options)


def _render_all(
    pool: Pool | None, render: Callable[[Any], ComposedMessage], tasks: list[Any]
) -> Iterator[ComposedMessage]:
    """The messages of ``tasks`` in order: handed to the worker pool at once (rendered
    while the caller goes on), or rendered one by one as they are taken without a pool."""
    if pool is None or not tasks:
        return map(render, tasks)
    return pool.imap(render, tasks, chunksize=4)


def _calendar() -> str | None:
    """The operator's calendar file in use (beside the shipped one), for worker processes."""
    files = calendar_files()
    return str(files[1]) if len(files) > 1 else None


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
        initializer=_worker_init,
        initargs=(str(ruledir.root), compiled.as_of, compiled.version, source_url, _calendar()),
    )


HitSink = Callable[[str | None, list[Hit]], None]
"""Receives, range by range in case_ref order, the last case_ref of the range (None for
the last range) and the range's hits."""

OpenRefsSink = Callable[[str | None, list[str]], None]
"""Receives, range by range in case_ref order (before any is evaluated), the last case_ref
of the range (None for the last range) and the open case_refs of the range."""


def evaluate_source(
    source: sa.Engine,
    compiled: CompiledRuleSet,
    batch_size: int,
    pool: Pool | None = None,
    sink: HitSink | None = None,
    open_refs_sink: OpenRefsSink | None = None,
) -> Extracted:
    """Extract the open cases in batches and evaluate them, in the worker pool if given.

    The main process streams the case index (``iter_case_index``) and cuts it into
    case_ref ranges of ``batch_size`` cases, keeping only each range's bounds (and, with
    ``open_refs_sink``, handing over its case_refs); each range is read and evaluated on
    its own (by a worker when there is a pool), so memory per process is bounded by the
    batch size, not by the number of cases. A case whose record cannot be read is named in
    ``unreadable`` and skipped; the rest goes on. With ``sink`` the hits go there range by
    range instead of into ``Extracted.hits``.

    Only the tables and columns the rule set reads are read (``engine.needs``); the
    choice values outside their lists are counted by one aggregate query per table
    (``count_unknown_choices``) over the open cases that could be read.
    """
    out = Extracted()
    ranges: list[tuple[str, str]] = []

    def cut(refs: list[str], last: bool) -> None:
        ranges.append((refs[0], refs[-1]))
        if open_refs_sink is not None:
            open_refs_sink(None if last else refs[-1], refs)

    refs: list[str] = []
    for case_ref, regievoerder in iter_case_index(source, status="open"):
        out.open_count += 1
        if regievoerder:
            out.open_per_manager[regievoerder] += 1
        if len(refs) == batch_size:  # a case follows: this range is not the last
            cut(refs, last=False)
            refs = []
        refs.append(case_ref)
    if refs:
        cut(refs, last=True)
    del refs
    if pool is None:
        evaluator = Evaluator(compiled, "durable")
        needs = needs_of(compiled)
        results: Iterator[RangeResult] = (
            _evaluate_range(evaluator, source, r, needs) for r in ranges
        )
    else:
        results = pool.imap(_worker_eval, ranges)
    for i, result in enumerate(results):
        if sink is None:
            out.hits.extend(result.hits)
        else:
            sink(ranges[i][1] if i < len(ranges) - 1 else None, result.hits)
        out.unreadable.update(result.unreadable)
        out.explanation_refs.extend(result.explanation_refs)
    out.unknown_choices = count_unknown_choices(source, "open", exclude=out.unreadable)
    return out


def unknown_explanation_rules(refs: list[tuple[str, int, str]], rule_ids: set[str]) -> list[str]:
    """Problems for explanations naming a rule that is not in the rule folder, per case with
    the nearest rule id; never the text of the explanation nor the id as written."""
    from engine.catalogue import suggest

    problems = []
    for case_ref, position, rule in sorted(refs):
        if rule in rule_ids:
            continue  # a rule that exists but is switched off
        hint = suggest(rule.strip().upper(), rule_ids) or "controleer het regel-id."
        problems.append(
            f"zaak {case_ref}: toelichting {position} noemt een regel die niet bestaat en telt "
            f"niet mee; {hint} Herstel de toelichting in het zaaksysteem."
        )
    return problems


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
        with run_lock(store):
            return _run(settings, options, store, source)
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
    missing = reconcile.missing_rules(conn, {r.id for r in ruledir.rules})
    if missing:
        raise RunRefused(
            f"{len(missing)} regel(s) met open signalen ontbreken in {ruledir.root}: "
            f"{', '.join(missing)}. Zet de regelbestanden terug, of trek de regels bewust in "
            f"met 'regiesignaal rules retire {' '.join(missing)}' (hun signalen sluiten dan "
            "met reden rule_retired).",
            [f"ontbrekende regel: {rule_id}" for rule_id in missing],
        )


def _abort_stale_runs(store: sa.Engine) -> None:
    """Mark runs left 'running' by a process that died as aborted (see jobs/lock.py)."""
    abort_stale_runs(store)


def _run(
    settings: Settings, options: RunOptions, store: sa.Engine, source: sa.Engine
) -> RunSummary:
    as_of = options.as_of
    if not migrate.is_up_to_date(settings.store_url):
        raise RunRefused(
            "de opslag (store) heeft niet het juiste schema; voer eerst "
            "'regiesignaal db upgrade' uit"
        )
    _abort_stale_runs(store)
    try:
        ruledir = load_checked_rules(settings)
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
    log.info("run %d started: as_of=%s rules=%s", run_id, as_of, ruledir.version)
    try:
        _stages(settings, options, store, source, ruledir, compiled, summary)
        summary.status = "succeeded"
    except Exception as exc:
        summary.status = "failed"
        summary.problems.append(f"{type(exc).__name__}: {str(exc)[:300]}")
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
                    },
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
    rules_by_id = {cr.rule.id: cr.rule for cr in compiled.rules}
    spool = HitSpool({rid: r.severity for rid, r in rules_by_id.items()})
    try:
        _after_extract(
            settings, options, store, source, compiled, summary, pool, all_rule_ids, spool
        )
    finally:
        spool.close()


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
    with _timed(d, "extract_evaluate"):
        staff = load_staff(source)
        extracted = evaluate_source(
            source, compiled, settings.batch_size, pool, spool.add, spool.add_open_refs
        )
    checkpoint("evaluated")
    summary.cases = extracted.open_count
    engine_failed = sum(1 for k in extracted.unreadable.values() if k.startswith(ENGINE_SKIP))
    if engine_failed > max(10, extracted.open_count // 10):
        # one case is that case's problem; this many is the engine's: stop, change nothing
        raise RuntimeError(
            f"de regelengine kon {engine_failed} van {extracted.open_count} zaken niet "
            "beoordelen; de run stopt zonder iets te wijzigen"
        )
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

    rules_by_id = {cr.rule.id: cr.rule for cr in compiled.rules}
    with _timed(d, "reconcile"):
        active = {
            rid: reconcile.RuleInfo(r.severity, r.escalate_after, r.max_explanation)
            for rid, r in rules_by_id.items()
        }
        with store.begin() as conn:
            counts = reconcile.reconcile_in_ranges(
                conn,
                spool.chunks(),
                spool.open_refs,
                active,
                as_of,
                summary.run_id,
                untouched_case_refs=set(extracted.unreadable),
                policy=reconcile.Policy(settings.grace_days, settings.baseline_spread_days),
                baseline=True,
                ruleset_version=compiled.version,
                problems=summary.problems,
            )
        summary.reconcile = counts.as_dict()
    checkpoint("reconciled")

    open_cases_per_manager = extracted.open_per_manager
    with _timed(d, "compose"):
        _compose(
            settings,
            options,
            store,
            staff,
            rules_by_id,
            spool.bonus,
            open_cases_per_manager,
            summary,
            pool,
        )
    checkpoint("composed")

    if options.deliver and settings.mail_enabled:
        with _timed(d, "deliver"):
            summary.delivery = deliver_pending(store, settings.smtp)
        summary.problems.extend(summary.delivery.errors[:50])
    summary.problems.extend(unsettled_problems(store, as_of))


def _compose(
    settings: Settings,
    options: RunOptions,
    store: sa.Engine,
    staff: Mapping[str, Mapping[str, Any]],
    rules_by_id: Mapping[str, Any],
    bonus: Mapping[str, int],
    open_cases_per_manager: Mapping[str, int],
    summary: RunSummary,
    pool: Pool | None,
) -> None:
    """Compose every message of the run and queue it in the outbox, in one transaction:
    a crash leaves none of the night's messages queued (a rerun composes them all)."""
    as_of = options.as_of
    meta = {
        rid: RuleMeta(r.mail_title, r.expected_action, r.escalate_after, r.mail_code)
        for rid, r in rules_by_id.items()
    }
    enqueued: Counter[str] = Counter()
    sender_domain = settings.smtp.sender.rpartition("@")[2] or "regiesignaal.local"
    with store.begin() as conn:

        def queue(kind: str, recipient: str, email: str, message: ComposedMessage) -> None:
            if outbox.enqueue(
                conn,
                run_id=summary.run_id,
                as_of=as_of,
                kind=kind,
                recipient_id=recipient,
                recipient_email=email,
                message=message,
                sender_domain=sender_domain,
            ):
                enqueued[kind] += 1

        queued = outbox.queued_recipients(conn, as_of)
        working_day = options.case_manager_mail_any_day or is_working_day(as_of)
        if not working_day:
            summary.problems.append(
                f"{as_of} is geen werkdag: geen berichten aan regievoerders (wel signalen "
                "bijgewerkt); de volgende werkdag tellen ze als nieuw"
            )
        shape = mail_options(settings)
        if working_day:
            reached = outbox.last_reached(conn, "regievoerder", as_of)
            lines_problems: list[str] = []

            def compose_tasks() -> Iterator[ComposeTask]:
                for staff_id, lines in iter_case_manager_lines(
                    conn, as_of, meta, settings.case_link, bonus, reached, lines_problems
                ):
                    if ("regievoerder", staff_id) in queued:
                        continue
                    email = _email_of(
                        staff, staff_id, summary.problems, len(lines), settings.smtp.allowed_domains
                    )
                    if email is not None:
                        since = new_since(reached.get(staff_id), as_of)
                        yield (staff_id, email, as_of, lines, shape, since)

            # one group of recipients at a time, and the next group's lines are read while
            # the workers render this one's: memory holds two groups' lines and messages
            tasks = compose_tasks()
            group = list(itertools.islice(tasks, COMPOSE_GROUP))
            messages = _render_all(pool, _worker_compose, group)
            while group:
                following = list(itertools.islice(tasks, COMPOSE_GROUP))
                rendering = _render_all(pool, _worker_compose, following)
                for (staff_id, address, *_), message in zip(group, messages, strict=True):
                    queue("regievoerder", staff_id, address, message)
                group, messages = following, rendering
            summary.problems.extend(lines_problems)
        # weekly digests go out on their weekday whatever it is; daily ones on working days;
        # a digest that was missed goes out with the next run (catch-up)
        catch_up = missed_digest_starts(
            as_of,
            settings.digest,
            settings.is_digest_day,
            staff,
            outbox.last_reached(conn, "teamleider", as_of),
        )
        mail_day = settings.digest == "weekly" or working_day
        digest_day = settings.is_digest_day(as_of) and mail_day
        if not mail_day:
            catch_up = {}  # a daily digest never goes out on a weekend or holiday
        if digest_day or catch_up:
            result = team_digests(
                conn,
                as_of,
                settings.digest,
                staff,
                open_cases_per_manager,
                meta,
                settings.case_link,
                period_starts=catch_up,
                staff_names=settings.mail_staff_names,
            )
            summary.problems.extend(result.problems)
            digest_tasks: list[DigestTask] = []
            for lead, member in sorted(staff.items()):
                digest = result.digests.get(member.get("team") or "")
                if member.get("role") != "teamleider" or digest is None:
                    continue
                if not digest_day and digest.team not in catch_up:
                    continue
                if ("teamleider", lead) in queued:
                    continue
                email = _email_of(staff, lead, summary.problems, 1, settings.smtp.allowed_domains)
                if email is not None:
                    digest_tasks.append((lead, email, digest, shape))
            # rendered by the workers too, queued in the same order as before
            rendered = _render_all(pool, _worker_compose_digest, digest_tasks)
            for (lead, email, *_), message in zip(digest_tasks, rendered, strict=True):
                queue("teamleider", lead, email, message)
        email_of = partial(
            _email_of,
            staff,
            problems=summary.problems,
            n=1,
            allowed=settings.smtp.allowed_domains,
        )
        summary.problems += queue_rule_report(
            settings, conn, as_of, rules_by_id, staff, queue, queued, email_of
        )
    summary.messages_enqueued = dict(enqueued)


def unsettled_problems(store: sa.Engine, as_of: dt.date) -> list[str]:
    """Dutch lines about messages stuck in delivery (a killed run) or with an unknown
    outcome for ``as_of``: a rerun after a crash says so instead of looking clean."""
    with store.connect() as conn:
        found = outbox.unsettled(conn, as_of)
    out = []
    if found["stuck"]:
        out.append(
            f"{count_nl(found['stuck'], 'bericht', 'berichten')} blijven hangen in verzending "
            "(een eerdere bezorging is onderbroken, of een andere bezorging loopt nog); "
            "10 minuten na de onderbreking handelt 'regiesignaal deliver' ze af: wat nog niet "
            "verstuurd was opnieuw, wat mogelijk is aangekomen niet (of vervangen door een "
            "nieuwer bericht)"
        )
    if found["uncertain"]:
        out.append(
            f"{count_nl(found['uncertain'], 'bericht', 'berichten')} van {as_of} mogelijk "
            "aangekomen (uitkomst onbekend; niet opnieuw verstuurd): zoek het Message-ID op "
            "in het logboek van de mailserver; niet aangekomen? 'regiesignaal deliver "
            "--retry-uncertain'"
        )
    return out


def _email_of(
    staff: Mapping[str, Mapping[str, Any]],
    staff_id: str,
    problems: list[str],
    n: int,
    allowed: tuple[str, ...] = (),
) -> str | None:
    """The checked address of a staff member (one bare address, in an allowed domain), or
    None with a problem line naming the staff id (never the address)."""
    member = staff.get(staff_id)
    if member is None:
        problems.append(
            f"medewerker {shown_key(staff_id)} staat niet in het medewerkersbestand: "
            f"bericht ({count_nl(n, 'regel', 'regels')}) niet verstuurd; "
            "vul het medewerkersbestand aan"
        )
        return None
    email = str(member.get("email") or "").strip()
    if not email:
        problems.append(
            f"medewerker {shown_key(staff_id)} heeft geen e-mailadres: bericht niet verstuurd; "
            "vul het e-mailadres aan in het medewerkersbestand"
        )
        return None
    try:
        email = check_address(email)
    except AddressError as exc:
        problems.append(
            f"medewerker {shown_key(staff_id)}: e-mailadres onbruikbaar ({exc}): bericht niet "
            "verstuurd; vul één kaal adres in (naam@domein.nl) in het medewerkersbestand"
        )
        return None
    if not domain_allowed(email, allowed):
        problems.append(
            f"medewerker {shown_key(staff_id)}: e-mailadres buiten de toegestane domeinen ([mail] "
            "allowed_domains): bericht niet verstuurd"
        )
        return None
    return email


def upgrade_store(settings: Settings) -> None:
    ensure_sqlite_dir(settings.store_url)
    migrate.upgrade(settings.store_url)


def preview(
    settings: Settings, ruledir: RuleDir, as_of: dt.date
) -> tuple[CompiledRuleSet, Extracted]:
    """The signals ``ruledir`` gives for the source data as of ``as_of``; writes nothing."""
    source = source_engine(settings.source_url)
    try:
        compiled = compile_rules(ruledir, as_of)
        return compiled, evaluate_source(source, compiled, settings.batch_size)
    finally:
        source.dispose()


def open_signal_keys(settings: Settings) -> set[tuple[str, str]]:
    """The (case_ref, rule_id) of every open signal in the store, for ``preview --diff``."""
    from engine.store import signals

    store = store_engine(settings.store_url)
    try:
        with store.connect() as conn:
            return {
                (r.case_ref, r.rule_id)
                for r in conn.execute(
                    sa.select(signals.c.case_ref, signals.c.rule_id).where(
                        signals.c.closed_on.is_(None)
                    )
                )
            }
    finally:
        store.dispose()


__all__ = ["RuleSetError", "RunOptions", "RunRefused", "RunSummary", "preview", "run"]
