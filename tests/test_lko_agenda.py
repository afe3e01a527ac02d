"""The chain meeting's agenda: who is on it and why, ranked; privacy like all mail; the
configured meetings and their once-per-meeting delivery through the outbox."""

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

from regiesignaal.engine.language.casefile import parse_case
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.cli.lko import StoreNotReady, send_due_agendas
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.pipeline import upgrade_store
from regiesignaal.notifications.compose.lko_agenda import render_agenda
from regiesignaal.notifications.delivery.mailserver import MailCatcher
from regiesignaal.notifications.delivery.settings import SmtpSettings
from regiesignaal.notifications.lko_agenda import (
    AgendaOptions,
    Escalated,
    LkoConfigError,
    Meeting,
    agenda_problems,
    build_agenda,
    is_due,
    load_meetings,
    next_meeting,
)

RULES = Path(__file__).resolve().parent.parent / "rules"
AS_OF = dt.date(2026, 3, 2)  # a Monday


@pytest.fixture(scope="module")
def ruledir() -> Any:
    rd = load_rule_dir(RULES)
    assert rd.ok
    return rd


def case(ref: str, **extra: Any) -> dict[str, Any]:
    raw = {
        "case_ref": ref,
        "status": "open",
        "opened_on": "2025-10-01",
        "regievoerder": "rv-1",
        "team": "team-001",
        "location": "loc-001-2",
        "location_type": "azc",
        **extra,
    }
    return parse_case(raw)


def test_cases_are_on_the_agenda_for_their_reasons_ranked(ruledir: Any) -> None:
    cases = [
        case("Z-1", departure_term_ends_on="2026-02-20"),  # passed without decision
        case("Z-2", departure_term_ends_on="2026-03-06"),  # ends this week
        case(
            "Z-3",
            location_type="vbl",
            measures=[{"kind": "vbl", "from": "2025-12-18"}],  # 74 days
        ),
        case("Z-4", lko=[{"on": "2026-02-10", "decision": "gedwongen"}]),
        case("Z-5", location_type="detentie", contacts=[{"on": "2026-02-01"}]),
        case("Z-6"),  # nothing to discuss
        case("Z-7", departure_term_ends_on="2026-02-20", status="closed"),
        case("Z-8", departure_term_ends_on="2026-02-20", location="loc-001-1"),
    ]
    escalated = [Escalated("Z-6", "VG-FIRST", "high", dt.date(2026, 1, 1), dt.date(2026, 2, 1))]
    agenda = build_agenda(cases, escalated, ruledir, AS_OF, location="loc-001-2")
    # severity first (30 a step), escalation 20, a week of the gap 1
    assert [i.case_ref for i in agenda.items] == ["Z-1", "Z-2", "Z-6", "Z-5", "Z-3", "Z-4"]
    assert agenda.cases_considered == 6
    texts = {i.case_ref: [r.text for r in i.reasons] for i in agenda.items}
    assert texts["Z-1"] == [
        "Besluit ketenoverleg over vertrektermijn nodig (termijn eindigde op 20-02-2026)"
    ]
    # before the term ends the meeting can still act: the last day is named
    assert texts["Z-2"] == ["Besluit ketenoverleg over vertrektermijn nodig (uiterlijk 06-03-2026)"]
    assert texts["Z-3"] == ["Periodieke bespreking ketenoverleg nodig (sinds 26-02-2026)"]
    assert texts["Z-6"] == [
        "Geëscaleerd signaal: Eerste vertrekgesprek nog niet gehouden (open sinds 01-01-2026)"
    ]
    assert all(r.question.endswith("?") for i in agenda.items for r in i.reasons)
    by_team = build_agenda(cases, escalated, ruledir, AS_OF, team="team-001")
    assert "Z-8" in [i.case_ref for i in by_team.items]


def test_an_escalated_signal_of_an_agenda_rule_is_not_shown_twice(ruledir: Any) -> None:
    cases = [case("Z-1", departure_term_ends_on="2026-02-20")]
    escalated = [Escalated("Z-1", "TERM-ENDING", "critical", dt.date(2026, 2, 21), AS_OF)]
    agenda = build_agenda(cases, escalated, ruledir, AS_OF, location="loc-001-2")
    assert [len(i.reasons) for i in agenda.items] == [1]


def test_the_agenda_holds_no_personal_data_nor_category(tmp_path: Path, ruledir: Any) -> None:
    """The scan every message gets: no names, outcomes, destinations, forbidden words or
    rule ids, for every location of a realistic data set with every rule escalated."""
    cases_file, staff_file = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(800, 5, AS_OF, cases_file, staff_file)
    raws = [json.loads(line) for line in cases_file.open(encoding="utf-8")]
    cases = [parse_case(r) for r in raws]
    staff = [json.loads(line) for line in staff_file.open(encoding="utf-8")]
    names = {p for s in staff for p in s["name"].split() if len(p) > 3}
    destinations = {w["destination"] for r in raws for w in r.get("departure_wishes", [])}
    rule_ids = [r.id for r in ruledir.rules]
    escalated = [
        Escalated(c["case_ref"], rule_ids[n % len(rule_ids)], "critical", c["opened_on"], AS_OF)
        for n, c in enumerate(cases)
    ]
    locations = sorted({c["location"] for c in cases if c.get("location")})
    assert len(locations) >= 4
    shown = 0
    for loc in locations:
        everything = AgendaOptions(max_cases=10_000)  # scan every case, not only the first 10
        agenda = build_agenda(cases, escalated, ruledir, AS_OF, location=loc, options=everything)
        shown += len(agenda.items)
        message = render_agenda(agenda)
        assert agenda_problems(message, rule_ids) == []
        for part in (message.subject, message.text, message.html):
            for word in names | {"geen_bijzonderheden", "aandachtspunt", "bma_nodig"}:
                assert not re.search(rf"\b{re.escape(word)}\b", part), word
            for dest in destinations:
                assert not re.search(rf"(?<![\w/-]){re.escape(dest)}(?![\w-])", part), dest
            assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b", part)  # no ISO (birth) dates
    assert shown > 50


def test_the_scan_can_fail() -> None:
    from regiesignaal.notifications.delivery.message import ComposedMessage

    bad = ComposedMessage("Agenda", "Zaak in detentie, TERM-ENDING", "<p>AMV</p>")
    assert agenda_problems(bad, ["TERM-ENDING"]) == ["TERM-ENDING", "amv", "detentie"]


@pytest.mark.parametrize(
    "text",
    [
        "Deze agenda bevat geen namen of medische gegevens.",  # the old footer
        "Verblijf in de gezinslocatie duurt 74 dagen",
        "Uitstel van vertrek art 64 eindigt",
        "Ama zonder voogd",
    ],
)
def test_the_scan_refuses_category_words_in_any_form(text: str) -> None:
    from regiesignaal.notifications.delivery.message import ComposedMessage

    assert agenda_problems(ComposedMessage("Agenda", text, "<p></p>"), []) != []


def test_every_reason_in_both_states_is_neutral(ruledir: Any) -> None:
    """A stay's review, before and after its maximum, names neither the kind of location nor
    its maximum (84 days would tell a reader which kind it is)."""
    cases = [
        case("Z-1", location_type="vbl", measures=[{"kind": "vbl", "from": "2025-12-18"}]),
        case("Z-2", location_type="vbl", measures=[{"kind": "vbl", "from": "2025-11-01"}]),
        case("Z-3", departure_term_ends_on="2026-02-20"),
        case("Z-4", departure_term_ends_on="2026-03-06"),
        case("Z-5", location_type="detentie", contacts=[{"on": "2026-02-01"}]),
        case("Z-6", lko=[{"on": "2026-02-10", "decision": "bewaring"}]),
    ]
    agenda = build_agenda(cases, [], ruledir, AS_OF, location="loc-001-2")
    assert len(agenda.items) == 6
    weights = {i.case_ref: i.reasons[0].weight for i in agenda.items}
    assert weights["Z-2"] > weights["Z-1"]  # overdue (critical) before the stay under review
    assert agenda.items[0].case_ref in ("Z-2", "Z-3")  # both past their deadline: critical
    message = render_agenda(agenda)
    assert agenda_problems(message, [r.id for r in ruledir.rules]) == []
    for part in (message.text, message.html):
        assert "84" not in part and "maximaal" not in part.lower()
        assert "medisch" not in part.lower()


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "regiesignaal.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_meetings_are_read_from_the_configuration(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        '[run]\nworkers = 1\n\n[[lko.meeting]]\nlocation = "loc-001-2"\nweekday = "dinsdag"\n'
        'recipients = ["lko-noord@dtv.example"]\n\n[[lko.meeting]]\nteam = "team-002"\n'
        'weekday = "thursday"\n',
    )
    assert load_settings(path, env={}).workers == 1  # the [lko] section is allowed
    meetings = load_meetings(path)
    assert meetings == [
        Meeting("loc-001-2", None, 1, ("lko-noord@dtv.example",)),
        Meeting(None, "team-002", 3, ()),
    ]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ('weekday = "dinsdag"\n', "precies één van 'location' of 'team'"),
        ('location = "a"\nteam = "b"\nweekday = "dinsdag"\n', "precies één van"),
        ('location = "a"\nweekday = "dinsdagg"\n', "'weekday' moet een dag zijn"),
        ('location = "a"\nweekday = "dinsdag"\nrecipients = ["geen-adres"]\n', "e-mailadressen"),
        ('location = "a"\nweekday = "dinsdag"\nwho = 1\n', "onbekende sleutel 'who'"),
    ],
)
def test_a_wrong_meeting_is_named(tmp_path: Path, block: str, message: str) -> None:
    path = _config(tmp_path, "[[lko.meeting]]\n" + block)
    with pytest.raises(LkoConfigError) as err:
        load_meetings(path)
    assert message in str(err.value) and "nummer 1" in str(err.value)
    assert "dinsdagg" not in str(err.value) and "geen-adres" not in str(err.value)


def test_the_agenda_is_due_the_working_day_before_the_meeting() -> None:
    tuesday = Meeting("x", None, 1)
    monday = Meeting("x", None, 0)
    assert next_meeting(tuesday, AS_OF) == dt.date(2026, 3, 3)
    assert is_due(tuesday, AS_OF)  # Monday before a Tuesday meeting
    assert not is_due(tuesday, dt.date(2026, 2, 27))  # the Friday before: too early
    assert is_due(monday, dt.date(2026, 2, 27))  # Friday before a Monday meeting
    assert not is_due(monday, AS_OF)  # a Monday: the next meeting is a week away
    # Friday 1 January 2027 is a holiday: Thursday 31 December sends for Monday 4 January
    assert is_due(monday, dt.date(2026, 12, 31))


def _source(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(300, 3, AS_OF, cases, staff)
    engine = sa.create_engine(url)
    try:
        assert load_staff_file(engine, staff).rejected == 0
        assert load_cases(engine, cases).rejected == 0
    finally:
        engine.dispose()
    return url


@pytest.mark.slow
def test_due_agendas_are_mailed_once_per_meeting(tmp_path: Path, ruledir: Any) -> None:
    source_url = _source(tmp_path)
    from regiesignaal.engine.source.read import iter_case_batches

    engine = sa.create_engine(source_url)
    cases = [c for b in iter_case_batches(engine, 500) for c in b]
    engine.dispose()
    location = next(c["location"] for c in cases if c.get("location_type") == "vbl")
    meetings = [
        Meeting(location, None, 1, ("lko-a@dtv.example", "lko-b@dtv.example")),
        Meeting(None, "team-001", 4, ("lko-c@dtv.example",)),  # Friday: not due on Monday
    ]
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = dataclasses.replace(
            load_settings(env={}),
            source_url=source_url,
            store_url=f"sqlite:///{tmp_path / 'store.sqlite'}",
            smtp=SmtpSettings(host="127.0.0.1", port=catcher.port, tls="none", timeout_seconds=10),
        )
        with pytest.raises(StoreNotReady):  # the store must be migrated first
            send_due_agendas(settings, meetings, cases, [], ruledir, AS_OF)
        upgrade_store(settings)
        first = send_due_agendas(settings, meetings, cases, [], ruledir, AS_OF)
        again = send_due_agendas(settings, meetings, cases, [], ruledir, AS_OF)
    assert "2 bericht(en) nieuw in de wachtrij" in first
    assert "0 bericht(en) nieuw in de wachtrij" in again
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted((tmp_path / "mail").glob("*.eml"))
    ]
    assert sorted(m["To"] for m in mails) == ["lko-a@dtv.example", "lko-b@dtv.example"]
    assert all(f"locatie {location}, 03-03-2026" in m["Subject"] for m in mails)


def test_the_command_needs_one_scope_and_prints_the_agenda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_url = _source(tmp_path)
    env = {
        "REGIESIGNAAL_SOURCE_URL": source_url,
        "REGIESIGNAAL_STORE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
    }
    (tmp_path / "cwd").mkdir()
    runner = CliRunner()
    monkeypatch.chdir(tmp_path / "cwd")  # no ./regiesignaal.toml here
    both = runner.invoke(main, ["lko", "agenda", "--location", "a", "--team", "b"], env=env)
    assert both.exit_code == 2 and "precies één van --location of --team" in both.output
    out = runner.invoke(
        main, ["lko", "agenda", "--team", "team-001", "--as-of", "2026-03-02"], env=env
    )
    assert out.exit_code == 0, out.output
    assert "Agenda lokaal ketenoverleg, team team-001\n" in out.output
    assert "geen signaalopslag gevonden" in out.output  # no run yet: said, not hidden
    assert "Vraag aan het overleg:" in out.output
    typo = runner.invoke(
        main, ["lko", "agenda", "--location", "loc-999-9", "--as-of", "2026-03-02"], env=env
    )
    assert typo.exit_code == 1
    assert "Geen open zaken met locatie loc-999-9" in typo.output
    assert "Bekende locaties: loc-" in typo.output


def test_escalated_episodes_are_read_from_the_store(tmp_path: Path, db_url: str) -> None:
    """Open and escalated on or before the as-of date: on the agenda; others not."""
    from regiesignaal.engine.store.tables import signals
    from regiesignaal.notifications.lko_agenda import load_escalated

    settings = dataclasses.replace(load_settings(env={}), store_url=db_url)
    upgrade_store(settings)
    base = {
        "severity": "high",
        "regievoerder": "rv-1",
        "team": "team-001",
        "opened_on": dt.date(2026, 2, 1),
        "last_seen_on": AS_OF,
        "closed_on": None,
        "close_reason": None,
    }
    rows = [
        {"case_ref": "Z-1", "rule_id": "VG-FIRST", "escalated_on": dt.date(2026, 2, 15)},
        {"case_ref": "Z-2", "rule_id": "VG-FIRST", "escalated_on": dt.date(2026, 3, 3)},
        {"case_ref": "Z-3", "rule_id": "VG-FIRST", "escalated_on": None},
        {
            "case_ref": "Z-4",
            "rule_id": "VG-FIRST",
            "escalated_on": dt.date(2026, 2, 15),
            "closed_on": dt.date(2026, 2, 20),
            "close_reason": "resolved",
        },
    ]
    store = sa.create_engine(db_url)
    try:
        with store.begin() as conn:
            conn.execute(signals.insert(), [{**base, **r} for r in rows])
        got = load_escalated(store, AS_OF)
    finally:
        store.dispose()
    assert [(e.case_ref, e.rule_id, e.escalated_on) for e in got] == [
        ("Z-1", "VG-FIRST", dt.date(2026, 2, 15))
    ]
