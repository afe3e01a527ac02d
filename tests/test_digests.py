"""From the signal store to message lines and team digests, on SQLite and PostgreSQL.

The dates: 2026-11-27 is a Friday, 11-28 and 11-29 the weekend, 11-30 a Monday.
"""

from __future__ import annotations

import datetime as dt
import pickle
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.dates import is_working_day, parse_duration
from regiesignaal.engine.spool import CaseBonus
from regiesignaal.engine.store.tables import signals
from regiesignaal.notifications.case_manager import case_manager_lines, iter_case_manager_lists
from regiesignaal.notifications.compose.model import Recipient, TeamDigest
from regiesignaal.notifications.compose.render import MailOptions
from regiesignaal.notifications.compose.team_digest import compose_team_digest
from regiesignaal.notifications.shared import RuleMeta, is_new, period_start, previous_working_day
from regiesignaal.notifications.team_digest import TeamDigests, team_digests

THU, FRI, SAT, SUN, MON = (dt.date(2026, 11, d) for d in (26, 27, 28, 29, 30))
LONG_AGO = dt.date(2026, 11, 2)
RULES = {
    "R1": RuleMeta("Titel een", "Doe iets.", None),
    "R2": RuleMeta("Titel twee", "Doe iets anders.", parse_duration("10wd")),
}
STAFF: dict[str, dict[str, Any]] = {
    "tl-1": {"role": "teamleider", "team": "T1", "email": "tl-1@dtv.example"},
    "rv-1": {"role": "regievoerder", "team": "T1", "email": "rv-1@dtv.example"},
    "rv-2": {"role": "regievoerder", "team": "T1", "email": "rv-2@dtv.example"},
    "rv-9": {"role": "regievoerder", "team": "T9", "email": "rv-9@dtv.example"},
}


def link(case_ref: str) -> str:
    return f"https://zaaksysteem.example/zaken/{case_ref}"


def add(
    engine: sa.Engine,
    case_ref: str,
    *,
    opened_on: dt.date = LONG_AGO,
    rule_id: str = "R1",
    severity: str = "high",
    rv: str | None = "rv-1",
    team: str | None = "T1",
    closed_on: dt.date | None = None,
    close_reason: str | None = None,
    escalated_on: dt.date | None = None,
    explained_until: dt.date | None = None,
    location: str | None = None,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            signals.insert().values(
                case_ref=case_ref,
                rule_id=rule_id,
                severity=severity,
                regievoerder=rv,
                team=team,
                opened_on=opened_on,
                # reconcile closes a signal on the first run it no longer fires: it was
                # last seen on an earlier day
                last_seen_on=(closed_on - dt.timedelta(days=1)) if closed_on else MON,
                closed_on=closed_on,
                close_reason=close_reason if closed_on else None,
                escalated_on=escalated_on,
                explained_until=explained_until,
                location=location,
            )
        )


def lines_of(engine: sa.Engine, as_of: dt.date = MON) -> dict[str, Any]:
    with engine.connect() as conn:
        recipients = case_manager_lines(conn, as_of, RULES, link, {})
    return {ln.case_ref: ln for lines in recipients.lines.values() for ln in lines}


def digests_of(engine: sa.Engine, period: str = "daily", as_of: dt.date = MON) -> TeamDigests:
    with engine.connect() as conn:
        return team_digests(conn, as_of, period, STAFF, {"rv-1": 10, "rv-2": 5}, RULES, link)


# --- "new" across weekends and holidays ------------------------------------------------


def test_on_a_monday_the_weekends_signals_are_new(store: sa.Engine) -> None:
    for day in (THU, FRI, SAT, SUN, MON):
        add(store, f"ZK-{day.isoformat()}", opened_on=day)
    new = {ref: ln.is_new for ref, ln in lines_of(store).items()}
    assert new == {
        "ZK-2026-11-26": False,
        "ZK-2026-11-27": False,  # Friday: the previous working day, so shown on Friday
        "ZK-2026-11-28": True,
        "ZK-2026-11-29": True,
        "ZK-2026-11-30": True,
    }


def test_after_christmas_the_holidays_signals_are_new() -> None:
    monday = dt.date(2026, 12, 28)  # Friday 25 and Saturday 26 December are holidays
    assert previous_working_day(monday) == dt.date(2026, 12, 24)
    assert not is_new(dt.date(2026, 12, 24), monday)
    assert is_new(dt.date(2026, 12, 25), monday)
    assert period_start(monday, "daily") == dt.date(2026, 12, 25)
    assert period_start(monday, "weekly") == dt.date(2026, 12, 22)
    assert period_start(dt.date(2026, 12, 29), "daily") == dt.date(2026, 12, 29)


@given(
    as_of=st.dates(dt.date(2024, 1, 1), dt.date(2030, 12, 31)),
    back=st.integers(min_value=0, max_value=12),
)
def test_new_means_no_working_day_from_opening_up_to_the_as_of_date(
    as_of: dt.date, back: int
) -> None:
    opened_on = as_of - dt.timedelta(days=back)
    between = (opened_on + dt.timedelta(days=d) for d in range(back))
    assert is_new(opened_on, as_of) == (not any(is_working_day(d) for d in between))
    assert is_new(opened_on, as_of) == (opened_on >= period_start(as_of, "daily"))


# --- explanations in the case manager's list --------------------------------------------


def test_an_expired_explanation_is_marked_and_a_valid_one_hides_the_signal(
    store: sa.Engine,
) -> None:
    add(store, "ZK-NONE")
    add(store, "ZK-EXPIRED", explained_until=SUN)
    add(store, "ZK-VALID-TODAY", explained_until=MON)
    add(store, "ZK-VALID", explained_until=dt.date(2027, 1, 31))
    lines = lines_of(store)
    assert set(lines) == {"ZK-NONE", "ZK-EXPIRED"}
    assert lines["ZK-EXPIRED"].explanation_expired
    assert not lines["ZK-NONE"].explanation_expired


# --- the team digest --------------------------------------------------------------------


def test_a_daily_digest_on_a_monday_covers_the_weekend(store: sa.Engine) -> None:
    for day in (FRI, SAT, SUN, MON):
        add(store, f"ZK-OPEN-{day.day}", opened_on=day)
        add(store, f"ZK-DONE-{day.day}", closed_on=day, close_reason="resolved")
    add(store, "ZK-CASE-CLOSED", closed_on=SUN, close_reason="case_closed")
    daily = digests_of(store).digests["T1"]
    rv1 = {m.staff_id: m for m in daily.managers}["rv-1"]
    assert (rv1.new, rv1.resolved) == (3, 3)  # Saturday, Sunday, Monday; not Friday
    assert daily.period_start == SAT
    weekly = digests_of(store, "weekly").digests["T1"]
    rv1 = {m.staff_id: m for m in weekly.managers}["rv-1"]
    assert (rv1.new, rv1.resolved) == (4, 4)  # Tuesday 24 up to Monday 30
    assert weekly.period_start == dt.date(2026, 11, 24)


def populate_filters(engine: sa.Engine) -> None:
    """Open signals from long ago, each left out of the counts for another reason."""
    add(engine, "ZK-A")  # counted
    add(engine, "ZK-F", rv="rv-2", rule_id="R2", severity="low")  # counted
    add(engine, "ZK-H", explained_until=THU)  # counted: its explanation ran out
    add(engine, "ZK-B", explained_until=dt.date(2026, 12, 31))  # explained
    add(engine, "ZK-C", rv=None)  # no case manager
    add(engine, "ZK-D", rule_id="OLD")  # rule no longer active
    add(engine, "ZK-E", rv="rv-9", team="T9")  # another team (without a lead)
    add(engine, "ZK-G", closed_on=FRI, close_reason="resolved")  # closed before the period


def test_the_trend_counts_like_the_open_figures(store: sa.Engine) -> None:
    populate_filters(store)
    digest = digests_of(store).digests["T1"]
    assert digest.totals.open_signals == 3
    assert digest.previous_open_signals == 3  # nothing changed in the period: no trend
    assert digest.totals.explained == 1
    assert {m.staff_id: m.explained for m in digest.managers} == {"rv-1": 1, "rv-2": 0}

    add(store, "ZK-I", opened_on=SAT)  # new in the period
    add(store, "ZK-J", closed_on=SUN, close_reason="resolved")  # resolved in the period
    digest = digests_of(store).digests["T1"]
    totals = digest.totals
    assert (totals.open_signals, totals.new, totals.resolved) == (4, 1, 1)
    assert digest.previous_open_signals == 4
    assert digest.previous_open_signals + totals.new - totals.resolved == totals.open_signals


def test_headline_and_trend_agree_when_signals_are_in_a_grace_gap(store: sa.Engine) -> None:
    """A signal in its grace gap ("tijdelijk afwezig") did not fire today: it is not in the
    headline, not in today's trend bar, and it was in the bars of the days it fired."""
    add(store, "ZK-1")
    add(store, "ZK-2")
    add(store, "ZK-GAP")
    with store.begin() as conn:
        conn.execute(
            signals.update()
            .where(signals.c.case_ref == "ZK-GAP")
            .values(last_seen_on=THU, gap_since=FRI, gap_reason="not_firing")
        )
    digest = digests_of(store).digests["T1"]
    counts = {p.day: p.open_signals for p in digest.trend}
    assert digest.totals.open_signals == 2
    assert counts[MON] == digest.totals.open_signals
    assert counts[THU] == 3 and counts[FRI] == 2
    assert digest.previous_open_signals == 2  # end of Friday: ZK-GAP no longer fired


def test_the_first_run_shows_no_trend(store: sa.Engine) -> None:
    add(store, "ZK-1", opened_on=SAT)
    add(store, "ZK-2", opened_on=MON)
    assert digests_of(store).digests["T1"].previous_open_signals is None
    add(store, "ZK-OTHER", rv="rv-9", team="T9", opened_on=FRI)  # history, elsewhere
    assert digests_of(store).digests["T1"].previous_open_signals == 0


def test_the_escalation_list_keeps_every_escalation_in_order(store: sa.Engine) -> None:
    """The digest holds every escalation (the mail shows ``escalations_shown`` of them and
    counts the rest); the explained one is not among them."""
    total = 53
    for i in range(total):
        add(
            store,
            f"ZK-{i:03d}",
            opened_on=LONG_AGO - dt.timedelta(days=i),
            escalated_on=LONG_AGO + dt.timedelta(days=20),
        )
    add(store, "ZK-EXPL", escalated_on=FRI, explained_until=dt.date(2027, 1, 1))
    digest = digests_of(store).digests["T1"]
    assert len(digest.escalations) == total
    assert digest.escalations_total == total
    assert digest.escalations_not_listed == 0
    assert digest.totals.escalated == total  # all escalated now; the explained one not
    assert digest.escalations[0].case_ref == f"ZK-{total - 1:03d}"  # the oldest first


ESCALATION = st.fixed_dictionaries(
    {
        "rule_id": st.sampled_from(["R1", "R2"]),
        "severity": st.sampled_from(["low", "medium", "high", "critical"]),
        "rv": st.sampled_from(["rv-1", "rv-2"]),
        "opened_on": st.sampled_from([LONG_AGO - dt.timedelta(days=200), LONG_AGO, THU]),
        "escalated_on": st.sampled_from([LONG_AGO, THU, FRI, MON]),
        "location": st.sampled_from([None, "", "L1", "L2"]),
    }
)


def _same_mail_listing_only_the_shown(store: sa.Engine, period: str, kept: int) -> TeamDigest:
    """The digest that lists only ``kept`` escalations and counts the rest gives the same
    mail, byte for byte, as the one listing every escalation; returns the capped one."""
    options = MailOptions(escalations_shown=kept, compare_case_managers=True)
    with store.connect() as conn:
        every = team_digests(conn, MON, period, STAFF, {"rv-1": 10}, RULES, link)
        capped = team_digests(
            conn, MON, period, STAFF, {"rv-1": 10}, RULES, link, escalations_kept=kept
        )
    assert set(capped.digests) == set(every.digests)
    lead = Recipient("tl-1", "tl@example.org")
    for team, digest in capped.digests.items():
        full = every.digests[team]
        assert digest.escalations == full.escalations[:kept]
        assert digest.escalations_total == full.escalations_total == len(full.escalations)
        assert compose_team_digest(lead, digest, options) == compose_team_digest(
            lead, full, options
        )
    return capped.digests["T1"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    found=st.lists(ESCALATION, max_size=15),
    kept=st.integers(0, 4),
    period=st.sampled_from(["daily", "weekly"]),
)
def test_a_digest_that_counts_the_escalations_it_does_not_show_mails_the_same(
    store: sa.Engine, found: list[dict[str, Any]], kept: int, period: str
) -> None:
    """Issue 19: at a million cases a line per escalation held hundreds of megabytes; the
    night keeps the ``escalations_shown`` most urgent per team and counts the rest (per
    signal, age and location), and the team lead's mail does not change."""
    with store.begin() as conn:
        conn.execute(signals.delete())
    for i, values in enumerate(found):
        add(store, f"ZK-{i:02d}", **values)
    _same_mail_listing_only_the_shown(store, period, kept)


def test_a_team_with_hundreds_of_escalations_keeps_only_the_shown(store: sa.Engine) -> None:
    """Past a few times the number shown the list is cut back while the signals are read
    (the most urgent stay, in order): the mail is still the same."""
    severities = ["low", "medium", "high", "critical"]
    for i in range(700):
        add(
            store,
            f"ZK-{i:03d}",
            rule_id="R1" if i % 3 else "R2",
            severity=severities[i % 4],
            opened_on=LONG_AGO - dt.timedelta(days=i % 150),
            escalated_on=MON if i % 7 == 0 else LONG_AGO,
            location=("L1", "L2", None)[i % 3],
        )
    for kept in (0, 1, 10):
        digest = _same_mail_listing_only_the_shown(store, "daily", kept)
        assert len(digest.escalations) == kept
        rest = digest.escalations_rest
        assert rest is not None and rest.total == 700 - kept


def test_signals_of_teams_without_a_team_lead_are_reported(store: sa.Engine) -> None:
    add(store, "ZK-1", rv="rv-9", team="T9")
    add(store, "ZK-2", rv="rv-9", team="T9", rule_id="R2")
    add(store, "ZK-3", rv="rv-9", team="T9", explained_until=dt.date(2027, 1, 1))
    add(store, "ZK-4", rv="rv-7", team="team-007")
    add(store, "ZK-5", rv="rv-8", team=None)
    add(store, "ZK-6")
    result = digests_of(store)
    assert set(result.digests) == {"T1"}
    assert result.problems == [
        "team T9 heeft geen teamleider in het medewerkersbestand: 2 open signalen staan in "
        "geen enkel teamoverzicht; leg een teamleider voor dit team vast",
        "team-007 heeft geen teamleider in het medewerkersbestand: 1 open signaal staat in "
        "geen enkel teamoverzicht; leg een teamleider voor dit team vast",
        "1 open signaal op zaken zonder team staat in geen enkel teamoverzicht; "
        "vul het team van deze zaken aan in het zaaksysteem",
    ]


# --- issue 7: the digest's figures per case manager, escalations, trend ----------------


def test_escalations_are_most_severe_first_then_oldest(store: sa.Engine) -> None:
    """Failure 6: 60 old medium escalations do not push 4 newer critical ones off the list."""
    for i in range(60):
        add(
            store,
            f"ZK-M{i:02d}",
            severity="medium",
            opened_on=dt.date(2026, 9, 1),
            escalated_on=FRI,
        )
    for i in range(4):
        add(
            store,
            f"ZK-C{i}",
            severity="critical",
            opened_on=dt.date(2026, 11, 10 + i),
            escalated_on=FRI,
        )
    digest = digests_of(store).digests["T1"]
    assert digest.escalations_total == 64
    assert len(digest.escalations) == 64
    assert [e.case_ref for e in digest.escalations[:4]] == ["ZK-C0", "ZK-C1", "ZK-C2", "ZK-C3"]
    assert {e.severity for e in digest.escalations[4:]} == {"medium"}


def test_escalations_since_the_last_digest_come_first(store: sa.Engine) -> None:
    """Issue 16: what escalated since the last digest leads, even before a more severe
    escalation the team lead saw before; then the most severe, then the oldest gap."""
    add(store, "ZK-OLD", severity="critical", opened_on=dt.date(2026, 10, 1),
        escalated_on=dt.date(2026, 11, 2))  # fmt: skip
    add(store, "ZK-NEW", severity="medium", opened_on=dt.date(2026, 11, 1), escalated_on=MON)
    add(store, "ZK-NEW2", severity="medium", opened_on=dt.date(2026, 10, 1), escalated_on=MON)
    digest = digests_of(store, as_of=MON).digests["T1"]
    assert [e.case_ref for e in digest.escalations] == ["ZK-NEW2", "ZK-NEW", "ZK-OLD"]


def test_managers_carry_name_median_age_and_trend(store: sa.Engine) -> None:
    staff = {k: dict(v) for k, v in STAFF.items()}
    staff["rv-1"]["name"] = "Kees Tolhuis"
    add(store, "ZK-1", opened_on=dt.date(2026, 11, 20))  # 10 days open on MON
    add(store, "ZK-2", opened_on=dt.date(2026, 11, 26))  # 4 days
    add(store, "ZK-3", opened_on=dt.date(2026, 11, 29))  # 1 day
    add(
        store,
        "ZK-4",
        opened_on=dt.date(2026, 11, 16),
        closed_on=dt.date(2026, 11, 25),
        close_reason="resolved",
    )
    with store.connect() as conn:
        digest = team_digests(conn, MON, "daily", staff, {"rv-1": 10}, RULES, link).digests["T1"]
        unnamed = team_digests(
            conn, MON, "daily", staff, {"rv-1": 10}, RULES, link, staff_names=False
        ).digests["T1"]
    rv1 = next(m for m in digest.managers if m.staff_id == "rv-1")
    assert rv1.name == "Kees Tolhuis"
    assert rv1.median_age_days == 4.0
    days = [p.day for p in digest.trend]
    assert len(days) == 8 and days[-1] == MON and all(is_working_day(d) for d in days)
    counts = {p.day: p.open_signals for p in digest.trend}
    assert counts[dt.date(2026, 11, 20)] == 2  # ZK-1 opened that day, ZK-4 still open
    assert counts[dt.date(2026, 11, 25)] == 1  # ZK-4 closed on the 25th
    assert counts[dt.date(2026, 11, 26)] == 2
    assert counts[MON] == 3
    assert rv1.trend == tuple(counts[d] for d in days)
    assert all(m.name is None for m in unnamed.managers)
    staff["rv-9"]["name"] = "Coen Bosveld"  # of team T9, with a case in team T1
    add(store, "ZK-9", rv="rv-9")
    with store.connect() as conn:
        digest = team_digests(conn, MON, "daily", staff, {}, RULES, link).digests["T1"]
    rv9 = next(m for m in digest.managers if m.staff_id == "rv-9")
    assert rv9.name is None  # not one of the team's own case managers


def test_a_baseline_row_is_never_new() -> None:
    """h6's ``signals.baseline`` column is read defensively: a row without it is no
    baseline; a row with baseline=True is shown as existing and never counted as new."""
    from regiesignaal.notifications.shared import is_baseline

    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        with_col = conn.execute(sa.select(sa.literal(True).label("baseline"))).one()
        without = conn.execute(sa.select(sa.literal(1).label("id"))).one()
    assert is_baseline(with_col) is True
    assert is_baseline(without) is False


# --- catch-up (issue 6, failure 5) ---------------------------------------------------


def test_last_reached_reads_only_sent_messages(store: sa.Engine) -> None:
    from regiesignaal.notifications.delivery import outbox as ob
    from regiesignaal.notifications.delivery.message import ComposedMessage

    msg = ComposedMessage("s", "t", "<p>h</p>")
    with store.begin() as conn:
        for day, status in ((THU, "sent"), (FRI, "failed"), (MON, "pending")):
            ob.enqueue(
                conn,
                run_id=1,
                as_of=day,
                kind="regievoerder",
                recipient_id="rv-1",
                recipient_email="rv-1@dtv.example",
                message=msg,
                sender_domain="dtv.example",
            )
            conn.execute(ob.outbox.update().where(ob.outbox.c.as_of == day).values(status=status))
    with store.connect() as conn:
        assert ob.last_reached(conn, "regievoerder", MON) == {"rv-1": THU}
        assert ob.last_reached(conn, "teamleider", MON) == {}


def test_new_counts_since_the_last_list_that_reached_the_reader(store: sa.Engine) -> None:
    add(store, "ZK-FRI", opened_on=FRI)
    add(store, "ZK-THU", opened_on=THU)
    add(store, "ZK-WED", opened_on=dt.date(2026, 11, 25))
    with store.connect() as conn:
        usual = case_manager_lines(conn, MON, RULES, link, {})
        caught_up = case_manager_lines(
            conn, MON, RULES, link, {}, last_reached={"rv-1": dt.date(2026, 11, 25)}
        )
    assert {ln.case_ref for ln in usual.lines["rv-1"] if ln.is_new} == set()
    assert {ln.case_ref for ln in caught_up.lines["rv-1"] if ln.is_new} == {"ZK-FRI", "ZK-THU"}


@pytest.mark.parametrize(
    ("period", "last_sent", "as_of", "expected"),
    [
        ("daily", THU, MON, FRI),  # Friday's digest was missed
        ("daily", FRI, MON, None),  # nothing missed over the weekend
        ("weekly", dt.date(2026, 11, 16), MON, dt.date(2026, 11, 17)),  # 23rd missed
        ("weekly", dt.date(2026, 11, 23), MON, None),  # on schedule
        ("weekly", dt.date(2026, 11, 16), dt.date(2026, 11, 24), dt.date(2026, 11, 17)),
        ("daily", None, MON, None),  # never sent: nothing to catch up
    ],
)
def test_missed_digest_days_are_caught_up(
    period: str, last_sent: dt.date | None, as_of: dt.date, expected: dt.date | None
) -> None:
    from regiesignaal.notifications.team_digest import missed_digest_starts

    def digest_day(day: dt.date) -> bool:
        return period == "daily" or day.weekday() == 0

    sent = {"tl-1": last_sent} if last_sent else {}
    starts = missed_digest_starts(as_of, period, digest_day, STAFF, sent)
    assert starts.get("T1") == expected


def test_a_caught_up_digest_covers_the_whole_period(store: sa.Engine) -> None:
    add(store, "ZK-FRI", opened_on=FRI)
    add(store, "ZK-THU", opened_on=THU)
    with store.connect() as conn:
        digest = team_digests(
            conn, MON, "daily", STAFF, {}, RULES, link, period_starts={"T1": FRI}
        ).digests["T1"]
    assert digest.missed_since == FRI and digest.period_start == FRI
    assert digest.totals.new == 1  # Friday's, which no digest showed


# --- the night's lists: lines made where they are rendered (issue 19) ------------------

SIGNAL = st.fixed_dictionaries(
    {
        "case_ref": st.sampled_from(["ZK-1", "ZK-2", "ZK-3", "ZK 4/ü"]),
        "rule_id": st.sampled_from(["R1", "R2", "R-WEG"]),  # R-WEG: no longer active
        "severity": st.sampled_from(["low", "medium", "high", "critical"]),
        "rv": st.sampled_from(["rv-1", "rv-2", "rv-'; --", None]),
        "opened_on": st.sampled_from([LONG_AGO, THU, FRI, MON]),
        "escalated_on": st.sampled_from([None, FRI]),
        "explained_until": st.sampled_from([None, SUN, MON, MON + dt.timedelta(days=9)]),
    }
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(found=st.lists(SIGNAL, max_size=12), covered=st.booleans())
def test_deferred_lines_are_the_lines_after_a_trip_to_a_worker(
    store: sa.Engine, found: list[dict[str, Any]], covered: bool
) -> None:
    """The night hands each list's signal rows to a worker that makes the lines
    (``defer=True``); after pickling there and back they are the lines made in place,
    in order, as many as ``line_count`` says, for the same case managers."""
    with store.begin() as conn:
        conn.execute(signals.delete())
    seen: set[tuple[str, str]] = set()
    for values in found:
        key = (values["case_ref"], values["rule_id"])
        if key not in seen:  # one open episode per case and rule
            seen.add(key)
            add(store, **values)
    if covered:  # R2 covers R1 on one case: R1 is named on R2's line
        with store.begin() as conn:
            c = signals.c
            conn.execute(
                signals.update()
                .where(c.case_ref == "ZK-1", c.rule_id == "R1")
                .values(covered_by="R2")
            )
    bonus = {"ZK-1": 30, "ZK 4/ü": 5}
    reached = {"rv-2": THU}
    # the night's bonuses are in a file (engine.spool.CaseBonus), read per group of lists
    in_file = CaseBonus()
    in_file.add(bonus.items())
    try:
        with store.connect() as conn:
            plain = list(iter_case_manager_lists(conn, MON, RULES, link, bonus, reached))
            later = list(
                iter_case_manager_lists(conn, MON, RULES, link, in_file, reached, defer=True)
            )
    finally:
        in_file.close()
    assert [m for m, _ in later] == [m for m, _ in plain]
    for (_, made), (_, rows) in zip(plain, later, strict=True):
        assert rows.lines == [] and rows.deferred is not None
        assert rows.line_count == len(made.lines)
        assert pickle.loads(pickle.dumps(rows)).signal_lines() == made.lines
