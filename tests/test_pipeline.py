"""The nightly run end to end: real databases, a real SMTP server, real rule evaluation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import json
import re
from email import policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Evaluator
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.source.read import iter_case_batches
from regiesignaal.engine.store.tables import outbox, run_lock, runs, signals
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.config import Settings, load_settings
from regiesignaal.jobs.demo.demo import run_demo
from regiesignaal.jobs.pipeline import RunOptions, RunRefused, run, upgrade_store
from regiesignaal.notifications.delivery.mailserver import MailCatcher
from regiesignaal.notifications.delivery.settings import SmtpSettings

AS_OF = dt.date(2026, 3, 2)  # a Monday
RULES = Path(__file__).resolve().parents[1] / "rules"


def read_mail(directory: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted(directory.glob("*.eml"))
    ]


def staff_of(path: Path) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in map(json.loads, path.read_text().splitlines())}


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(600, 7, AS_OF, cases, staff)
    return cases, staff


def make_settings(source_url: str, store_url: str, port: int) -> Settings:
    return dataclasses.replace(
        load_settings(env={}),
        source_url=source_url,
        store_url=store_url,
        rules_dir=RULES,
        workers=1,
        grace_days=0,  # these tests close signals at once; grace has tests of its own
        smtp=SmtpSettings(host="127.0.0.1", port=port, tls="none", timeout_seconds=10),
    )


def load_source(url: str, cases: Path, staff: Path) -> None:
    engine = sa.create_engine(url)
    try:
        assert load_staff_file(engine, staff).rejected == 0
        assert load_cases(engine, cases).rejected == 0
    finally:
        engine.dispose()


def snapshot(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            cols = [c for c in signals.c if c.name not in ("id", "opened_run_id", "closed_run_id")]
            return sorted(tuple(r) for r in conn.execute(sa.select(*cols)))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    """What `make demo` does: messages arrive at the local SMTP server, once, well formed."""
    summary = run_demo(tmp_path / "demo", cases=400, seed=3)
    mail_dir = tmp_path / "demo" / "mail"
    messages = read_mail(mail_dir)
    staff = staff_of(tmp_path / "demo" / "staff.jsonl")
    by_email = {s["email"]: s for s in staff.values() if s.get("email")}
    enqueued = summary.messages_enqueued
    assert summary.status == "succeeded"
    assert enqueued.get("regievoerder", 0) > 5 and enqueued.get("teamleider", 0) >= 1
    assert summary.delivery is not None and summary.delivery.sent == sum(enqueued.values())
    assert len(messages) == sum(enqueued.values())
    recipients = [m["To"] for m in messages]
    assert len(set(recipients)) == len(recipients), "one message per recipient"
    roles = {by_email[r]["role"] for r in recipients}
    assert roles == {"regievoerder", "teamleider"}
    assert sum(by_email[r]["role"] == "teamleider" for r in recipients) == enqueued["teamleider"]
    for m in messages:
        body = m
        if by_email[str(m["To"])]["role"] == "regievoerder":  # the whole list attached
            assert m.get_content_type() == "multipart/mixed"
            body, attachment = list(m.iter_parts())
            assert attachment.get_content_type() == "text/html"
            assert attachment.get_filename().startswith("regiesignaal-volledige-lijst-")
        assert body.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in body.iter_parts()] == ["text/plain", "text/html"]
        assert m["Subject"].startswith("Regiesignaal")
        assert m["Message-ID"]


@pytest.mark.slow
def test_messages_hold_no_personal_data(tmp_path: Path) -> None:
    """Render every message of a realistic run and scan it for data that must not be there."""
    run_demo(tmp_path / "demo", cases=400, seed=11)
    staff = staff_of(tmp_path / "demo" / "staff.jsonl")
    cases = [json.loads(line) for line in (tmp_path / "demo" / "cases.jsonl").open()]
    names = {s["name"] for s in staff.values()}
    name_parts = {part for n in names for part in n.split() if len(part) > 3}
    destinations = {
        w["destination"]
        for c in cases
        for w in c.get("departure_wishes", [])
        if w.get("destination")
    }
    outcomes = {"geen_bijzonderheden", "aandachtspunt", "bma_nodig"}
    v_number = re.compile(r"\bV\s?-?\d{6,}\b")
    birth_date = re.compile(r"\b(19|20)\d\d-\d\d-\d\d\b")
    messages = read_mail(tmp_path / "demo" / "mail")
    assert messages
    by_email = {s["email"]: s for s in staff.values()}
    for m in messages:
        reader = by_email[str(m["To"])]
        # a team lead's digest may name the team's own case managers ([mail] staff_names)
        own_team = {
            part
            for s in staff.values()
            if reader["role"] == "teamleider"
            and s["role"] == "regievoerder"
            and s.get("team") == reader.get("team")
            for part in s["name"].split()
        }
        for part in m.walk():  # every leaf: text, HTML and the attached whole list
            if part.is_multipart():
                continue
            body = part.get_content()  # type: ignore[attr-defined]
            text = f"{m['Subject']}\n{body}"
            for word in (name_parts - own_team) | outcomes:
                assert not re.search(rf"\b{re.escape(word)}\b", text), (m["To"], word)
            for dest in destinations:
                assert not re.search(rf"(?<![\w/-]){re.escape(dest)}(?![\w-])", body), dest
            assert not v_number.search(text)
            assert not birth_date.search(text)


def _run_once(settings: Settings, as_of: dt.date) -> Any:
    upgrade_store(settings)
    return run(settings, RunOptions(as_of))


@pytest.mark.slow
def test_rerun_same_date_changes_nothing_and_sends_nothing(
    tmp_path: Path, dataset: tuple[Path, Path]
) -> None:
    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    load_source(source_url, *dataset)
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = make_settings(source_url, store_url, catcher.port)
        first = _run_once(settings, AS_OF)
        after_first = snapshot(store_url)
        received = catcher.messages
        second = _run_once(settings, AS_OF)
        assert catcher.messages == received, "a rerun sends nothing twice"
    assert received == sum(first.messages_enqueued.values()) > 0
    assert second.messages_enqueued == {}
    assert snapshot(store_url) == after_first
    assert second.reconcile["new"] == 0 and second.reconcile["resolved"] == 0
    # the first night of the product: every finding is a baseline, none is new
    assert first.reconcile["new"] == 0
    assert second.reconcile["still_open"] == first.reconcile["baseline"]
    assert second.signals_per_rule == first.signals_per_rule
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        statuses = [r.status for r in conn.execute(sa.select(runs).order_by(runs.c.id))]
        assert statuses == ["succeeded", "succeeded"]
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == received
    engine.dispose()


@pytest.mark.slow
def test_next_day_resolves_and_a_run_cannot_go_back(
    tmp_path: Path, dataset: tuple[Path, Path]
) -> None:
    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    load_source(source_url, *dataset)
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = make_settings(source_url, store_url, catcher.port)
        _run_once(settings, AS_OF)
        # the case managers record a medical check on every case that lacked one
        engine = sa.create_engine(source_url)
        with engine.begin() as conn:
            refs = [r[0] for r in conn.execute(sa.text("SELECT case_ref FROM cases"))]
            conn.execute(
                sa.text(
                    'INSERT INTO medical_checks (case_ref, position, "on", outcome) '
                    "VALUES (:r, 999, :d, 'geen_bijzonderheden')"
                ),
                [{"r": r, "d": AS_OF} for r in refs],
            )
        engine.dispose()
        nxt = _run_once(settings, AS_OF + dt.timedelta(days=1))
        assert nxt.signals_per_rule["MED-CHECK"] == 0
        assert nxt.reconcile["resolved"] >= 1
        with pytest.raises(RunRefused):
            run(settings, RunOptions(AS_OF))


def test_broken_rules_refuse_the_run_and_send_nothing(
    tmp_path: Path, dataset: tuple[Path, Path]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for p in RULES.glob("*.yaml"):
        (rules / p.name).write_text(p.read_text())
    (rules / "med-check.yaml").write_text(
        (rules / "med-check.yaml").read_text().replace("opened_on:", "openend_on:", 1)
    )
    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    load_source(source_url, *dataset)
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = dataclasses.replace(
            make_settings(source_url, store_url, catcher.port), rules_dir=rules
        )
        upgrade_store(settings)
        with pytest.raises(RunRefused) as info:
            run(settings, RunOptions(AS_OF))
        assert catcher.messages == 0
    assert any("med-check.yaml:" in d and "openend_on" in d for d in info.value.details)
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(runs)).one()
        assert row.status == "refused"
        assert conn.execute(sa.select(sa.func.count()).select_from(signals)).scalar() == 0
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_run_gives_the_same_signals_as_sqlite(
    tmp_path: Path, dataset: tuple[Path, Path], pg_url: str
) -> None:
    sqlite_src = f"sqlite:///{tmp_path / 'src.sqlite'}"
    sqlite_store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    load_source(sqlite_src, *dataset)
    load_source(pg_url, *dataset)
    with MailCatcher(tmp_path / "mail-sqlite") as a, MailCatcher(tmp_path / "mail-pg") as b:
        lite = _run_once(make_settings(sqlite_src, sqlite_store, a.port), AS_OF)
        pg_settings = dataclasses.replace(make_settings(pg_url, pg_url, b.port), workers=2)
        pg = _run_once(pg_settings, AS_OF)
        again = _run_once(pg_settings, AS_OF)
        assert a.messages == b.messages > 0
    assert lite.signals_per_rule == pg.signals_per_rule
    assert lite.cases == pg.cases
    assert snapshot(sqlite_store) == snapshot(pg_url)
    assert again.messages_enqueued == {} and again.reconcile["new"] == 0


@pytest.mark.slow
def test_preview_json_matches_the_python_oracle(
    tmp_path: Path, dataset: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On realistic data, durable-rules (via the CLI) and the Python evaluator agree."""
    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    load_source(source_url, *dataset)
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", source_url)
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(RULES))
    result = CliRunner().invoke(main, ["preview", "--as-of", str(AS_OF), "--format", "json"])
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.output.splitlines()]
    assert all({"case_ref", "rule", "severity"} <= set(g) for g in got)
    ruledir = load_rule_dir(RULES)
    oracle = Evaluator(compile_rules(ruledir, AS_OF), "python")
    engine = sa.create_engine(source_url)
    expected = sorted(
        (h.case_ref, h.rule_id) for b in iter_case_batches(engine, 100) for h in oracle.hits(b)
    )
    engine.dispose()
    assert sorted((g["case_ref"], g["rule"]) for g in got) == expected
    assert len({g["rule"] for g in got}) == len(ruledir.rules), "every shipped rule fires"


@pytest.mark.slow
def test_no_case_manager_mail_on_a_weekend_and_weekly_digests_on_their_day(
    tmp_path: Path, dataset: tuple[Path, Path]
) -> None:
    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    load_source(source_url, *dataset)
    saturday, monday = AS_OF + dt.timedelta(days=5), AS_OF + dt.timedelta(days=7)
    with MailCatcher(tmp_path / "mail") as catcher:
        weekly = dataclasses.replace(
            make_settings(source_url, store_url, catcher.port), digest="weekly", digest_weekday=0
        )
        upgrade_store(weekly)
        sat = run(weekly, RunOptions(saturday))
        assert sum(sat.signals_per_rule.values()) > 0, "signals are still kept on weekends"
        assert sat.messages_enqueued == {} and catcher.messages == 0
        mon = run(weekly, RunOptions(monday))
        assert mon.messages_enqueued["regievoerder"] > 0
        assert mon.messages_enqueued["teamleider"] >= 1
        digests = [m for m in read_mail(tmp_path / "mail") if "weekoverzicht" in m["Subject"]]
        assert len(digests) == mon.messages_enqueued["teamleider"]


def test_run_guards_protect_the_signal_history(tmp_path: Path, dataset: tuple[Path, Path]) -> None:
    """An empty or missing source, a far-future date, and a second concurrent run."""
    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = make_settings(source_url, store_url, catcher.port)
        upgrade_store(settings)
        with pytest.raises(RunRefused, match="bestaat niet"):
            run(settings, RunOptions(AS_OF))
        assert not (tmp_path / "src.sqlite").exists(), "the source is never created"
        load_source(source_url, *dataset)
        run(settings, RunOptions(AS_OF))
        engine = sa.create_engine(source_url)
        with engine.begin() as conn:  # a delivery with only a fraction of the cases
            conn.execute(sa.text("UPDATE cases SET status = 'closed' WHERE case_ref > 'Z-000100'"))
        engine.dispose()
        nxt = AS_OF + dt.timedelta(days=1)
        before = snapshot(store_url)
        with pytest.raises(RunRefused, match="onvolledige levering"):
            run(settings, RunOptions(nxt))
        assert snapshot(store_url) == before, "a refused run changes no signal"
        forced = run(settings, RunOptions(nxt, force=True))
        assert forced.reconcile["closed_case"] > 0
        with pytest.raises(RunRefused, match="toekomst"):
            run(settings, RunOptions(dt.date.today() + dt.timedelta(days=30)))
    store = sa.create_engine(store_url)
    with store.begin() as conn:
        conn.execute(
            runs.insert().values(
                as_of=nxt, trigger="manual", status="running",
                started_at=dt.datetime.now(dt.UTC), host="elders", pid=1,
            )
        )  # fmt: skip
        now = dt.datetime.now(dt.UTC)  # ... and holds the run lock, alive (heartbeat)
        conn.execute(
            run_lock.insert().values(
                id=1, token="t", host="elders", pid=1, acquired_at=now, heartbeat_at=now
            )
        )
    store.dispose()
    with pytest.raises(RunRefused, match="er loopt al een run"):
        run(settings, RunOptions(nxt + dt.timedelta(days=1)))


def test_a_run_left_running_by_a_dead_process_is_marked_aborted(
    tmp_path: Path, dataset: tuple[Path, Path]
) -> None:
    import socket

    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    load_source(source_url, *dataset)
    settings = make_settings(source_url, store_url, 1)
    settings = dataclasses.replace(settings, mail_enabled=False)
    upgrade_store(settings)
    store = sa.create_engine(store_url)
    with store.begin() as conn:
        conn.execute(
            runs.insert().values(
                as_of=AS_OF, trigger="manual", status="running",
                started_at=dt.datetime.now(dt.UTC), host=socket.gethostname(), pid=2**22 + 7,
            )
        )  # fmt: skip
    summary = run(settings, RunOptions(AS_OF))
    assert summary.status == "succeeded"
    with store.connect() as conn:
        statuses = [r.status for r in conn.execute(sa.select(runs).order_by(runs.c.id))]
    store.dispose()
    assert statuses == ["aborted", "succeeded"]


def test_an_unreadable_case_is_skipped_and_keeps_its_signals(
    tmp_path: Path, dataset: tuple[Path, Path]
) -> None:
    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    load_source(source_url, *dataset)
    settings = dataclasses.replace(make_settings(source_url, store_url, 1), mail_enabled=False)
    upgrade_store(settings)
    first = run(settings, RunOptions(AS_OF))
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        victim = conn.execute(sa.select(signals.c.case_ref).limit(1)).scalar_one()
        before = conn.execute(
            sa.select(signals.c.rule_id).where(signals.c.case_ref == victim)
        ).all()
    source = sa.create_engine(source_url)
    with source.begin() as conn:  # an impossible date, written behind the loader's back
        conn.execute(
            sa.text("UPDATE cases SET opened_on = '2026-13-45' WHERE case_ref = :r"), {"r": victim}
        )
    source.dispose()
    nxt = run(settings, RunOptions(AS_OF + dt.timedelta(days=1)))
    assert nxt.status == "succeeded" and nxt.cases == first.cases
    assert any(p.startswith(f"zaak {victim}: onleesbare gegevens") for p in nxt.problems)
    assert not any("2026-13-45" in p for p in nxt.problems), "the bad value is not echoed"
    with engine.connect() as conn:
        still = conn.execute(
            sa.select(signals.c.rule_id, signals.c.closed_on).where(signals.c.case_ref == victim)
        ).all()
    engine.dispose()
    assert len(still) == len(before) and all(closed is None for _, closed in still)


class _StopAfterEvaluation(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_reconcile_behind_evaluation_rolls_back_when_the_run_stops_after_it(
    tmp_path: Path, dataset: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Issue 19: reconcile runs in a thread behind evaluation, in its one transaction. A
    run that stops after evaluation (here: an error where the run checks what evaluation
    gave) leaves no signal, event or known rule behind, and the store is free at once
    for the next run, which then gives what a run always gave."""
    import regiesignaal.jobs.pipeline as pipeline
    from regiesignaal.engine.store.tables import known_rules, signal_events

    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    load_source(source_url, *dataset)
    # ranges of 50 cases: reconcile has written most of them when the run stops
    settings = dataclasses.replace(
        make_settings(source_url, store_url, 1), workers=workers, batch_size=50
    )
    upgrade_store(settings)

    def stop(point: str) -> None:
        if point == "evaluated":
            raise _StopAfterEvaluation

    monkeypatch.setattr(pipeline, "checkpoint", stop)
    with pytest.raises(_StopAfterEvaluation):
        run(settings, RunOptions(AS_OF, deliver=False))
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            for table in (signals, signal_events, known_rules, outbox):
                assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
            assert [r.status for r in conn.execute(sa.select(runs))] == ["failed"]
        monkeypatch.setattr(pipeline, "checkpoint", lambda point: None)
        again = run(settings, RunOptions(AS_OF, deliver=False))
        assert again.status == "succeeded" and again.reconcile["baseline"] > 0
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(signals)).scalar()
        assert stored == sum(again.signals_per_rule.values())
    finally:
        engine.dispose()
