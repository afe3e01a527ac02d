"""Operations: drop-folder intake, alerts to the operator, retention (issue 8)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from ops_support import AS_OF, make_settings, make_source, run_rows

from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.tables import cases as cases_table
from regiesignaal.engine.store.tables import explanations as signal_explanations
from regiesignaal.engine.store.tables import outbox, signal_events, signals
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.ops import intake, retention
from regiesignaal.jobs.ops.nightly import nightly
from regiesignaal.notifications import operator_alert as alerts

OPERATOR = "beheer@dtv.example"


def _export(drop: Path, name: str, case_file: Path, staff_file: Path) -> Path:
    folder = drop / name
    folder.mkdir(parents=True)
    shutil.copy(case_file, folder / "cases.jsonl")
    shutil.copy(staff_file, folder / "staff.jsonl")
    intake.write_manifest(folder)
    return folder


def _count(url: str, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stmt = sa.select(sa.func.count()).select_from(table)
            return int(conn.execute(stmt.where(*where) if where else stmt).scalar_one())
    finally:
        engine.dispose()


def _open_signals(url: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(
                tuple(r)
                for r in conn.execute(
                    sa.select(signals.c.case_ref, signals.c.rule_id).where(
                        signals.c.closed_on.is_(None)
                    )
                )
            )
    finally:
        engine.dispose()


def _alerts(url: str) -> list[sa.Row[tuple[object, ...]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(outbox).where(outbox.c.kind == "operator")))
    finally:
        engine.dispose()


def _break_checksum(folder: Path) -> None:
    path = folder / "cases.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))  # half an export, manifest kept


def _break_a_line(folder: Path) -> None:
    path = folder / "cases.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = '{"case_ref": "Z-BROKEN", "status": \n'
    path.write_text("".join(lines))
    intake.write_manifest(folder)  # the checksum matches: the content is what is wrong


@pytest.mark.parametrize("damage", [_break_checksum, _break_a_line])
def test_a_broken_export_changes_nothing_and_alerts(tmp_path: Path, damage: object) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    _, case_file, staff_file = make_source(gen, cases=150)
    drop = tmp_path / "drop"
    source_url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, drop_dir=drop, operators=(OPERATOR,))
    _export(drop, "2026-03-02T0300", case_file, staff_file)
    first = nightly(settings, trigger="manual", as_of=AS_OF)
    assert (first.status, first.exit_code) == ("succeeded", 0), first.messages
    assert (drop / "archive" / "2026-03-02T0300").is_dir()
    n_cases = _count(source_url, cases_table)
    assert n_cases == 150
    before = _open_signals(store_url)
    assert before

    broken = _export(drop, "2026-03-03T0300", case_file, staff_file)
    damage(broken)  # type: ignore[operator]
    second = nightly(settings, trigger="manual", as_of=AS_OF + dt.timedelta(days=1))
    assert (second.status, second.exit_code) == ("refused", 1)
    assert _count(source_url, cases_table) == n_cases, "yesterday's data stays"
    assert _open_signals(store_url) == before, "no signal closed"
    assert (drop / "refused" / "2026-03-03T0300").is_dir()
    assert run_rows(store_url)[-1].status == "refused"
    (alert,) = _alerts(store_url)
    assert alert.recipient_email == OPERATOR and "levering" in alert.subject
    assert "Z-BROKEN" not in alert.body_text and "Z-" not in alert.body_text

    again = _export(drop, "2026-03-03T0400", case_file, staff_file)
    damage(again)  # type: ignore[operator]
    nightly(settings, trigger="manual", as_of=AS_OF + dt.timedelta(days=1))
    assert len(_alerts(store_url)) == 1, "at most one alert per subject per day"


def test_an_export_still_arriving_is_left_alone(tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    _, case_file, staff_file = make_source(gen, cases=30)
    drop = tmp_path / "drop"
    complete = _export(drop, "2026-03-01T0300", case_file, staff_file)
    arriving = drop / "2026-03-02T0300"
    arriving.mkdir()
    shutil.copy(case_file, arriving / "cases.jsonl")  # no manifest yet
    assert intake.complete_exports(drop) == [complete]


def test_rules_that_do_not_check_refuse_and_alert_once_a_day(tmp_path: Path) -> None:
    source_url, _, _ = make_source(tmp_path, cases=60)
    rules = tmp_path / "rules"
    shutil.copytree(make_settings(source_url, "sqlite://").rules_dir, rules)
    (rules / "med-check.yaml").write_text("id: [kapot\n")
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, rules_dir=rules, operators=(OPERATOR,))
    result = nightly(settings, trigger="manual", as_of=AS_OF)
    assert (result.status, result.exit_code) == ("refused", 1)
    (alert,) = _alerts(store_url)  # one alert for one cause, naming the refused run
    assert "regels" in str(alert.subject) and alert.run_id == result.run_id
    nightly(settings, trigger="manual", as_of=AS_OF)
    assert len(_alerts(store_url)) == 1


def test_undelivered_mail_past_the_threshold_alerts(tmp_path: Path) -> None:
    source_url, _, _ = make_source(tmp_path, cases=60)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, operators=(OPERATOR,))
    summary = nightly(settings, trigger="manual", as_of=AS_OF)  # mail off: stays pending
    assert summary.status == "succeeded"
    engine = sa.create_engine(store_url)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=settings.alert_undelivered_hours + 1)
    assert alerts.check_undelivered(engine, settings, now=dt.datetime.now(dt.UTC)) == 0
    assert alerts.check_undelivered(engine, settings, now=later) > 0
    engine.dispose()
    assert any("niet afgeleverd" in str(a.subject) for a in _alerts(store_url))


def test_purge_by_retention(tmp_path: Path, db_url: str) -> None:
    source_url, _, _ = make_source(tmp_path, cases=60)
    settings = make_settings(source_url, db_url, drop_dir=tmp_path / "drop")
    settings = dataclasses.replace(settings, retention_body_days=30, retention_signal_days=100)
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    old = now - dt.timedelta(days=31)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        for i, status in enumerate(("sent", "failed", "pending")):
            conn.execute(
                outbox.insert().values(
                    run_id=1, as_of=dt.date(2026, 4, 1), kind="regievoerder",
                    recipient_id=f"rv{i}", recipient_email=f"rv{i}@dtv.example",
                    subject="s", body_text="lijst", body_html="<p>lijst</p>",
                    message_id=f"<m{i}@x>", status=status, attempts=1, created_at=old,
                )
            )  # fmt: skip
        rows = [
            ("Z-1", "R1", dt.date(2026, 1, 1), "case_closed"),  # closed long ago: goes
            ("Z-1", "R2", dt.date(2025, 12, 1), "resolved"),  # same case: goes too
            ("Z-2", "R1", dt.date(2026, 5, 20), "case_closed"),  # recent: stays
            ("Z-3", "R1", dt.date(2026, 1, 1), "resolved"),  # case still open: stays
            ("Z-3", "R2", None, None),
        ]
        for ref, rule, closed, reason in rows:
            conn.execute(
                signals.insert().values(
                    case_ref=ref, rule_id=rule, severity="hoog", opened_on=dt.date(2025, 11, 1),
                    last_seen_on=closed or dt.date(2026, 6, 1), closed_on=closed,
                    close_reason=reason,
                )
            )  # fmt: skip
        ids = conn.execute(sa.select(signals.c.id, signals.c.case_ref, signals.c.rule_id)).all()
        for sid, ref, rule in ids:
            conn.execute(
                signal_events.insert().values(
                    signal_id=sid, case_ref=ref, rule_id=rule, kind="opened",
                    as_of=dt.date(2025, 11, 1), created_at=old,
                )
            )  # fmt: skip
        for ref in ("Z-1", "Z-3"):
            conn.execute(
                signal_explanations.insert().values(
                    case_ref=ref, rule_id="R1", until=dt.date(2026, 1, 1), reason="vrije tekst",
                    created_by="rv-1", created_at=old,
                )
            )  # fmt: skip
    archive = tmp_path / "drop" / "archive"
    (archive / "2026-01-01T0300").mkdir(parents=True)
    os.utime(archive / "2026-01-01T0300", (0, 0))
    (archive / "2026-05-31T0300").mkdir()

    dry = retention.purge(settings, engine, now=now, dry_run=True)
    assert (dry.message_bodies, dry.signals, dry.signal_events, dry.explanations) == (2, 2, 2, 1)
    assert _count(db_url, signals) == 5, "a dry run changes nothing"
    done = retention.purge(settings, engine, now=now)
    assert (done.message_bodies, done.signals, done.signal_events, done.exports) == (2, 2, 2, 1)
    with engine.connect() as conn:
        left = {r.recipient_id: (r.status, r.body_text) for r in conn.execute(sa.select(outbox))}
        refs = sorted(r.case_ref for r in conn.execute(sa.select(signals)))
        events = conn.execute(sa.select(sa.func.count()).select_from(signal_events)).scalar_one()
        kept = [r.case_ref for r in conn.execute(sa.select(signal_explanations))]
    engine.dispose()
    assert left == {"rv0": ("sent", ""), "rv1": ("failed", ""), "rv2": ("pending", "lijst")}
    assert refs == ["Z-2", "Z-3", "Z-3"] and events == 3
    assert kept == ["Z-3"], "a purged case's command-line explanations go with it"
    assert [p.name for p in archive.iterdir()] == ["2026-05-31T0300"]


def test_purge_command_dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source_url, _, _ = make_source(tmp_path, cases=30)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    make_settings(source_url, store_url)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", store_url)
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Zou opruimen: 0 berichtteksten" in result.output


def test_init_creates_a_site_folder_that_checks(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = CliRunner().invoke(main, ["init", str(site)])
    assert result.exit_code == 0, result.output
    config = site / "regiesignaal.toml"
    assert (site / "rules" / "contact-30d.yaml").is_file()
    unit = (site / "regiesignaal-scheduler.service").read_text()
    assert f"REGIESIGNAAL_CONFIG={config}" in unit and "scheduler" in unit
    assert "KillSignal=SIGTERM" in unit
    assert (site / "regiesignaal.env").stat().st_mode & 0o077 == 0
    checked = CliRunner().invoke(main, ["--config", str(config), "rules", "check"])
    shipped = len(load_rule_dir(Path(__file__).resolve().parent.parent / "rules").rules)
    assert checked.exit_code == 0 and f"{shipped} regels" in checked.output
    from regiesignaal.jobs.config import load_settings

    assert load_settings(config, env={}).rules_dir == site / "rules"
    again = CliRunner().invoke(main, ["init", str(site)])
    assert again.exit_code == 1 and "niet leeg" in again.output


def test_init_writes_the_schemas_the_copied_rule_files_point_at(tmp_path: Path) -> None:
    """Editor support on a server install (issue 15): every ``$schema`` comment of the
    copied rules resolves to a file ``init`` wrote, and ``rules schema`` keeps it current."""
    import re

    site = tmp_path / "site"
    assert CliRunner().invoke(main, ["init", str(site)]).exit_code == 0
    targets = set()
    for rule_file in (site / "rules").glob("*.yaml"):
        first = rule_file.read_text(encoding="utf-8").splitlines()[0]
        match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        if rule_file.name == "priority.yaml":  # the priority factors have no schema
            continue
        assert match, rule_file.name
        target = (rule_file.parent / match.group(1)).resolve()
        assert target.is_file(), f"{rule_file.name} points at {target}"
        targets.add(target)
    assert {t.name for t in targets} == {"rule.schema.json", "derived.schema.json"}
    config = ["--config", str(site / "regiesignaal.toml")]
    checked = CliRunner().invoke(main, [*config, "rules", "schema", "--check"])
    assert checked.exit_code == 0, checked.output
    with (site / "rules" / "derived.yaml").open("a", encoding="utf-8") as f:
        f.write("\ncontact_count:\n  description: Aantal contacten\n  count: contacts\n")
    stale = CliRunner().invoke(main, [*config, "rules", "schema", "--check"])
    assert stale.exit_code == 1 and "rule.schema.json: verouderd" in stale.output
    written = CliRunner().invoke(main, [*config, "rules", "schema"])
    assert written.exit_code == 0 and "bijgewerkt" in written.output
    assert "contact_count" in (site / "schema" / "rule.schema.json").read_text(encoding="utf-8")
    assert CliRunner().invoke(main, [*config, "rules", "schema", "--check"]).exit_code == 0


def test_the_product_never_writes_inside_an_installation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from regiesignaal.engine.language import packaged

    installed = tmp_path / "site-packages" / "regiesignaal"
    (installed / "schema").mkdir(parents=True)
    monkeypatch.setattr(packaged, "PRODUCT_ROOT", installed)
    assert packaged.inside_installed_product(installed / "schema")
    assert not packaged.inside_installed_product(tmp_path / "site" / "schema")
    (installed / "pyproject.toml").write_text("")  # a checkout may be written
    assert not packaged.inside_installed_product(installed / "schema")


def test_json_log_lines_hold_ids_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    from regiesignaal.jobs.cli.logs import JsonFormatter

    record = logging.LogRecord("regiesignaal.run", logging.INFO, __file__, 1, "run %d %s",
                               (12, "succeeded"), None)  # fmt: skip
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["event"] == "run 12 succeeded" and data["level"] == "INFO"
    assert data["logger"] == "regiesignaal.run" and data["ts"].endswith("+00:00")


def test_the_next_steps_after_the_demo_work_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README quick start: after the demo, runs and preview --diff read the demo's store;
    the demo honours REGIESIGNAAL_RULES_DIR; runs never creates an empty store."""
    from ops_support import RULES

    from regiesignaal.engine.language.rulefile.folder import load_rule_dir

    for name in list(os.environ):
        if name.startswith("REGIESIGNAAL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "mijn-regels"
    shutil.copytree(RULES, rules)
    (rules / "wish-unexplored.yaml").unlink()
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(rules))
    demo = CliRunner().invoke(main, ["demo", "--cases", "120", "--dir", "var/demo"])
    assert demo.exit_code == 0, demo.output
    assert "export REGIESIGNAAL_CONFIG=" in demo.output
    assert load_rule_dir(rules).version in demo.output, "the demo ran the configured rules"
    monkeypatch.delenv("REGIESIGNAAL_RULES_DIR")

    nothing = CliRunner().invoke(main, ["runs"])
    assert nothing.exit_code == 1 and "nog geen store" in nothing.output
    assert not (tmp_path / "var" / "store.sqlite").exists(), "runs created no store"

    monkeypatch.setenv("REGIESIGNAAL_CONFIG", "var/demo/regiesignaal.toml")
    listed = CliRunner().invoke(main, ["runs", "--format", "json"])
    assert listed.exit_code == 0 and '"succeeded"' in listed.output
    diff = CliRunner().invoke(main, ["preview", "--diff"])
    assert diff.exit_code == 0, diff.output
    assert "Zonder --rules wordt niets vergeleken" in diff.output, "the same rules: nothing"
    shown = CliRunner().invoke(main, ["runs", "show", "1"])
    assert shown.exit_code == 0
    for label in ("peildatum", "aanleiding", "host", "begin", "eind", "duur per stap",
                  "aantallen", "regels (versie)", "problemen"):  # fmt: skip
        assert label in shown.output
    missing = CliRunner().invoke(main, ["rules", "fields", str(tmp_path / "nergens")])
    assert missing.exit_code == 1 and "bestaat niet" in missing.output


def test_progress_is_quiet_off_a_terminal_and_follows_the_stages() -> None:
    import io

    from rich.console import Console

    from regiesignaal.jobs import pipeline
    from regiesignaal.jobs.cli.progress import busy

    quiet = io.StringIO()
    with busy("Run", Console(file=quiet, force_terminal=False)):
        assert pipeline.stage_listeners == []
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    with busy("Run", Console(file=shown, force_terminal=True)):
        (listener,) = pipeline.stage_listeners
        listener("reconcile")
    assert pipeline.stage_listeners == []


def test_an_alert_reaches_the_operator_over_smtp_without_case_contents(tmp_path: Path) -> None:
    import email
    from email import policy

    from regiesignaal.notifications.delivery.mailserver import MailCatcher

    source_url, _, _ = make_source(tmp_path, cases=60)
    rules = tmp_path / "rules"
    from ops_support import RULES

    shutil.copytree(RULES, rules)
    (rules / "med-check.yaml").write_text("id: [kapot\n")
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = make_settings(
            source_url, store_url, catcher.port, rules_dir=rules, operators=(OPERATOR,),
            mail_enabled=True,
        )  # fmt: skip
        nightly(settings, trigger="manual", as_of=AS_OF)
    received = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted((tmp_path / "mail").glob("*.eml"))
    ]
    assert len(received) == 1 and {m["To"] for m in received} == {OPERATOR}
    for message in received:
        body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert "MED-CHECK" not in body and "Z-" not in body
        assert message["Subject"].startswith("[regiesignaal]")


def test_new_settings_from_file_and_environment(tmp_path: Path) -> None:
    from regiesignaal.jobs.config import ConfigError, load_settings

    path = tmp_path / "regiesignaal.toml"
    path.write_text(
        '[run]\nschedule = "05:30:15"\n[scheduler]\ndays = "mon-sat"\n'
        'misfire_grace_minutes = 90\n[alerts]\noperators = ["a@dtv.example", "b@dtv.example"]\n'
        '[retention]\nmessage_body_days = 7\n[intake]\ndrop_dir = "drop"\n'
        '[logging]\nformat = "json"\n'
    )
    s = load_settings(path, env={})
    assert s.schedule_time == dt.time(5, 30, 15) and s.schedule_days == "mon-sat"
    assert s.misfire_grace_minutes == 90 and s.operators == ("a@dtv.example", "b@dtv.example")
    assert s.retention_body_days == 7 and s.drop_dir == tmp_path / "drop"
    assert s.log_format == "json"
    env = load_settings(path, env={"REGIESIGNAAL_OPERATORS": "c@dtv.example"})
    assert env.operators == ("c@dtv.example",)
    for bad in ('[scheduler]\ndays = "weekdays"\n', '[alerts]\noperators = ["Naam <x@y.nl>"]\n',
                '[logging]\nformat = "xml"\n'):  # fmt: skip
        path.write_text(bad)
        with pytest.raises(ConfigError):
            load_settings(path, env={})


@pytest.mark.slow
def test_a_night_missed_beyond_the_grace_time_is_alerted_not_run(tmp_path: Path) -> None:
    import signal as sig
    import subprocess
    import sys
    import time

    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from regiesignaal.jobs.config import load_settings
    from regiesignaal.jobs.ops.scheduler import JOB_ID, make_trigger

    source_url, _, _ = make_source(tmp_path, cases=30)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    config = tmp_path / "regiesignaal.toml"
    config.write_text(
        f'[database]\nsource_url = "{source_url}"\nstore_url = "{store_url}"\n'
        "[scheduler]\nmisfire_grace_minutes = 1\n"
        f'[alerts]\noperators = ["{OPERATOR}"]\n[mail]\nenabled = false\n'
    )
    settings = load_settings(config, env={})
    make_settings(source_url, store_url)  # migrates the store
    engine = sa.create_engine(store_url)
    never_started = BackgroundScheduler(timezone=settings.tz)
    jobstore = SQLAlchemyJobStore(engine=engine)
    jobstore.start(never_started, "default")
    jobstore.add_job(
        Job(
            never_started, id=JOB_ID, func="regiesignaal.jobs.ops.scheduler:nightly_job",
            trigger=make_trigger(settings), args=[str(config)], kwargs={},
            name="regiesignaal nightly", misfire_grace_time=60, coalesce=True,
            max_instances=1, executor="default",
            next_run_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
        )
    )  # fmt: skip
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIESIGNAAL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "regiesignaal", "--config", str(config), "scheduler"],
        cwd=Path(__file__).resolve().parents[1], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not _alerts(store_url):
            assert time.monotonic() < deadline, "no alert"
            time.sleep(0.2)
    finally:
        proc.send_signal(sig.SIGTERM)
        assert proc.wait(timeout=60) == 0
    (alert,) = _alerts(store_url)
    assert "niet gedraaid" in alert.subject
    rows = [r for r in run_rows(store_url) if r.trigger == "scheduler"]
    assert [r.status for r in rows] == ["missed"], "not run; recorded missed once (issue 17)"
