"""Issue 16: what makes a signal stand out - warnings before a deadline, one signal that
covers narrower ones, the rule language's new keys, the LKO agenda's follow-up marks, the
whole list as an attachment and the settings that shape the mail."""

from __future__ import annotations

import datetime as dt
import email
import json
from email import policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from regiesignaal.engine.language.casefile import parse_case
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.dates import Duration
from regiesignaal.engine.language.evaluator import Evaluator, Upcoming
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.reconcile import Fired, RuleInfo, plan_warnings, reconcile
from regiesignaal.engine.store import migrate
from regiesignaal.engine.store.episodes import OpenWarning
from regiesignaal.engine.store.tables import signal_events, signals
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.config import ConfigError, load_settings
from regiesignaal.notifications.compose.lko_agenda import NEW_REASON, NEW_SINCE_LAST, NO_PROGRESS
from regiesignaal.notifications.delivery.smtp import attachment_name, mime_message
from regiesignaal.notifications.lko_agenda import AgendaHistory, AgendaOptions, build_agenda

RULES = Path(__file__).resolve().parent.parent / "rules"
AS_OF = dt.date(2026, 3, 2)  # a Monday


@pytest.fixture(scope="module")
def pack() -> Any:
    rd = load_rule_dir(RULES)
    assert rd.ok, rd.problems
    return rd


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("cases")
    generate(600, 11, AS_OF, folder / "cases.jsonl", folder / "staff.jsonl")
    raws = [json.loads(x) for x in (folder / "cases.jsonl").open(encoding="utf-8")]
    return [parse_case(r) for r in raws if r.get("status", "open") == "open"]


# --- warnings: the day a warning names is the last day before the rule fires ------------


def test_a_warning_s_last_day_is_the_day_before_both_evaluators_fire(
    pack: Any, generated: list[dict[str, Any]]
) -> None:
    """For every warning on realistic cases: the rule fires on neither evaluator on any day
    up to and including ``due_on``, and on both on the day after (the case unchanged)."""
    today = Evaluator(compile_rules(pack, AS_OF), "python")
    warned: list[tuple[dict[str, Any], Upcoming]] = []
    for case in generated:
        fired = today.fired(case)
        for up in today.upcoming(case, fired):
            assert up.rule_id not in fired
            warned.append((case, up))
    assert len(warned) > 20 and len({u.rule_id for _, u in warned}) >= 3
    days = sorted({d for _, u in warned for d in _days(AS_OF, u.due_on + dt.timedelta(1))})
    python = {d: Evaluator(compile_rules(pack, d, ahead=False), "python") for d in days}
    due_after = sorted({u.due_on + dt.timedelta(1) for _, u in warned})
    durable = {d: Evaluator(compile_rules(pack, d, ahead=False), "durable") for d in due_after}
    for case, up in warned:
        fire_day = up.due_on + dt.timedelta(1)
        for day in _days(AS_OF, up.due_on):
            assert up.rule_id not in python[day].fired(case), (up, day)
        assert up.rule_id in python[fire_day].fired(case), up
        assert up.rule_id in durable[fire_day].fired(case), up


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(n) for n in range((last - first).days + 1)]


def test_a_rule_that_will_fire_within_its_warning_time_is_warned(pack: Any) -> None:
    """The converse on the boundary: a term ending in 5 working days is warned, one ending
    later is not; the day after the end the rule fires and the warning is gone."""
    ev = Evaluator(compile_rules(pack, AS_OF), "python")

    def warned(ends: str) -> list[dt.date]:
        case = parse_case(
            {"case_ref": "Z-1", "status": "open", "opened_on": "2025-10-01",
             "departure_term_ends_on": ends}
        )  # fmt: skip
        return [u.due_on for u in ev.upcoming(case, ev.fired(case)) if u.rule_id == "TERM-ENDING"]

    assert warned("2026-03-02") == [dt.date(2026, 3, 2)]  # ends today: last day today
    assert warned("2026-03-09") == [dt.date(2026, 3, 9)]  # 5 working days ahead
    assert warned("2026-03-12") == []  # beyond the warning time
    assert warned("2026-03-01") == []  # ended: the rule fires, no warning


def test_plan_warnings_opens_moves_and_ends_each_warning_once() -> None:
    day = dt.date(2026, 3, 4)

    def up(case: str, rule: str, due: int) -> Upcoming:
        return Upcoming(case, rule, "rv-1", "T1", dt.date(2026, 3, due))

    def warning(n: int, case: str, rule: str, due: int) -> OpenWarning:
        return OpenWarning(n, case, rule, "rv-1", "T1", dt.date(2026, 3, due), dt.date(2026, 3, 3))

    open_now = [
        warning(1, "Z-1", "R-A", 9),  # same date tomorrow: touched
        warning(2, "Z-2", "R-A", 9),  # date moved
        warning(3, "Z-3", "R-A", 5),  # fired today
        warning(4, "Z-4", "R-A", 9),  # case closed
        warning(5, "Z-5", "R-B", 9),  # rule removed
        warning(6, "Z-6", "R-A", 9),  # done in time: cleared
        warning(7, "Z-7", "R-A", 9),  # case not read tonight: kept as it is
    ]
    upcoming = {
        ("Z-1", "R-A"): up("Z-1", "R-A", 9),
        ("Z-2", "R-A"): up("Z-2", "R-A", 11),
        ("Z-8", "R-A"): up("Z-8", "R-A", 6),  # new
    }
    plan = plan_warnings(
        open_now,
        upcoming,
        fired_keys={("Z-3", "R-A")},
        open_case_refs={"Z-1", "Z-2", "Z-3", "Z-5", "Z-6", "Z-7", "Z-8"},
        active_rules={"R-A"},
        as_of=day,
        untouched_case_refs={"Z-7"},
    )
    assert [k for k, _ in plan.inserts] == [("Z-8", "R-A")]
    assert plan.touches == [1]
    assert [(i, u.due_on.day) for i, u in plan.moves] == [(2, 11)]
    assert dict(plan.closes) == {3: "fired", 4: "case_closed", 5: "rule_removed", 6: "cleared"}
    kinds = [(e.case_ref, e.kind) for e in plan.events]
    assert kinds.count(("Z-8", "warned")) == 1
    assert ("Z-2", "warning_moved") in kinds
    assert not any(c in ("Z-1", "Z-7") for c, _ in kinds)
    assert plan.still_open == 7 - 4 + 1


# --- covers: one signal for the case manager, the narrower one kept but quiet ----------


def test_a_covered_signal_keeps_its_history_and_does_not_escalate(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    rules = {
        "R-WIDE": RuleInfo("high", None, covers=("R-NARROW",)),
        "R-NARROW": RuleInfo("high", Duration(2, "wd")),
    }
    both = {("Z-1", "R-WIDE"), ("Z-1", "R-NARROW"), ("Z-2", "R-NARROW")}

    def night(day: dt.date, keys: set[tuple[str, str]], run_id: int) -> Any:
        fired = {k: Fired("high", "rv-1", "T1") for k in keys}
        with engine.begin() as conn:
            return reconcile(conn, fired, {"Z-1", "Z-2"}, rules, day, run_id)

    def episode(case: str) -> Any:
        with engine.connect() as conn:
            return conn.execute(
                sa.select(signals).where(
                    signals.c.case_ref == case, signals.c.rule_id == "R-NARROW"
                )
            ).one()

    try:
        counts = night(AS_OF, both, 1)
        assert counts.covered == 1
        assert episode("Z-1").covered_by == "R-WIDE" and episode("Z-2").covered_by is None
        for n, day in enumerate([dt.date(2026, 3, d) for d in (3, 4, 5, 6)], start=2):
            night(day, both, n)
        assert episode("Z-2").escalated_on is not None  # on its own it escalates ...
        assert episode("Z-1").escalated_on is None  # ... covered it waits for the wider one
        first = episode("Z-1")
        night(dt.date(2026, 3, 9), both - {("Z-1", "R-WIDE")}, 6)  # the wider one resolved
        after = episode("Z-1")
        assert (after.id, after.opened_on, after.closed_on) == (first.id, AS_OF, None)
        assert after.covered_by is None
        with engine.connect() as conn:
            kinds = (
                conn.execute(
                    sa.select(signal_events.c.kind)
                    .where(signal_events.c.signal_id == first.id)
                    .order_by(signal_events.c.id)
                )
                .scalars()
                .all()
            )
        assert kinds[:2] == ["opened", "covered"] and "uncovered" in kinds
    finally:
        engine.dispose()


def test_an_explained_wider_signal_covers_nothing(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    rules = {"R-WIDE": RuleInfo("high", covers=("R-NARROW",)), "R-NARROW": RuleInfo("high")}
    fired = {
        ("Z-1", "R-WIDE"): Fired("high", "rv-1", "T1", explained_until=dt.date(2026, 4, 1)),
        ("Z-1", "R-NARROW"): Fired("high", "rv-1", "T1"),
    }
    try:
        with engine.begin() as conn:
            counts = reconcile(conn, fired, {"Z-1"}, rules, AS_OF, 1)
        assert counts.covered == 0
    finally:
        engine.dispose()


# --- the rule language's new keys ------------------------------------------------------

BASE = """\
id: X-A
title: Test
mail_title: Contact nodig
description: Ernst low.
severity: low
owner: team-kwaliteit
when:
  latest_contact_on: {older_than: 5d}
expected_action: Neem contact op.
"""


@pytest.mark.parametrize(
    ("extra", "line", "says"),
    [
        ("kind: soms\n", 10, "'kind' zegt wat de regel vraagt"),
        ("covers: [X-A]\n", 10, "zichzelf niet omvatten"),
        ("covers: X-B\n", 10, "verwacht een lijst"),
        ("warn_before: 40d\n", 10, "'warn_before' is 1 dag tot ongeveer 31 dagen"),
        ("since: opened_onn\n", 10, "'since' noemt een datumveld"),
        ("since: {field: opened_on, label: Piet Jansen heeft BMA-advies}\n", 10, "label"),
        ("challenge: " + "Wie? " * 40 + "\n", 10, "'challenge' is"),
    ],
)
def test_new_keys_are_checked_where_they_stand(
    tmp_path: Path, extra: str, line: int, says: str
) -> None:
    (tmp_path / "derived.yaml").write_text((RULES / "derived.yaml").read_text("utf-8"), "utf-8")
    (tmp_path / "x-a.yaml").write_text(BASE + extra, encoding="utf-8")
    rd = load_rule_dir(tmp_path)
    found = [p for p in rd.problems if p.line == line]
    assert found and says in found[0].message, rd.problems
    for p in rd.problems:  # the bad value is never repeated
        assert "onbekend_veld" not in p.message and "Piet" not in p.message + p.hint


def test_covers_must_name_a_rule_of_the_folder_and_make_no_circle(tmp_path: Path) -> None:
    (tmp_path / "derived.yaml").write_text((RULES / "derived.yaml").read_text("utf-8"), "utf-8")
    (tmp_path / "x-a.yaml").write_text(BASE + "covers: [X-BB]\n", encoding="utf-8")
    b = BASE.replace("id: X-A", "id: X-B")
    (tmp_path / "x-b.yaml").write_text(b, encoding="utf-8")
    (problem,) = load_rule_dir(tmp_path).problems
    assert "niet in de map" in problem.message and "X-B" in problem.hint  # nearest id
    (tmp_path / "x-a.yaml").write_text(BASE + "covers: [X-B]\n", encoding="utf-8")
    (tmp_path / "x-b.yaml").write_text(b + "covers: [X-A]\n", encoding="utf-8")
    problems = load_rule_dir(tmp_path).problems
    assert len(problems) == 2 and all("uiteindelijk zichzelf" in p.message for p in problems)
    (tmp_path / "x-b.yaml").write_text(b, encoding="utf-8")
    ok = load_rule_dir(tmp_path)
    assert ok.ok and next(r for r in ok.rules if r.id == "X-A").covers == ("X-B",)


# --- the LKO agenda follows a case from meeting to meeting ----------------------------


def _case(ref: str, **extra: Any) -> dict[str, Any]:
    return parse_case(
        {"case_ref": ref, "status": "open", "opened_on": "2025-10-01", "regievoerder": "rv-1",
         "team": "T1", "location": "loc-1", "location_type": "azc", **extra}
    )  # fmt: skip


def test_agenda_marks_follow_the_earlier_meetings_and_propose_the_rao(pack: Any) -> None:
    ended = {"departure_term_ends_on": "2026-02-20"}  # TERM-ENDING fires
    cases = [_case(f"Z-{n}", **ended) for n in range(1, 5)] + [
        _case("Z-5", lko=[{"on": "2026-02-10", "decision": "gedwongen"}], **ended)
    ]
    term = frozenset({"TERM-ENDING"})
    history = AgendaHistory(
        (
            (dt.date(2026, 2, 23), {"Z-1": term, "Z-2": term, "Z-5": frozenset({"LKO-CHALLENGE"})}),
            (dt.date(2026, 2, 16), {"Z-1": term}),
        )
    )
    options = AgendaOptions(max_cases=10, rao_after=2, rao_cases=5)
    agenda = build_agenda(
        cases, [], pack, AS_OF, location="loc-1", history=history, options=options
    )
    marks = {i.case_ref: i.mark for i in agenda.items}
    assert [i.case_ref for i in agenda.rao] == ["Z-1"]  # twice without progress: to the RAO
    assert "Z-1" not in marks
    assert marks["Z-2"] == NO_PROGRESS
    assert marks["Z-3"] == marks["Z-4"] == NEW_SINCE_LAST
    # Z-5 was there for the challenge only; TERM-ENDING covers it now, a new reason
    assert marks["Z-5"] in (NO_PROGRESS, NEW_REASON)
    assert agenda.previous_on == dt.date(2026, 2, 23)
    small = build_agenda(
        cases, [], pack, AS_OF, location="loc-1", options=AgendaOptions(max_cases=2)
    )
    assert len(small.items) == 2 and small.not_shown == 3


# --- the whole list travels as an attachment ------------------------------------------


def test_the_whole_list_is_an_html_attachment_named_after_the_day() -> None:
    now = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)
    page = "<html><body><h1>Volledige lijst</h1></body></html>"
    msg = mime_message(
        "a@x.example", "b@x.example", "S", "tekst", "<p>html</p>", now,
        attachment_html=page, as_of=AS_OF,
    )  # fmt: skip
    parsed = email.message_from_bytes(bytes(msg), policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    (attachment,) = list(parsed.iter_attachments())  # type: ignore[attr-defined]
    assert attachment.get_filename() == attachment_name(AS_OF)
    assert attachment.get_content() == page
    body = parsed.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "tekst"
    plain = mime_message("a@x.example", "b@x.example", "S", "t", "<p>h</p>", now)
    assert plain.get_content_type() == "multipart/alternative"


# --- settings that shape the mail ------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[mail]\ndaily_items = 0\n", "daily_items"),
        ("[mail]\ndaily_items = 51\n", "daily_items"),
        ("[mail]\nfull_list = 'fax'\n", "full_list"),
        ("[mail]\nfull_list_weekday = 'zondag-ish'\n", "full_list_weekday"),
        ("[digest]\nescalations_shown = -1\n", "escalations_shown"),
        ("[digest]\ncompare_case_managers = 'misschien'\n", "compare_case_managers"),
    ],
)
def test_attention_settings_are_checked(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "regiesignaal.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path, env={})
    assert key in str(raised.value)


def test_attention_settings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "regiesignaal.toml"
    path.write_text(
        "[mail]\ndaily_items = 7\nfull_list = 'weekly'\nfull_list_weekday = 'vrijdag'\n"
        "[digest]\nescalations_shown = 3\ncompare_case_managers = true\n",
        encoding="utf-8",
    )
    s = load_settings(path, env={})
    assert (s.mail_daily_items, s.mail_full_list, s.mail_full_list_weekday) == (7, "weekly", 4)
    assert (s.digest_escalations_shown, s.digest_compare_case_managers) == (3, True)
    default = load_settings(None, env={})
    assert (default.mail_daily_items, default.digest_compare_case_managers) == (10, False)


def test_a_case_s_escalations_are_one_reason_with_one_question(pack: Any) -> None:
    from regiesignaal.notifications.compose.lko_agenda import render_agenda
    from regiesignaal.notifications.lko_agenda import Escalated

    escalated = [
        Escalated("Z-1", rule, "high", dt.date(2026, 1, 5), dt.date(2026, 2, 2))
        for rule in ("VG-FIRST", "PLAN-INCOMPLETE", "CONTACT-30D")
    ]
    agenda = build_agenda([_case("Z-1")], escalated, pack, AS_OF, location="loc-1")
    (item,) = agenda.items
    (reason,) = item.reasons
    assert reason.text.startswith("Geëscaleerde signalen: ")
    assert reason.text.count("open sinds 05-01-2026") == 3
    assert set(reason.rule_ids) == {"VG-FIRST", "PLAN-INCOMPLETE", "CONTACT-30D"}
    message = render_agenda(agenda)
    assert " ".join(message.text.split()).count(reason.question) == 1
    assert item.score == reason.weight + 10  # still counts every signal behind it
    assert "1 van de 1 open zaak vraagt om bespreking; hieronder alle" in message.text
    assert message.subject.endswith("(1 zaak)")


def test_the_agenda_does_not_repeat_what_a_wider_reason_covers(pack: Any) -> None:
    """TERM-ENDING covers LKO-CHALLENGE: one discussion, one reason (as in the mail)."""
    decision = [{"on": "2025-12-01", "decision": "gedwongen"}]  # > 28 days before the end
    both = _case("Z-1", departure_term_ends_on="2026-02-20", lko=decision)
    alone = _case("Z-2", lko=decision)
    agenda = build_agenda([both, alone], [], pack, AS_OF, location="loc-1")
    ids = {i.case_ref: [r.rule_id for r in i.reasons] for i in agenda.items}
    assert ids == {"Z-1": ["TERM-ENDING"], "Z-2": ["LKO-CHALLENGE"]}
