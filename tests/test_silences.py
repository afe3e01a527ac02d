"""Issue 18, silences: a rule silenced for a team, a location or the whole service until a
date. Silenced signals keep their episode and history, are in no mail to a case manager
and on no agenda, do not escalate, are counted in the team digest, and come back when the
silence ends by itself or by hand; every change of a silence is an event with who and why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from ops_support import make_source, received_texts

from regiesignaal.engine.language.dates import Duration, add_working_days
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.reconcile import Fired, RuleInfo, reconcile
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.store import migrate
from regiesignaal.engine.store.silences import (
    SilenceError,
    active_silences,
    add_silence,
    expire_silence,
    list_silences,
)
from regiesignaal.engine.store.tables import signal_events, signals, silence_events, silences
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.config import Settings, load_settings
from regiesignaal.jobs.pipeline import RunOptions, run, upgrade_store
from regiesignaal.notifications.delivery.mailserver import MailCatcher
from regiesignaal.notifications.delivery.settings import SmtpSettings

AS_OF = dt.date(2026, 3, 2)  # a Monday
RULES = Path(__file__).resolve().parents[1] / "rules"


# --- the state machine: a silenced signal does not escalate -------------------------------


def test_a_silenced_signal_keeps_its_episode_and_does_not_escalate(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    rules = {"R-1": RuleInfo("high", Duration(2, "wd"))}
    cases = {
        "Z-1": Fired("high", "rv-1", "T1", location="loc-a"),  # silenced by the team silence
        "Z-2": Fired("high", "rv-2", "T2", location="loc-a"),  # silenced by the location one
        "Z-3": Fired("high", "rv-3", "T2", location="loc-b"),  # not silenced
    }
    fired = {(ref, "R-1"): f for ref, f in cases.items()}

    def night(day: dt.date, run_id: int) -> None:
        with engine.begin() as conn:
            reconcile(conn, fired, set(cases), rules, day, run_id)

    def episodes() -> dict[str, Any]:
        with engine.connect() as conn:
            return {r.case_ref: r for r in conn.execute(sa.select(signals))}

    try:
        night(AS_OF, 1)
        first = episodes()
        with engine.begin() as conn:
            add_silence(conn, "R-1", dt.date(2026, 3, 5), "storing", "tl-1", AS_OF, {"R-1"},
                        team="T1")  # fmt: skip
            add_silence(conn, "R-1", dt.date(2026, 3, 5), "storing", "tl-1", AS_OF, {"R-1"},
                        location="loc-a")  # fmt: skip
        for n, day in enumerate([dt.date(2026, 3, d) for d in (3, 4, 5)], start=2):
            night(day, n)
        now = episodes()
        assert now["Z-3"].escalated_on is not None, "not silenced: it escalates"
        assert now["Z-1"].escalated_on is None and now["Z-2"].escalated_on is None
        assert {k: v.id for k, v in now.items()} == {k: v.id for k, v in first.items()}
        assert all(v.closed_on is None for v in now.values()), "the episodes stay open"
        night(dt.date(2026, 3, 6), 5)  # the silences ended yesterday: they escalate now
        after = episodes()
        assert after["Z-1"].escalated_on is not None and after["Z-2"].escalated_on is not None
        with engine.connect() as conn:
            kinds = conn.execute(
                sa.select(
                    silence_events.c.kind, silence_events.c.by, silence_events.c.as_of
                ).order_by(silence_events.c.id)
            ).all()
            assert [tuple(k) for k in kinds] == [
                ("added", "tl-1", AS_OF),
                ("added", "tl-1", AS_OF),
                ("ended", "regiesignaal", dt.date(2026, 3, 6)),
                ("ended", "regiesignaal", dt.date(2026, 3, 6)),
            ]
            assert active_silences(conn, dt.date(2026, 3, 6)) == []
            closes = conn.execute(
                sa.select(sa.func.count())
                .select_from(signal_events)
                .where(signal_events.c.kind.in_(("resolved", "case_closed")))
            ).scalar()
            assert closes == 0
    finally:
        engine.dispose()


def test_add_and_expire_refuse_bad_input_without_repeating_it(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            bad = [
                dict(rule_id="R-X"),
                dict(until=AS_OF - dt.timedelta(days=1)),
                dict(reason="  "),
                dict(by=""),
                dict(team="T1", location="loc-a"),
            ]
            for change in bad:
                args: dict[str, Any] = (
                    dict(
                        rule_id="R-1", until=AS_OF, reason="r", by="tl-1", team=None, location=None
                    )
                    | change
                )
                with pytest.raises(SilenceError) as exc:
                    add_silence(
                        conn,
                        args["rule_id"],
                        args["until"],
                        args["reason"],
                        args["by"],
                        AS_OF,
                        {"R-1"},
                        team=args["team"],
                        location=args["location"],
                    )
                assert "R-X" not in str(exc.value)
            sid = add_silence(conn, "R-1", AS_OF, "r", "tl-1", AS_OF, {"R-1"})
            expire_silence(conn, sid, "tl-2", "bron hersteld", AS_OF)
            with pytest.raises(SilenceError, match="al beëindigd"):
                expire_silence(conn, sid, "tl-2", "nogmaals", AS_OF)
            with pytest.raises(SilenceError, match="bestaat niet"):
                expire_silence(conn, sid + 1, "tl-2", "x", AS_OF)
            assert active_silences(conn, AS_OF) == [], "expired today: silences nothing today"
            (row,) = list_silences(conn, AS_OF, include_ended=True)
            assert row["state"] == "beëindigd" and row["expired_by"] == "tl-2"
            assert [(e["kind"], e["by"], e["reason"]) for e in row["events"]] == [
                ("added", "tl-1", "r"),
                ("expired", "tl-2", "bron hersteld"),
            ]
            assert list_silences(conn, AS_OF) == []
    finally:
        engine.dispose()


# --- a real run: mail, agenda, digest ---------------------------------------------------


def _settings(source_url: str, store_url: str, port: int) -> Settings:
    return dataclasses.replace(
        load_settings(env={}),
        source_url=source_url,
        store_url=store_url,
        rules_dir=RULES,
        workers=1,
        grace_days=0,
        smtp=SmtpSettings(host="127.0.0.1", port=port, tls="none", timeout_seconds=10),
    )


@pytest.mark.slow
def test_a_silence_through_real_runs(db_url: str, tmp_path: Path) -> None:
    source_url, _, staff = make_source(tmp_path, cases=300, seed=5)
    rules = {r.id: r for r in load_rule_dir(RULES).rules}
    staff_by_id = {s["id"]: s for s in map(json.loads, staff.read_text().splitlines())}
    day2, day3 = add_working_days(AS_OF, 1), add_working_days(AS_OF, 2)
    store = sa.create_engine(db_url)
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = _settings(source_url, db_url, catcher.port)
        upgrade_store(settings)
        run(settings, RunOptions(AS_OF))
        seen: set[Path] = set()
        first_mail = received_texts(tmp_path / "mail", seen)
        with store.connect() as conn:
            rows = conn.execute(
                sa.select(
                    signals.c.id,
                    signals.c.case_ref,
                    signals.c.rule_id,
                    signals.c.team,
                    signals.c.regievoerder,
                ).where(
                    signals.c.closed_on.is_(None),
                    signals.c.covered_by.is_(None),
                    signals.c.explained_until.is_(None),
                )
            ).all()
        per_rule_team: dict[tuple[str, str], list[Any]] = {}
        for r in rows:
            if rules[r.rule_id].kind == "actie":
                per_rule_team.setdefault((r.rule_id, r.team), []).append(r)
        (rule_id, team), chosen = max(per_rule_team.items(), key=lambda kv: len(kv[1]))
        title = rules[rule_id].mail_title
        # case managers who also have signals of the rule outside the team keep seeing it
        elsewhere = {r.regievoerder for r in rows if r.rule_id == rule_id and r.team != team}
        with store.begin() as conn:
            add_silence(conn, rule_id, day2, "storing bronsysteem", "tl-1", AS_OF, set(rules),
                        team=team)  # fmt: skip

        run(settings, RunOptions(day2))
        silenced_mail = received_texts(tmp_path / "mail", seen)
        run(settings, RunOptions(day3))
        after_mail = received_texts(tmp_path / "mail", seen)
    with store.connect() as conn:
        now = {
            r.id: r
            for r in conn.execute(
                sa.select(signals).where(signals.c.id.in_([c.id for c in chosen]))
            )
        }
        events = conn.execute(sa.select(silence_events).order_by(silence_events.c.id)).all()
        (silence,) = conn.execute(sa.select(silences)).all()
    store.dispose()

    assert len(chosen) >= 3
    assert all(now[c.id].closed_on is None for c in chosen), "the episodes are kept"
    members = {c.regievoerder for c in chosen} - elsewhere
    assert members
    addresses = {m: s["email"] for m, s in staff_by_id.items() if m in members}
    before = [a for a in addresses.values() if title in first_mail.get(a, "")]
    assert before, "before the silence the title is in their mail (the whole list)"
    assert not [a for a in addresses.values() if title in silenced_mail.get(a, "")]
    assert [a for a in addresses.values() if title in after_mail.get(a, "")], (
        "after the silence ended the signals are mailed again"
    )
    digests = [t for to, t in silenced_mail.items() if to.startswith("tl-")]
    assert any(f"Stilgezet (niet gemaild): {len(chosen)}." in t for t in digests), digests[:1]
    assert not any("Stilgezet" in t for to, t in after_mail.items())
    assert [(e.kind, e.by, e.as_of) for e in events] == [
        ("added", "tl-1", AS_OF),
        ("ended", "regiesignaal", day3),
    ]
    assert silence.ended_on == day3
    for text in silenced_mail.values():  # no rule id in mail, silenced or not
        assert rule_id not in text


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(40, 3, AS_OF, cases, staff)
    source = f"sqlite:///{tmp_path / 'src.sqlite'}"
    engine = sa.create_engine(source)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", source)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(rules))
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_silences_add_list_expire_on_the_command_line(env: Path) -> None:
    assert _cli("db", "upgrade").exit_code == 0
    staff = [json.loads(x) for x in (env / "staff.jsonl").read_text().splitlines()]
    lead = next(s for s in staff if s["role"] == "teamleider")
    base = ("silences", "add", "--rule", "VG-FIRST", "--until", "2099-01-01", "--reason", "beleid")
    unknown_staff = _cli(*base, "--by", "j.jansen")
    assert unknown_staff.exit_code == 1 and "personeelsbestand" in unknown_staff.output
    assert "j.jansen" not in unknown_staff.output
    unknown_team = _cli(*base, "--by", lead["id"], "--team", "team-xyz")
    assert unknown_team.exit_code == 1 and "team bij --team" in unknown_team.output
    assert "team-xyz" not in unknown_team.output
    both = _cli(*base, "--by", lead["id"], "--team", lead["team"], "--location", "x")
    assert both.exit_code == 1 and "niet beide" in both.output
    typo = _cli("silences", "add", "--rule", "vg-frist", "--until", "2099-01-01", "--reason",
                "x", "--by", lead["id"])  # fmt: skip
    assert typo.exit_code == 1 and "VG-FIRST" in typo.output
    past = _cli("silences", "add", "--rule", "VG-FIRST", "--until", "2020-01-01", "--reason",
                "x", "--by", lead["id"])  # fmt: skip
    assert past.exit_code == 1 and "einddatum" in past.output
    added = _cli(*base, "--by", lead["id"], "--team", lead["team"])
    assert added.exit_code == 0, added.output
    listed = [
        json.loads(x) for x in _cli("silences", "list", "--format", "json").output.splitlines()
    ]
    assert [(s["rule_id"], s["team"], s["state"]) for s in listed] == [
        ("VG-FIRST", lead["team"], "actief")
    ]
    sid = str(listed[0]["id"])
    assert _cli("silences", "expire", sid, "--by", lead["id"], "--reason", "klaar").exit_code == 0
    again = _cli("silences", "expire", sid, "--by", lead["id"])
    assert again.exit_code == 1 and "al beëindigd" in again.output
    assert _cli("silences", "list", "--format", "json").output == ""
    table = _cli("silences", "list", "--all")
    assert table.exit_code == 0 and "toegevoegd" in table.output and "beëindigd" in table.output
    missing_source = CliRunner().invoke(
        main, [*base, "--by", lead["id"]], env={"REGIESIGNAAL_SOURCE_URL": "sqlite:///nope.sqlite"}
    )
    assert missing_source.exit_code == 2


def test_a_silenced_signal_covers_nothing(sqlite_url: str) -> None:
    """Like an explained one: the narrower signal it would cover stays visible."""
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    rules = {"R-WIDE": RuleInfo("high", covers=("R-NARROW",)), "R-NARROW": RuleInfo("high")}
    fired = {
        ("Z-1", "R-WIDE"): Fired("high", "rv-1", "T1"),
        ("Z-1", "R-NARROW"): Fired("high", "rv-1", "T1"),
        ("Z-2", "R-WIDE"): Fired("high", "rv-2", "T2"),
        ("Z-2", "R-NARROW"): Fired("high", "rv-2", "T2"),
    }
    try:
        with engine.begin() as conn:
            add_silence(conn, "R-WIDE", AS_OF, "r", "tl-1", AS_OF, set(rules), team="T1")
            counts = reconcile(conn, fired, {"Z-1", "Z-2"}, rules, AS_OF, 1)
            covered = dict(
                conn.execute(
                    sa.select(signals.c.case_ref, signals.c.covered_by).where(
                        signals.c.rule_id == "R-NARROW"
                    )
                ).all()
            )
        assert counts.covered == 1
        assert covered == {"Z-1": None, "Z-2": "R-WIDE"}
    finally:
        engine.dispose()


def test_a_silenced_rule_gives_no_reason_on_the_agenda(tmp_path: Path) -> None:
    from regiesignaal.engine.language.casefile import parse_case
    from regiesignaal.engine.store.silences import Silence
    from regiesignaal.notifications.lko_agenda import build_agenda, location_of

    cases_file, staff_file = tmp_path / "c.jsonl", tmp_path / "s.jsonl"
    generate(300, 11, AS_OF, cases_file, staff_file)
    raws = [json.loads(x) for x in cases_file.read_text(encoding="utf-8").splitlines()]
    cases = [parse_case(r) for r in raws if r.get("status", "open") == "open"]
    pack = load_rule_dir(RULES)
    place = max(
        {location_of(c) for c in cases},
        key=lambda loc: sum(location_of(c) == loc for c in cases),
    )
    before = build_agenda(cases, [], pack, AS_OF, location=place)
    reasons = [rid for i in before.items for r in i.reasons for rid in r.rule_ids]
    assert reasons
    rule_id = max(set(reasons), key=reasons.count)
    quiet = [Silence(1, rule_id, None, place, AS_OF)]
    after = build_agenda(cases, [], pack, AS_OF, location=place, silences=quiet)
    assert rule_id not in [rid for i in after.items for r in i.reasons for rid in r.rule_ids]
    elsewhere = [Silence(1, rule_id, None, place + "-x", AS_OF)]
    same = build_agenda(cases, [], pack, AS_OF, location=place, silences=elsewhere)
    assert [i.case_ref for i in same.items] == [i.case_ref for i in before.items]


# --- edge cases (tester's item 3) -----------------------------------------------------------


def _a_run(conn: sa.Connection, as_of: dt.date) -> None:
    from regiesignaal.engine.store.tables import runs

    now = dt.datetime.now(dt.UTC)
    conn.execute(
        runs.insert().values(
            as_of=as_of, trigger="manual", status="succeeded", started_at=now, finished_at=now
        )
    )


def test_a_silence_cannot_start_or_end_before_the_last_run(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            _a_run(conn, AS_OF)
            early = AS_OF - dt.timedelta(days=30)
            with pytest.raises(SilenceError, match="laatste run") as exc:
                add_silence(conn, "R-1", AS_OF, "r", "tl-1", early, {"R-1"})
            assert str(exc.value)[0].isupper() and AS_OF.isoformat() in str(exc.value)
            sid = add_silence(
                conn, "R-1", AS_OF + dt.timedelta(days=9), "r", "tl-1", AS_OF, {"R-1"}
            )
            with pytest.raises(SilenceError, match="laatste run"):
                expire_silence(conn, sid, "tl-1", "klaar", early)
    finally:
        engine.dispose()


def test_a_silence_lasts_at_most_a_year_and_overlap_is_named(sqlite_url: str) -> None:
    from regiesignaal.engine.store.silences import SILENCE_MAX_DAYS, overlapping, silence_end

    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            far = dt.date(2999, 12, 31)
            assert silence_end(AS_OF, far) == AS_OF + dt.timedelta(days=SILENCE_MAX_DAYS)
            first = add_silence(conn, "R-1", far, "r", "tl-1", AS_OF, {"R-1"}, team="T1")
            (row,) = list_silences(conn, AS_OF)
            assert row["until"] == AS_OF + dt.timedelta(days=SILENCE_MAX_DAYS)
            later = AS_OF + dt.timedelta(days=20)
            assert overlapping(conn, "R-1", "T1", None, later, later) == [first]
            assert overlapping(conn, "R-1", "T2", None, later, later) == []
            assert overlapping(conn, "R-2", "T1", None, later, later) == []
            whole = add_silence(conn, "R-1", later, "r", "tl-1", AS_OF, {"R-1"})
            assert overlapping(conn, "R-1", "T2", None, AS_OF, later) == [whole]
    finally:
        engine.dispose()


def test_silences_edge_cases_on_the_command_line(env: Path) -> None:
    assert _cli("db", "upgrade").exit_code == 0
    staff = [json.loads(x) for x in (env / "staff.jsonl").read_text().splitlines()]
    lead = next(s for s in staff if s["role"] == "teamleider")
    location = json.loads((env / "cases.jsonl").read_text().splitlines()[0])["location"]
    base = ("silences", "add", "--rule", "VG-FIRST", "--reason", "beleid", "--by", lead["id"])
    unknown = _cli(*base, "--until", "2099-01-01", "--location", "loc-nergens")
    assert unknown.exit_code == 1 and "locatie bij --location" in unknown.output
    assert "loc-nergens" not in unknown.output
    far = _cli(*base, "--until", "2999-12-31", "--location", location)
    assert far.exit_code == 0, far.output
    assert "hooguit 1 jaar" in far.output and "2999" not in far.output
    again = _cli(*base, "--until", "2099-01-01", "--location", location)
    assert again.exit_code == 0 and "Let op: stilte 1 " in again.output
    long_reason = "storing " * 60
    assert _cli(*base[:-4], "--reason", long_reason, "--by", lead["id"], "--until",
                "2099-01-01").exit_code == 0  # fmt: skip
    table = _cli("silences", "list")
    assert table.exit_code == 0 and long_reason.strip() not in table.output
    assert "…" in table.output
    listed = _cli("silences", "list", "--format", "json").output.splitlines()
    assert json.loads(listed[-1])["reason"] == long_reason.strip()


def test_refusals_on_the_command_line_are_sentences(env: Path) -> None:
    """Tester's item 5: a refusal starts with a capital and ends with a full stop."""
    assert _cli("db", "upgrade").exit_code == 0
    staff = [json.loads(x) for x in (env / "staff.jsonl").read_text().splitlines()]
    lead = next(s for s in staff if s["role"] == "teamleider")
    typo = _cli("silences", "add", "--rule", "vg-frist", "--until", "2099-01-01", "--reason",
                "x", "--by", lead["id"])  # fmt: skip
    missing = _cli("silences", "expire", "99", "--by", lead["id"])
    revoke = _cli("explanations", "revoke", "99", "--by", lead["id"])
    for result in (typo, missing, revoke):
        text = result.output.strip()
        assert result.exit_code == 1 and text[0].isupper() and text.endswith((".", "?")), text
    assert typo.output.startswith("De regel bestaat niet")


def test_a_location_is_known_when_a_case_carries_it(db_url: str, tmp_path: Path) -> None:
    """`silences add --location` checks the id against the source, on SQLite and
    PostgreSQL alike (a JSON lookup in the cases' extra fields)."""
    from regiesignaal.engine.source.read import location_exists

    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(30, 3, AS_OF, cases, staff)
    known = {json.loads(x).get("location") for x in cases.read_text().splitlines()} - {None}
    engine = sa.create_engine(db_url)
    try:
        load_cases(engine, cases)
        assert known and all(location_exists(engine, str(loc)) for loc in known)
        assert not location_exists(engine, "loc-bestaat-niet")
        assert not location_exists(engine, "' OR 1=1 --")
    finally:
        engine.dispose()
