"""The health surface (issue 17): ``regiesignaal status`` and the metrics file.

Real stores (SQLite and PostgreSQL) in each state, rows written as the product writes
them; the command through a real process; the metrics file read by a strict parser of
the Prometheus text exposition format.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from ops_support import AS_OF, make_settings, make_source

from regiesignaal.engine.store.heartbeat import beat
from regiesignaal.engine.store.tables import outbox, runs, signals
from regiesignaal.jobs.config import Settings, load_settings
from regiesignaal.jobs.ops import health
from regiesignaal.jobs.ops.health import CRITICAL, OK, UNKNOWN, WARNING
from regiesignaal.jobs.pipeline import upgrade_store

AMS = ZoneInfo("Europe/Amsterdam")
# Wednesday 4 March 2026, 10:00 in Amsterdam: the 06:00 night of that day is due
NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=AMS).astimezone(dt.UTC)
WEEKDAYS = [dt.date(2026, 2, 23) + dt.timedelta(days=i) for i in range(10)]
WEEKDAYS = [d for d in WEEKDAYS if d.weekday() < 5]  # 23 Feb .. 4 Mar, Mon-Fri


def _settings(store_url: str, **changes: object) -> Settings:
    settings = dataclasses.replace(load_settings(env={}), store_url=store_url)
    settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
    upgrade_store(settings)
    return settings


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _add_run(
    url: str, as_of: dt.date, status: str = "succeeded", started: dt.datetime | None = None
) -> int:
    started = started or dt.datetime.combine(as_of, dt.time(6, 0), AMS).astimezone(dt.UTC)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    runs.insert().values(
                        as_of=as_of, trigger="scheduler", status=status, started_at=started,
                        finished_at=started + dt.timedelta(minutes=3),
                        durations={"extract_evaluate": 100.5, "reconcile": 20, "compose": 9.25},
                        counts={"cases": 10},
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )  # fmt: skip
    finally:
        engine.dispose()


def _add_mail(url: str, status: str, created: dt.datetime, n: int = 1) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            for i in range(n):
                key = f"{status}-{created.timestamp()}-{i}"
                conn.execute(
                    outbox.insert().values(
                        run_id=1, as_of=created.date(), kind="regievoerder", recipient_id=key,
                        recipient_email="rv@dtv.example", subject="s", body_text="t",
                        body_html="h", message_id=f"<{key}@x>", status=status,
                        created_at=created,
                    )
                )  # fmt: skip
    finally:
        engine.dispose()


def _beat(url: str, at: dt.datetime) -> None:
    engine = _engine(url)
    try:
        beat(engine, started_at=at - dt.timedelta(days=1), now=at)
    finally:
        engine.dispose()


def _healthy(url: str) -> Settings:
    """A store where every night ran, no mail waits and the scheduler beat a minute ago."""
    settings = _settings(url)
    for day in WEEKDAYS:
        _add_run(url, day)
    _beat(url, NOW - dt.timedelta(minutes=1))
    return settings


def test_a_healthy_installation_is_ok(db_url: str) -> None:
    settings = _healthy(db_url)
    result = health.status(settings, NOW)
    assert result.code == OK, result.line()
    assert result.line().startswith("REGIESIGNAAL OK - laatste geslaagde nacht 2026-03-04")
    assert "hartslag 1 min geleden" in result.line()
    assert result.as_json()["night"]["data"]["due_as_of"] == "2026-03-04"


def test_the_due_night_without_success_is_critical(db_url: str) -> None:
    settings = _settings(db_url)
    for day in WEEKDAYS[:-1]:  # Wednesday's night is missing
        _add_run(db_url, day)
    _add_run(db_url, WEEKDAYS[-1], status="failed")
    _beat(db_url, NOW - dt.timedelta(minutes=1))
    result = health.status(settings, NOW)
    assert result.code == CRITICAL
    assert "nacht 2026-03-04 (gepland 06:00) niet geslaagd" in result.line()
    assert "laatste geslaagde nacht 2026-03-03" in result.line()
    # before the night is late it is not yet missing
    early = dt.datetime(2026, 3, 4, 7, 0, tzinfo=AMS)
    assert health.status(settings, early).code == OK


def test_a_night_still_running_past_its_time_is_critical_and_says_so(db_url: str) -> None:
    settings = _settings(db_url)
    for day in WEEKDAYS[:-1]:
        _add_run(db_url, day)
    run_id = _add_run(db_url, WEEKDAYS[-1], status="running")
    _beat(db_url, NOW)
    result = health.status(settings, NOW)
    assert result.code == CRITICAL and f"loopt nog (run {run_id})" in result.line()


def test_an_earlier_missed_night_is_a_warning_until_it_is_run(db_url: str) -> None:
    settings = _settings(db_url)
    for day in WEEKDAYS:
        if day != dt.date(2026, 3, 2):
            _add_run(db_url, day)
    _beat(db_url, NOW)
    result = health.status(settings, NOW)
    assert result.code == WARNING
    assert "1 eerdere nacht(en) niet geslaagd (oudste 2026-03-02" in result.line()
    assert "nachten_gemist=1" in result.line()
    _add_run(db_url, dt.date(2026, 3, 2), started=NOW)  # run by hand later
    assert health.status(settings, NOW).code == OK


def test_nights_before_the_first_run_do_not_count_and_an_empty_store_warns(db_url: str) -> None:
    settings = _settings(db_url)
    _beat(db_url, NOW)
    empty = health.status(settings, NOW)
    assert empty.code == WARNING and "nog geen enkele run" in empty.line()
    _add_run(db_url, dt.date(2026, 3, 4))  # a new installation: its first night
    assert health.status(settings, NOW).code == OK


def test_the_schedule_and_days_decide_which_night_was_due(db_url: str) -> None:
    # Saturday 7 March 10:00: with mon-fri Friday's night is the one due; with mon-sat
    # Saturday's, which did not run
    settings = _healthy(db_url)
    _add_run(db_url, dt.date(2026, 3, 5))
    _add_run(db_url, dt.date(2026, 3, 6))
    saturday = dt.datetime(2026, 3, 7, 10, 0, tzinfo=AMS)
    _beat(db_url, saturday)
    assert health.status(settings, saturday).code == OK
    six_days = dataclasses.replace(settings, schedule_days="mon-sat")
    assert health.status(six_days, saturday).code == CRITICAL
    late = dataclasses.replace(settings, schedule="11:30", schedule_days="mon-sat")
    result = health.status(late, saturday)  # Saturday 7 March 11:30 is not due yet; the
    assert result.code == WARNING  # Saturday before, 28 February, did not run either
    assert "oudste 2026-02-28" in result.line() and "2026-03-07" not in result.line()


def test_the_due_night_across_the_spring_clock_change(tmp_path: Path) -> None:
    # Sunday 29 March 2026 the clocks go forward; a 02:30 schedule every day fires at
    # 03:30 summer time that day. At 09:00 that Sunday its night is due.
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = _settings(url, schedule="02:30", schedule_days="mon-sun")
    for offset in range(3):
        _add_run(url, dt.date(2026, 3, 26) + dt.timedelta(days=offset))
    sunday = dt.datetime(2026, 3, 29, 9, 0, tzinfo=AMS)
    _beat(url, sunday)
    result = health.status(settings, sunday)
    assert result.code == CRITICAL and "nacht 2026-03-29 (gepland 03:30)" in result.line()
    _add_run(url, dt.date(2026, 3, 29))
    assert health.status(settings, sunday).code == OK


@pytest.mark.parametrize(
    ("status", "age", "code", "phrase"),
    [
        ("failed", dt.timedelta(minutes=5), CRITICAL, "1 mislukt"),
        ("uncertain", dt.timedelta(minutes=5), WARNING, "1 mogelijk aangekomen"),
        ("pending", dt.timedelta(minutes=90), WARNING, "1 wacht langer dan 60 min"),
        ("transmitting", dt.timedelta(minutes=90), WARNING, "1 wacht langer dan 60 min"),
        ("pending", dt.timedelta(hours=7), CRITICAL, "1 wacht langer dan 60 min"),
        ("pending", dt.timedelta(minutes=10), OK, "mail: alles afgeleverd"),
        ("sent", dt.timedelta(hours=7), OK, "mail: alles afgeleverd"),
        ("superseded", dt.timedelta(hours=7), OK, "mail: alles afgeleverd"),
        ("failed", dt.timedelta(days=8), OK, "mail: alles afgeleverd"),  # past mail_days
    ],
)
def test_undelivered_mail(
    db_url: str, status: str, age: dt.timedelta, code: int, phrase: str
) -> None:
    settings = _healthy(db_url)
    _add_mail(db_url, status, NOW - age)
    result = health.status(settings, NOW)
    assert result.code == code, result.line()
    assert phrase in result.line()


def test_the_scheduler_heartbeat(db_url: str) -> None:
    settings = _healthy(db_url)
    _beat(db_url, NOW - dt.timedelta(minutes=7))
    assert health.status(settings, NOW).code == WARNING
    _beat(db_url, NOW - dt.timedelta(minutes=20))
    stale = health.status(settings, NOW)
    assert stale.code == CRITICAL and "hartslag 20 min geleden" in stale.line()
    off = dataclasses.replace(settings, status_heartbeat_warning_minutes=0)
    assert health.status(off, NOW).code == OK and "hartslag" not in health.status(off, NOW).line()


def test_no_heartbeat_ever_is_critical(db_url: str) -> None:
    settings = _settings(db_url)
    for day in WEEKDAYS:
        _add_run(db_url, day)
    result = health.status(settings, NOW)
    assert result.code == CRITICAL and "nog nooit een hartslag" in result.line()


def test_a_store_that_cannot_be_read_is_unknown(tmp_path: Path, pg_url: str) -> None:
    missing = dataclasses.replace(
        load_settings(env={}), store_url=f"sqlite:///{tmp_path / 'nope.sqlite'}"
    )
    result = health.status(missing, NOW)
    assert result.code == UNKNOWN and "geen store" in result.line()
    assert not (tmp_path / "nope.sqlite").exists()  # never created by looking
    unmigrated = dataclasses.replace(missing, store_url=pg_url)
    assert health.status(unmigrated, NOW).code == UNKNOWN
    down = dataclasses.replace(
        missing, store_url="postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    )
    result = health.status(down, NOW)
    assert result.code == UNKNOWN and "niet te lezen (OperationalError)" in result.line()


def test_the_scheduler_writes_its_heartbeat(tmp_path: Path) -> None:
    import threading

    from regiesignaal.engine.store.heartbeat import last_beat
    from regiesignaal.jobs.ops.scheduler import serve

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = _settings(url)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(settings, None, stop))
    # serve installs signal handlers: only allowed in the main thread, so patch them out
    import signal

    original = signal.signal
    signal.signal = lambda *a: None  # type: ignore[assignment]
    try:
        thread.start()
        engine = _engine(url)
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
        seen = None
        while seen is None and dt.datetime.now(dt.UTC) < deadline:
            with engine.connect() as conn:
                seen = last_beat(conn)
            stop.wait(0.2)
        engine.dispose()
    finally:
        stop.set()
        thread.join(timeout=30)
        signal.signal = original  # type: ignore[assignment]
    assert seen is not None and abs((dt.datetime.now(dt.UTC) - seen).total_seconds()) < 30


# ------------------------------------------------------------------ the command


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGIESIGNAAL_")}
    return subprocess.run(
        [sys.executable, "-m", "regiesignaal", "--config", str(config), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_status_through_the_real_command_in_each_state(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    config = tmp_path / "regiesignaal.toml"
    config.write_text(
        f'[database]\nstore_url = "sqlite:///{store}"\n'
        '[scheduler]\ndays = "mon-sun"\n[status]\nheartbeat_warning_minutes = 5\n'
    )
    unknown = _cli(config, "status")
    assert unknown.returncode == 3 and unknown.stdout.startswith("REGIESIGNAAL UNKNOWN - ")
    assert "Traceback" not in unknown.stderr

    url = f"sqlite:///{store}"
    settings = _settings(url)
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(AMS).date()
    for offset in range(10):
        _add_run(url, today - dt.timedelta(days=offset), started=now - dt.timedelta(days=11))
    _beat(url, now)
    ok = _cli(config, "status")
    assert (ok.returncode, ok.stdout.count("\n")) == (0, 1), ok.stdout + ok.stderr
    assert ok.stdout.startswith("REGIESIGNAAL OK - ")

    _add_mail(url, "uncertain", now)
    warning = _cli(config, "status", "--format", "json")
    assert warning.returncode == 1
    data = json.loads(warning.stdout)
    assert data["status"] == "WARNING" and data["mail"]["data"]["uncertain"] == 1

    _add_mail(url, "failed", now)
    assert _cli(config, "status").returncode == 2

    config.write_text("[status]\nheartbeat_warning_minutes = -1\n")
    broken = _cli(config, "status")
    assert broken.returncode == 3 and "configuratie niet te lezen" in broken.stdout
    del settings


# ------------------------------------------------------------------ metrics

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? (\S+)$")


def parse_exposition(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """A strict reader of the Prometheus text format (0.0.4) for the metrics we write:
    every sample after its own HELP and TYPE, no family twice, no sample twice, values
    that are numbers, a final line break."""
    assert text.endswith("\n") and "\r" not in text
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    current = None
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        assert line, f"line {number}: empty"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name) and name not in helped, f"line {number}"
            helped.add(name)
            current = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and name not in typed, f"line {number}"
            assert kind in ("gauge", "counter", "untyped"), f"line {number}"
            typed[name] = kind
            families[name] = {}
            continue
        assert not line.startswith("#"), f"line {number}: stray comment"
        match = _SAMPLE.match(line)
        assert match, f"line {number}: not a sample: {line!r}"
        name, labels, value = match.groups()
        assert name == current and name in typed, f"line {number}: sample outside its family"
        pairs = tuple(
            (k, v)
            for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or "")
        )
        assert pairs not in families[name], f"line {number}: duplicate sample"
        number_value = float(value)
        assert not math.isnan(number_value)
        families[name][pairs] = number_value
    return families


def test_the_metrics_file_parses_and_holds_the_figures(db_url: str, tmp_path: Path) -> None:
    settings = _healthy(db_url)
    engine = _engine(db_url)
    with engine.begin() as conn:
        for severity, n in (("high", 2), ("critical", 1)):
            for i in range(n):
                conn.execute(
                    signals.insert().values(
                        case_ref=f"Z-{severity}-{i}", rule_id="R", severity=severity,
                        opened_on=AS_OF, last_seen_on=AS_OF,
                    )
                )  # fmt: skip
        conn.execute(
            signals.insert().values(
                case_ref="Z-closed", rule_id="R", severity="low", opened_on=AS_OF,
                last_seen_on=AS_OF, closed_on=AS_OF,
            )
        )  # fmt: skip
    _add_mail(db_url, "sent", NOW, n=3)
    _add_mail(db_url, "failed", NOW)
    out = tmp_path / "textfile"
    out.mkdir()
    written = health.write_metrics(settings, engine, out, NOW)
    engine.dispose()
    assert written == out / "regiesignaal.prom"
    assert [p.name for p in out.iterdir()] == ["regiesignaal.prom"]  # no temporary left
    metrics = parse_exposition(written.read_text())
    assert metrics["regiesignaal_status"][()] == CRITICAL  # the failed message
    finished = dt.datetime.combine(WEEKDAYS[-1], dt.time(6, 3), AMS).timestamp()
    assert metrics["regiesignaal_last_success_timestamp_seconds"][()] == finished
    stages = metrics["regiesignaal_stage_duration_seconds"]
    assert stages[(("stage", "extract_evaluate"),)] == 100.5
    assert stages[(("stage", "compose"),)] == 9.25
    open_ = metrics["regiesignaal_signals_open"]
    assert open_[(("severity", "high"),)] == 2 and open_[(("severity", "critical"),)] == 1
    assert open_[(("severity", "low"),)] == 0
    box = metrics["regiesignaal_outbox_messages"]
    assert box[(("status", "sent"),)] == 3 and box[(("status", "failed"),)] == 1
    assert box[(("status", "uncertain"),)] == 0
    assert metrics["regiesignaal_nights_missed"][()] == 0
    assert (
        metrics["regiesignaal_scheduler_heartbeat_timestamp_seconds"][()]
        == (NOW - dt.timedelta(minutes=1)).timestamp()
    )


def test_the_metrics_count_missed_nights(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = _settings(url)
    for day in WEEKDAYS:
        if day not in (dt.date(2026, 2, 27), dt.date(2026, 3, 3)):
            _add_run(url, day)
    engine = _engine(url)
    try:
        metrics = parse_exposition(health.metrics_text(settings, engine, NOW))
    finally:
        engine.dispose()
    assert metrics["regiesignaal_nights_missed"][()] == 2
    assert "regiesignaal_scheduler_heartbeat_timestamp_seconds" not in metrics


def test_the_parser_is_strict() -> None:
    good = '# HELP a x\n# TYPE a gauge\na{s="q\\"x"} 1\n'
    assert parse_exposition(good) == {"a": {(("s", 'q\\"x'),): 1.0}}
    for bad in (
        "# HELP a x\n# TYPE a gauge\na 1",  # no final newline
        "a 1\n",  # no HELP/TYPE
        '# HELP a x\n# TYPE a gauge\na{s="1"} 1\na{s="1"} 2\n',  # duplicate
        "# HELP a x\n# TYPE a gauge\na one\n",  # not a number
        "# HELP a x\n# TYPE a gauge\na{s=1} 1\n",  # unquoted label
    ):
        with pytest.raises((AssertionError, ValueError)):
            parse_exposition(bad)


def test_metrics_command_and_after_every_night(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from regiesignaal.jobs.cli import main
    from regiesignaal.jobs.ops.nightly import nightly

    source_url, _, _ = make_source(tmp_path, cases=40)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    settings = make_settings(source_url, store_url, metrics_dir=textfile)
    result = nightly(settings, trigger="manual", as_of=AS_OF)
    assert result.status == "succeeded"
    metrics = parse_exposition((textfile / "regiesignaal.prom").read_text())
    assert metrics["regiesignaal_last_success_timestamp_seconds"][()] > 0
    assert set(dict(k)["stage"] for k in metrics["regiesignaal_stage_duration_seconds"]) >= {
        "extract_evaluate", "reconcile", "compose",
    }  # fmt: skip
    assert sum(metrics["regiesignaal_signals_open"].values()) > 0

    config = tmp_path / "regiesignaal.toml"
    config.write_text(f'[database]\nstore_url = "{store_url}"\nsource_url = "{source_url}"\n')
    out = tmp_path / "by-hand"
    out.mkdir()
    runner = CliRunner()
    done = runner.invoke(main, ["--config", str(config), "metrics", "--out", str(out)])
    assert done.exit_code == 0, done.output
    parse_exposition((out / "regiesignaal.prom").read_text())
    nowhere = runner.invoke(main, ["--config", str(config), "metrics"])
    assert nowhere.exit_code == 1 and "--out" in nowhere.output
    missing = runner.invoke(
        main, ["--config", str(config), "metrics", "--out", str(tmp_path / "nope")]
    )
    assert missing.exit_code == 1 and "bestaat niet" in missing.output
    assert "Traceback" not in missing.output
