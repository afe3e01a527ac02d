"""Message composition: content, ranking, sections, escaping, sandboxing and privacy."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
from collections import defaultdict
from html.parser import HTMLParser
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from regiesignaal.engine.language.mailtext import sensitive_words, word_lists
from regiesignaal.notifications.compose import case_manager as compose_cm
from regiesignaal.notifications.compose import render as compose
from regiesignaal.notifications.compose.case_manager import compose_case_manager
from regiesignaal.notifications.compose.model import (
    SEVERITIES,
    EscalationLine,
    ManagerSummary,
    Recipient,
    RuleCount,
    SignalLine,
    TeamDigest,
    UpcomingLine,
)
from regiesignaal.notifications.compose.team_digest import compose_team_digest
from regiesignaal.notifications.delivery.message import ComposedMessage

AS_OF = dt.date(2026, 11, 28)
BASE_URL = "https://zaaksysteem.example/zaken/"
ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "body",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "th",
    "td",
    "h1",
    "h2",
    "p",
    "strong",
    "em",
    "a",
    "span",
    "br",
    "hr",
    "div",
}


def line(
    case_ref: str = "ZK-2026-000001",
    *,
    rule_id: str = "VG-FIRST",
    mail_title: str = "Eerste vertrekgesprek ontbreekt",
    severity: Any = "high",
    opened_on: dt.date = dt.date(2026, 11, 2),
    days_open: int | None = None,
    is_new: bool = False,
    reopened: bool = False,
    escalated: bool = False,
    escalates_on: dt.date | None = None,
    expected_action: str = "Plan het eerste vertrekgesprek.",
    link: str | None = None,
    score: float = 1.0,
    explanation_expired: bool = False,
    kind: str = "actie",
    newly_escalated: bool = False,
    covers: tuple[tuple[str, str], ...] = (),
    baseline: bool = False,
    mail_code: str = "",
) -> SignalLine:
    return SignalLine(
        case_ref=case_ref,
        rule_id=rule_id,
        mail_title=mail_title,
        severity=severity,
        opened_on=opened_on,
        days_open=(AS_OF - opened_on).days if days_open is None else days_open,
        is_new=is_new,
        reopened=reopened,
        escalated=escalated,
        escalates_on=escalates_on,
        expected_action=expected_action,
        link=BASE_URL + case_ref if link is None else link,
        score=score,
        explanation_expired=explanation_expired,
        kind=kind,
        newly_escalated=newly_escalated,
        covers=covers,
        baseline=baseline,
        mail_code=mail_code,
    )


RECIPIENT = Recipient("rv-001", "rv-001@dtv.example")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser


CM_SIGNAL = re.compile(r"^     (laag|middel|hoog|kritiek), ")
CM_ITEM = re.compile(r"^(\d+)\. Zaak (\S+)")
INTRO = re.compile(
    r"Vandaag (\d+) van je (\d+) za(?:ak|ken) \((\d+) open signa(?:al|len): (\d+) nieuw"
    r"(?: sinds \S+)?, (\d+) geëscaleerd\)"
)


def section(text: str, title: str) -> str:
    """The plain-text section under ``== <title>``, up to the next section or the footer."""
    m = re.search(rf"(?ms)^== {re.escape(title)}.*?$(.*?)(?=^== |^--$|\Z)", text)
    return m.group(1) if m else ""


def intro(msg: ComposedMessage) -> dict[str, int]:
    m = INTRO.search(msg.text)
    assert m, msg.text[:400]
    today, cases, signals, new, esc = map(int, m.groups())
    return {"today": today, "cases": cases, "signals": signals, "new": new, "escalated": esc}


def today_refs(msg: ComposedMessage) -> list[str]:
    return [m.group(2) for raw in section(msg.text, "Vandaag").splitlines()
            if (m := CM_ITEM.match(raw))]  # fmt: skip


def rest_cases(msg: ComposedMessage) -> tuple[int, int]:
    """(cases the rest section says it holds, the sum of its counts per kind)."""
    m = re.search(r"^== De rest \((\d+) za(?:ak|ken)\) ==$", msg.text, re.M)
    if m is None:
        return 0, 0
    counted = sum(
        int(n) for n in re.findall(r"^- (\d+) za(?:ak|ken) met", section(msg.text, "De rest"), re.M)
    )
    return int(m.group(1)), counted


# --- the case manager's daily list -------------------------------------------------


def test_subject_counts_today_new_and_upcoming_in_dutch_date_format() -> None:
    lines = [line(f"ZK-2026-{i:06d}", is_new=i < 3) for i in range(12)]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert msg.subject == "Regiesignaal 28-11-2026: 10 voor vandaag, 3 nieuw"
    soon = [UpcomingLine("ZK-9", "Titel", "R01", AS_OF + dt.timedelta(days=3), BASE_URL)]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines[:2], upcoming=soon)
    assert msg.subject == "Regiesignaal 28-11-2026: 2 voor vandaag, 2 nieuw, 1 binnenkort"


def test_line_shows_the_required_fields_and_no_rule_id() -> None:
    """The mail names a signal by its neutral code and title, never its rule id."""
    ln = line(
        "ZK-2026-000123",
        rule_id="AMV-RECEPTION",
        mail_title="Vastlegging ontbreekt",
        severity="critical",
        opened_on=dt.date(2026, 11, 2),
        expected_action="Plan een check of leg vast waarom die niet nodig is.",
        mail_code="R07",
    )
    msg = compose_case_manager(RECIPIENT, AS_OF, [ln])
    for body in (msg.subject, msg.text, msg.html, msg.attachment_html or ""):
        assert "AMV" not in body and "RECEPTION" not in body
    for body in (msg.text, msg.html):
        assert "ZK-2026-000123" in body
        assert "R07" in body
        assert "Vastlegging ontbreekt" in body
        assert "kritiek" in body
        assert "sinds 02-11-2026 (26 dagen)" in body
        assert "Plan een check of leg vast waarom die niet nodig is." in body
        assert "toelichting" in body and "einddatum" in body  # the footer
    assert f'<a href="{BASE_URL}ZK-2026-000123"' in msg.html
    assert f"{BASE_URL}ZK-2026-000123" in msg.text


@pytest.mark.parametrize(
    ("severity", "dutch"),
    [("low", "laag"), ("medium", "middel"), ("high", "hoog"), ("critical", "kritiek")],
)
def test_severity_is_shown_in_dutch(severity: str, dutch: str) -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(severity=severity)])
    assert f"     {dutch}, sinds " in msg.text
    assert f">{dutch}</span>" in msg.html


def test_one_day_is_singular() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(opened_on=dt.date(2026, 11, 27))])
    assert "sinds 27-11-2026 (1 dag)" in msg.text


def test_one_item_per_case_actions_lead_and_each_action_once() -> None:
    """A case with several signals is one item; a shared action is shown once; the
    recording gaps of the case collapse into one line below its actions."""
    shared = "Plan het eerste vertrekgesprek."
    lines = [
        line("ZK-A", mail_title="Eerste", severity="low", expected_action=shared),
        line("ZK-B", mail_title="Ander", severity="high"),
        line("ZK-A", mail_title="Tweede", severity="high", expected_action=shared),
        line("ZK-A", mail_title="Vast een", severity="critical", kind="vastlegging",
             mail_code="R03"),
        line("ZK-A", mail_title="Vast twee", severity="low", kind="vastlegging"),
    ]  # fmt: skip
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert today_refs(msg) == ["ZK-A", "ZK-B"]  # the critical recording ranks the case
    block = msg.text.split("Zaak ZK-A")[1].split("Zaak ZK-B")[0]
    assert block.index("Tweede") < block.index("Eerste") < block.index("Vastlegging aanvullen")
    assert block.count(shared) == 1
    assert "Vastlegging aanvullen: 2 punten: Vast een (R03); Vast twee" in " ".join(block.split())
    assert msg.html.count(">ZK-A</a>") == 1


def test_a_covering_signal_names_what_it_covers() -> None:
    ln = line("ZK-1", mail_title="Vertrekcheck", covers=(("Medische check", "R09"),))
    msg = compose_case_manager(RECIPIENT, AS_OF, [ln])
    assert "omvat ook: Medische check (R09)" in msg.text
    assert "omvat ook: Medische check (R09)" in msg.html


def test_the_age_of_the_gap_reads_with_its_label() -> None:
    ln = dataclasses.replace(
        line("ZK-1", opened_on=AS_OF, days_open=111),
        began_on=dt.date(2026, 8, 9),
        since_label="termijn eindigde op",
    )
    msg = compose_case_manager(RECIPIENT, AS_OF, [ln])
    assert "termijn eindigde op 09-08-2026 (111 dagen)" in msg.text
    assert "sinds 28-11-2026" not in msg.text


def test_protected_cases_lead_and_are_never_cut() -> None:
    """Issue 16: a critical signal new or escalated since the reader's last list is always
    in the mail, whatever the budget; the budget is filled with the rest by the ranking."""
    lines = [line(f"ZK-P{i:02d}", severity="critical", is_new=True) for i in range(13)]
    lines += [line(f"ZK-E{i:02d}", severity="critical", escalated=True, newly_escalated=i < 2)
              for i in range(4)]  # fmt: skip
    lines += [line(f"ZK-H{i:02d}", severity="high", escalated=True) for i in range(5)]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    shown = today_refs(msg)
    assert len(shown) == 15 and set(shown) == {f"ZK-P{i:02d}" for i in range(13)} | {
        "ZK-E00",
        "ZK-E01",
    }
    assert "kritiek en nieuw of net geëscaleerd" in msg.text
    few = compose_case_manager(RECIPIENT, AS_OF, lines[13:])
    assert today_refs(few)[:2] == ["ZK-E00", "ZK-E01"] and len(today_refs(few)) == 9


@settings(max_examples=80, deadline=None)
@given(
    lines=st.lists(
        st.builds(
            line,
            case_ref=st.sampled_from([f"ZK-{i:03d}" for i in range(40)]),
            mail_title=st.sampled_from(["Titel een", "Titel twee", "Titel drie"]),
            severity=st.sampled_from(SEVERITIES),
            days_open=st.integers(min_value=0, max_value=400),
            score=st.floats(min_value=0, max_value=500, allow_nan=False),
            is_new=st.booleans(),
            escalated=st.booleans(),
            newly_escalated=st.booleans(),
            escalates_on=st.none() | st.dates(dt.date(2026, 11, 1), dt.date(2027, 1, 1)),
            kind=st.sampled_from(["actie", "vastlegging"]),
        ),
        max_size=80,
    ),
    daily_items=st.integers(1, 15),
    baseline_every=st.integers(2, 7),
)
def test_the_budget_holds_the_protected_tier_is_never_cut_and_the_counts_add_up(
    lines: list[SignalLine], daily_items: int, baseline_every: int
) -> None:
    lines = [
        dataclasses.replace(ln, baseline=i % baseline_every == 0, newly_escalated=(
            ln.newly_escalated and ln.escalated))
        for i, ln in enumerate(lines)
    ]  # fmt: skip
    options = compose.MailOptions(daily_items=daily_items)
    sections = compose_cm.split_daily(lines, AS_OF, options)
    groups = sections.all
    assert sorted(g.case_ref for g in groups) == sorted({ln.case_ref for ln in lines})
    assert sum(len(g.lines) for g in groups) == len(lines)
    protected = {ln.case_ref for ln in lines if ln.protected}
    assert protected <= {g.case_ref for g in sections.today}  # never cut
    assert len(sections.today) <= max(daily_items, len(protected))  # the budget
    assert len(sections.today) == min(len(groups), max(daily_items, len(protected)))
    keys = [g.key(AS_OF) for g in groups]
    assert keys == sorted(keys)
    msg = compose_case_manager(RECIPIENT, AS_OF, lines, options)
    counts = intro(msg) if lines else None
    if counts is not None:
        assert counts["today"] == len(today_refs(msg)) == len(sections.today)
        assert counts["cases"] == len(groups)
        assert counts["signals"] == len(lines)
        assert counts["new"] == sum(1 for ln in lines if ln.is_new and not ln.baseline)
        assert counts["escalated"] == sum(1 for ln in lines if ln.escalated)
        said, counted = rest_cases(msg)
        assert said == counted == len(groups) - len(sections.today)
    assert msg.attachment_html is not None
    for g in groups:
        assert f">{g.case_ref}</a>" in msg.attachment_html  # the whole list holds every case


def test_upcoming_deadlines_soonest_first_and_capped() -> None:
    soon = [
        UpcomingLine(f"ZK-{i}", "Eerste vertrekgesprek", "R18", AS_OF + dt.timedelta(days=i),
                     BASE_URL + f"ZK-{i}")
        for i in range(12, 0, -1)
    ]  # fmt: skip
    msg = compose_case_manager(RECIPIENT, AS_OF, [], compose.MailOptions(daily_items=3),
                               upcoming=soon)  # fmt: skip
    block = section(msg.text, "Binnenkort")
    assert block.index("ZK-1,") < block.index("ZK-2,") < block.index("ZK-3,")
    assert "uiterlijk 29-11-2026 (morgen)" in block and "ZK-4," not in block
    assert "... en nog 9 (in de hele lijst)." in msg.text
    assert "12 binnenkort" in msg.text
    assert msg.attachment_html is not None and ">ZK-12</a>" in msg.attachment_html


def test_what_was_resolved_since_the_last_list_is_said() -> None:
    msg = compose_case_manager(
        RECIPIENT, AS_OF, [line("ZK-1")], resolved=["ZK-7", "ZK-8"], resolved_signals=3
    )
    assert "== Opgelost sinds je vorige lijst ==\n3 signalen in 2 zaken: ZK-7, ZK-8." in msg.text
    assert "opgelost sinds je vorige lijst: 3 signalen in 2 zaken" in msg.text


def test_a_lapsed_explanation_is_told_even_when_its_case_is_not_shown_today() -> None:
    """Issue 18: the reader set the signal aside; when the case changed under the
    explanation they hear of it, one line, whatever the case's rank."""
    urgent = [line(f"ZK-{i:03d}", severity="critical", escalated=True) for i in range(12)]
    lapsed = dataclasses.replace(
        line("ZK-900", severity="low", mail_code="R04", mail_title="Geen recent contact"),
        is_new=True,
        reopened=True,
        explanation_lapsed=True,
    )
    old_lapse = dataclasses.replace(line("ZK-901", severity="low"), explanation_lapsed=True)
    msg = compose_case_manager(RECIPIENT, AS_OF, [*urgent, lapsed, old_lapse])
    assert "ZK-900" not in today_refs(msg)
    told = section(msg.text, "Toelichting vervallen")
    assert "Zaak ZK-900: Geen recent contact (R04)" in told
    assert "ZK-901" not in told, "told once, on the list after it lapsed"
    assert "Toelichting vervallen" in msg.html and "ZK-900" in msg.html
    # shown today in full: marked there, not told twice
    few = compose_case_manager(RECIPIENT, AS_OF, [lapsed])
    assert "ZK-900" in today_refs(few) and "Toelichting vervallen ==" not in few.text
    assert "toelichting vervallen: gegevens gewijzigd" in " ".join(few.text.split())


def test_the_whole_list_is_attached_or_in_the_mail_on_its_weekday() -> None:
    lines = [line(f"ZK-{i:03d}") for i in range(30)]
    attached = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert attached.attachment_html is not None and "== De hele lijst ==" not in attached.text
    assert "De hele lijst staat in de bijlage van elke dagelijkse lijst." in attached.text
    monday = dt.date(2026, 11, 30)
    weekly = compose.MailOptions(full_list="weekly")
    on_monday = compose_case_manager(RECIPIENT, monday, lines, weekly)
    assert on_monday.attachment_html is None and "== De hele lijst ==" in on_monday.text
    whole = on_monday.text.split("== De hele lijst ==")[1]
    assert all(f"ZK-{i:03d}" in whole for i in range(30)) and "ZK-029</a>" in on_monday.html
    on_tuesday = compose_case_manager(RECIPIENT, monday + dt.timedelta(days=1), lines, weekly)
    assert "== De hele lijst ==" not in on_tuesday.text and on_tuesday.attachment_html is None
    assert "elke maandag in deze mail" in on_tuesday.text


def test_baseline_signals_are_existing_never_new() -> None:
    lines = [line("ZK-OLD", is_new=True, baseline=True), line("ZK-FRESH", is_new=True)]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert msg.subject == "Regiesignaal 28-11-2026: 2 voor vandaag, 1 nieuw"
    old = msg.text.split("Zaak ZK-OLD")[1].split("\n\n")[0]
    assert "bestaand" in old and "nieuw" not in old


def test_new_since_the_last_list_that_reached_the_reader_is_said() -> None:
    msg = compose_case_manager(
        RECIPIENT, AS_OF, [line(is_new=True)], new_since=dt.date(2026, 11, 24)
    )
    assert "1 nieuw sinds 24-11-2026" in msg.text
    assert "nieuw sinds 24-11-2026" in msg.html


def test_expired_explanation_is_marked() -> None:
    lines = [line("ZK-EXP", explanation_expired=True), line("ZK-PLAIN")]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert "toelichting verlopen" in msg.text.split("Zaak ZK-EXP")[1].split("\n\n")[0]
    assert "toelichting verlopen" not in msg.text.split("Zaak ZK-PLAIN")[1].split("\n\n")[0]
    assert msg.html.count("<em>toelichting verlopen</em>") == 1


def test_an_expected_action_ending_in_a_newline_adds_no_blank_line() -> None:
    action = "Plan het eerste vertrekgesprek\nen leg het vast.\n"
    msg = compose_case_manager(RECIPIENT, AS_OF, [line("ZK-1", expected_action=action)])
    block = msg.text.split("Zaak ZK-1")[1].split("\n\n")[0]
    assert "Te doen: Plan het eerste vertrekgesprek" in block and BASE_URL + "ZK-1" in block
    assert "en leg het vast." in msg.html


def test_html_of_500_signals_stays_small_and_the_attachment_hides_nothing() -> None:
    """Gmail clips HTML above about 102 KB: the daily mail stays far below that at 500
    signals, and the attached whole list too while still holding every case."""
    action = (
        "Laat vóór het vertrek een check uitvoeren en leg die vast, of stel het "
        "vertrek uit; leg bij dit signaal een toelichting vast als dat niet kan."
    )
    lines = [
        line(
            f"ZK-2026-{i // 2:06d}",
            mail_title=f"Vastlegging ontbreekt bij onderdeel {i % 7}",
            severity=SEVERITIES[i % 4],
            opened_on=AS_OF - dt.timedelta(days=i % 90),
            is_new=i % 5 == 0,
            reopened=i % 11 == 0,
            escalated=i % 7 == 0,
            escalates_on=AS_OF + dt.timedelta(days=i % 9),
            expected_action=action + f" ({i % 3})",
            link=f"https://zaaksysteem.dtv.example/zaken/ZK-2026-{i // 2:06d}/overzicht",
            explanation_expired=i % 13 == 0,
        )
        for i in range(500)
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert len(msg.html.encode("utf-8")) < 60_000
    assert msg.attachment_html is not None
    assert len(msg.attachment_html.encode("utf-8")) < 100_000
    for i in range(250):
        assert f">ZK-2026-{i:06d}</a>" in msg.attachment_html
    protected = len({ln.case_ref for ln in lines if ln.protected})
    assert protected > compose.DEFAULT_OPTIONS.daily_items  # the tier outgrows the budget
    assert len(today_refs(msg)) == protected
    assert intro(msg)["cases"] == 250 and rest_cases(msg) == (250 - protected,) * 2


def test_minimal_detail_shows_per_case_only_reference_count_and_link() -> None:
    lines = [
        line("ZK-1", mail_title="Geheime titel", expected_action="Geheime actie.", escalated=True),
        line("ZK-1", mail_title="Andere titel"),
        line("ZK-2", mail_title="Derde titel"),
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines, compose.MailOptions(detail="minimal"))
    for body in (msg.text, msg.html, msg.attachment_html or ""):
        assert "titel" not in body and "Geheime" not in body
        assert "ZK-1" in body and "2 signalen" in body and "1 signaal" in body
    assert "Zaak ZK-1\n   2 signalen\n" in msg.text
    assert f"{BASE_URL}ZK-1" in msg.text and f'href="{BASE_URL}ZK-2"' in msg.html


@pytest.mark.parametrize(
    ("case_ref", "encoded"),
    [("Z-7#intern", "Z-7%23intern"), ("Z/8", "Z%2F8"), ("Z?9", "Z%3F9"), ("Z 10", "Z%2010")],
)
def test_case_links_encode_the_reference(case_ref: str, encoded: str) -> None:
    """``Z-7#intern`` must not open Z-7."""
    from regiesignaal.jobs.config import Settings

    link = Settings().case_link(case_ref)
    assert link == f"https://zaaksysteem.dtv.example/zaken/{encoded}"
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(case_ref, link=link)])
    assert f'href="https://zaaksysteem.dtv.example/zaken/{encoded}"' in msg.html
    assert f">{case_ref}</a>" in msg.html


def test_reopened_is_marked() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(is_new=True, reopened=True)])
    assert "nieuw, opnieuw open" in msg.text
    assert "<em>opnieuw open</em>" in msg.html


def test_unsafe_link_is_not_rendered_as_a_link() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line("ZK-X", link="javascript:alert(1)")])
    for body in (msg.html, msg.text, msg.attachment_html or ""):
        assert "javascript:" not in body
    assert "ZK-X" in msg.html  # the reference is still there, as plain text


def test_html_special_characters_in_a_mail_title_are_escaped() -> None:
    title = '<script>alert("x")</script> & <b>vet</b>'
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(mail_title=title)])
    for html in (msg.html, msg.attachment_html or ""):
        assert "<script>" not in html and "<b>" not in html
        assert (
            "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;vet&lt;/b&gt;" in html
        )
    parsed = parse_html(msg.html)
    assert "script" not in parsed.tags
    assert title in "".join(parsed.text)
    assert title in msg.text  # plain text is not escaped


@settings(max_examples=60)
@given(
    title=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80),
    action=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80),
)
def test_any_title_or_action_renders_as_text_never_as_markup(title: str, action: str) -> None:
    msg = compose_case_manager(
        RECIPIENT, AS_OF, [line(mail_title=title, expected_action=action, is_new=True)]
    )
    for html in (msg.html, msg.attachment_html or ""):
        parsed = parse_html(html)
        assert set(parsed.tags) <= ALLOWED_TAGS
        text = "".join(parsed.text)
        assert title.strip() in text  # surrounding whitespace is dropped on purpose
        assert action.strip() in text


def test_html_has_no_external_resources() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line("ZK-1"), line("ZK-2", is_new=True)])
    parsed = parse_html(msg.html)
    assert set(parsed.tags) <= ALLOWED_TAGS
    assert all(name != "src" for name, _ in parsed.attrs)
    hrefs = [value or "" for name, value in parsed.attrs if name == "href"]
    assert sorted(hrefs) == [BASE_URL + "ZK-1", BASE_URL + "ZK-2"]
    assert '<html lang="nl">' in msg.html


def test_empty_list_still_renders() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [])
    assert msg.subject == "Regiesignaal 28-11-2026: 0 voor vandaag"
    assert "Geen open signalen." in msg.text


# --- templates are sandboxed -------------------------------------------------------


def test_templates_run_in_a_sandbox_with_strict_undefined() -> None:
    env = compose.environment()
    assert isinstance(env, SandboxedEnvironment)
    with pytest.raises(SecurityError):
        env.from_string("{{ x.__class__.__mro__ }}").render(x="")
    with pytest.raises(SecurityError):
        env.from_string("{{ f.__globals__ }}").render(f=compose.format_date)
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()


# --- the team digest ---------------------------------------------------------------


def make_digest(period: Any = "weekly") -> TeamDigest:
    return TeamDigest(
        team="T-ZUID",
        as_of=AS_OF,
        period=period,
        managers=[
            ManagerSummary(
                "rv-002", 20, {"low": 3, "high": 2}, new=1, resolved=2, escalated=1, explained=2
            ),
            ManagerSummary(
                "rv-001", 8, {"critical": 1, "medium": 3}, new=2, resolved=0, escalated=0
            ),
            ManagerSummary("rv-003", 0, {}, new=0, resolved=0, escalated=0),
        ],
        rules=[
            RuleCount("VG-FIRST", "Eerste vertrekgesprek ontbreekt", open=4, new=1),
            RuleCount("MED-CHECK", "Vastlegging <ontbreekt>", open=5, new=2, mail_code="R03"),
        ],
        escalations=[
            EscalationLine("ZK-2026-000042", "VG-FIRST", "Eerste vertrekgesprek", 40, "rv-002"),
        ],
        previous_open_signals=7,
    )


COMPARE = compose.MailOptions(compare_case_managers=True)


def test_team_digest_figures() -> None:
    msg = compose_team_digest(Recipient("tl-01", "tl-01@dtv.example"), make_digest())
    assert msg.subject == (
        "Regiesignaal weekoverzicht team T-ZUID 28-11-2026: 9 open, 3 nieuw, 1 nu geëscaleerd"
    )
    text = msg.text
    assert "kritiek 1, hoog 2, middel 3, laag 3" in text
    assert "+2 ten opzichte van de vorige periode (7)" in text
    assert "* Vastlegging <ontbreekt> (R03): 5 open, 2 nieuw" in text
    assert text.index("Vastlegging <ontbreekt>") < text.index("Eerste vertrekgesprek ontbreekt")
    assert "* hoog | ZK-2026-000042 | Eerste vertrekgesprek | 40 dagen" in text
    assert "Nieuw afgelopen week: 3, opgelost: 2, nu geëscaleerd: 1, toegelicht: 2." in text
    assert "== Nu geëscaleerd (1) ==" in text
    assert "De andere" not in text
    for body in (msg.subject, text, msg.html):
        assert "VG-FIRST" not in body and "MED-CHECK" not in body  # no rule ids in mail
    html = msg.html
    assert "Vastlegging &lt;ontbreekt&gt;" in html
    assert set(parse_html(html).tags) <= ALLOWED_TAGS


def test_by_default_the_digest_names_and_compares_no_case_manager() -> None:
    """Issue 16/18: a view of individual staff figures is a personnel monitoring system
    (WOR art. 27(1)(l)): never the default. Switched on, each case manager's figures are
    shown, and still nobody is ranked or marked."""
    digest = dataclasses.replace(
        make_digest(),
        managers=[
            dataclasses.replace(m, name=f"Naam {m.staff_id}") for m in make_digest().managers
        ],
    )
    plain = compose_team_digest(RECIPIENT, digest)
    for body in (plain.text, plain.html):
        assert "rv-00" not in body and "Naam" not in body and "per regievoerder" not in body
    compared = compose_team_digest(RECIPIENT, digest, COMPARE)
    text = compared.text
    assert "* Naam rv-002 (rv-002): 5 open signalen in 20 zaken (2,5 per 10 zaken)" in text
    assert "* Naam rv-001 (rv-001): 4 open signalen in 8 zaken (5,0 per 10 zaken)" in text
    assert "nieuw 1, opgelost 2, nu geëscaleerd 1, toegelicht 2" in text
    assert "| Naam rv-002 (rv-002)" in text  # an escalation names its case manager then
    assert "afwijkend" not in text and "afwijkend" not in compared.html  # nobody is marked
    html = compared.html
    assert html.index(">Naam rv-001 (rv-001)<") < html.index(">Naam rv-002 (rv-002)<")
    hidden = compose_team_digest(RECIPIENT, digest, dataclasses.replace(COMPARE, staff_names=False))
    assert "Naam" not in hidden.text and "* rv-001: 4 open signalen" in hidden.text


def test_digest_trend_is_scaled_to_its_range_with_a_text_alternative() -> None:
    from regiesignaal.notifications.compose.model import TrendPoint

    days = [AS_OF - dt.timedelta(days=7 * k) for k in range(3, -1, -1)]
    digest = dataclasses.replace(
        make_digest(),
        trend=tuple(TrendPoint(d, n) for d, n in zip(days, (1000, 1010, 1005, 1020), strict=True)),
    )
    msg = compose_team_digest(RECIPIENT, digest)
    bars = [ln for ln in msg.text.splitlines() if re.match(r"^\d\d-\d\d #", ln)]
    widths = [ln.count("#") for ln in bars]
    assert widths[0] < widths[2] < widths[1] < widths[3] == 20  # the range, not from zero
    assert widths[0] >= 1 and "(balken van 1000 tot 1020)" in msg.text
    assert "In tekst: " in msg.html and "28-11: 1020" in msg.html
    assert msg.html.count('bgcolor="#154273"') == 4


def test_daily_digest_wording() -> None:
    msg = compose_team_digest(Recipient("tl-01", "tl@dtv.example"), make_digest("daily"))
    assert msg.subject.startswith("Regiesignaal dagoverzicht team T-ZUID 28-11-2026")
    assert "Nieuw vandaag: 3" in msg.text


def test_totals_sum_the_managers() -> None:
    totals = make_digest().totals
    assert totals.open_signals == 9
    assert totals.open_by_severity == {"low": 3, "medium": 3, "high": 2, "critical": 1}
    assert (totals.new, totals.resolved, totals.escalated, totals.open_cases) == (3, 2, 1, 28)
    assert totals.explained == 2


def test_daily_digest_after_a_weekend_says_since_when() -> None:
    monday = dt.date(2026, 11, 30)
    digest = dataclasses.replace(
        make_digest("daily"), as_of=monday, period_start=dt.date(2026, 11, 28)
    )
    msg = compose_team_digest(Recipient("tl-01", "tl@dtv.example"), digest)
    assert "Nieuw sinds 28-11-2026: 3, opgelost: 2" in msg.text
    assert "Nieuw sinds 28-11-2026: <strong>3</strong>" in msg.html
    same_day = dataclasses.replace(digest, period_start=monday)
    assert "Nieuw vandaag: 3" in compose_team_digest(RECIPIENT, same_day).text


def test_escalations_in_full_up_to_the_budget_and_the_rest_counted() -> None:
    """Issue 16: the digest shows ``escalations_shown`` escalations in full and counts the
    rest per signal, age and location, never per case manager."""
    everything = [
        EscalationLine(
            f"ZK-{i:04d}",
            "VG-FIRST" if i % 2 else "MED-CHECK",
            "Eerste vertrekgesprek" if i % 2 else "Medische check",
            (5, 20, 60, 200)[i % 4],
            f"rv-00{i % 3}",
            severity="critical" if i % 10 == 0 else "medium",
            mail_code="R18" if i % 2 else "R09",
            location=f"loc-{i % 3}",
        )
        for i in range(300)
    ]
    digest = dataclasses.replace(
        make_digest(),
        escalations=everything,
        escalations_total=300,
        rules=[
            RuleCount("VG-FIRST", "Eerste vertrekgesprek", open=150, new=0, mail_code="R18"),
            RuleCount("MED-CHECK", "Medische check", open=150, new=0, mail_code="R09"),
        ],
    )
    msg = compose_team_digest(RECIPIENT, digest, compose.MailOptions(escalations_shown=12))
    shown = re.findall(r"^\* (?:kritiek|middel) \| (ZK-\d+)", msg.text, re.M)
    assert shown == [e.case_ref for e in everything[:12]]
    assert "De andere 288, geteld" in msg.text
    flat = " ".join(msg.text.split())
    ages = re.search(r"per ouderdom: (.*?) - per locatie", flat)
    assert ages and sum(int(n) for n in re.findall(r": (\d+)", ages.group(1))) == 288
    places = re.search(r"per locatie: (.*?) ==", flat)
    assert places and sum(int(n) for n in re.findall(r": (\d+)", places.group(1))) == 288
    per_rule = re.findall(r"^\* .* \((R18|R09)\): 150 open, 0 nieuw, (\d+) geëscaleerd$",
                          msg.text, re.M)  # fmt: skip
    assert sorted(per_rule) == [("R09", "144"), ("R18", "144")]
    assert "rv-00" not in msg.text and "rv-00" not in msg.html
    assert len(msg.text.splitlines()) < 80


def test_counts_take_the_dutch_singular_and_plural() -> None:
    digest = TeamDigest(
        team="T-ZUID",
        as_of=AS_OF,
        period="daily",
        managers=[
            ManagerSummary("rv-001", 1, {"high": 1}, new=0, resolved=0, escalated=0),
            ManagerSummary("rv-002", 2, {"high": 2}, new=0, resolved=0, escalated=0),
        ],
    )
    msg = compose_team_digest(RECIPIENT, digest, COMPARE)
    assert "* rv-001: 1 open signaal in 1 zaak (10,0 per 10 zaken)" in msg.text
    assert "* rv-002: 2 open signalen in 2 zaken (10,0 per 10 zaken)" in msg.text
    assert "Het team heeft 3 open signalen in 3 open zaken" in msg.text
    one = dataclasses.replace(digest, managers=digest.managers[:1])
    one_msg = compose_team_digest(RECIPIENT, one)
    assert "Het team heeft 1 open signaal in 1 open zaak" in one_msg.text
    assert "Het team heeft <strong>1 open signaal</strong> in <strong>1</strong> open zaak" in (
        one_msg.html
    )
    assert [compose.count_nl(n, "team", "teams") for n in (0, 1, 2)] == [
        "0 teams",
        "1 team",
        "2 teams",
    ]


@pytest.mark.parametrize(
    ("team", "label"),
    [
        ("T-ZUID", "team T-ZUID"),
        ("team-001", "team-001"),
        ("Team Noord", "Team Noord"),
        ("teamwork", "team teamwork"),
    ],
)
def test_the_word_team_is_not_repeated(team: str, label: str) -> None:
    assert compose.team_label(team) == label
    msg = compose_team_digest(RECIPIENT, dataclasses.replace(make_digest(), team=team))
    assert msg.subject.startswith(f"Regiesignaal weekoverzicht {label} 28-11-2026")
    for body in (msg.subject, msg.text, msg.html):
        assert "team team-" not in body.lower()
        assert f"{label}, 28-11-2026" in body or body is msg.subject


# --- privacy: render a realistic synthetic run and scan every message --------------

FIRST = ["Anna", "Bram", "Chantal", "Daan", "Eva", "Fatima", "Gijs", "Hanna", "Ilse", "Joris"]
LAST = ["de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "de Boer"]
NATIONALITIES = ["Eritrese", "Marokkaanse", "Georgische", "Algerijnse", "Nigeriaanse"]
MEDICAL = ["diabetes", "PTSS", "hartklachten", "zwangerschap", "tuberculose"]
MAIL_WORDS = word_lists().forbidden
RULES = [
    ("VG-FIRST", "Eerste vertrekgesprek ontbreekt", "high", "Plan het eerste vertrekgesprek."),
    ("MED-CHECK", "Vastlegging ontbreekt", "high", "Plan de verplichte check of leg vast."),
    ("CONTACT-30D", "Geen recent contact", "medium", "Neem contact op."),
    ("STRATEGY-STALE", "Vertrekstrategie verouderd", "low", "Werk de strategie bij."),
    ("AMV-RECEPTION", "Controle niet vastgelegd", "critical", "Voer de controle uit."),
]


def synthetic_world(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A staff directory with names, and cases with data that must never reach a mail."""
    rnd = random.Random(seed)
    staff = []
    for team in ("T-NOORD", "T-ZUID"):
        staff.append(
            {
                "id": f"tl-{team.lower()}",
                "name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                "email": f"tl-{team.lower()}@dtv.example",
                "role": "teamleider",
                "team": team,
            }
        )
        for n in range(4):
            sid = f"rv-{team[2:].lower()}-{n}"
            staff.append(
                {
                    "id": sid,
                    "name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                    "email": f"{sid}@dtv.example",
                    "role": "regievoerder",
                    "team": team,
                }
            )
    managers = [s for s in staff if s["role"] == "regievoerder"]
    cases = []
    for i in range(60):
        rv = rnd.choice(managers)
        birth = dt.date(rnd.randint(1960, 2008), rnd.randint(1, 12), rnd.randint(1, 28))
        cases.append(
            {
                "case_ref": f"ZK-2026-{i:06d}",
                "status": "open",
                "opened_on": AS_OF - dt.timedelta(days=rnd.randint(1, 300)),
                "regievoerder": rv["id"],
                "team": rv["team"],
                "location_type": rnd.choice(["azc", "vbl", "detentie"]),
                "person": {"birth_year": birth.year, "minor": birth.year > 2008},
                # Data outside the contract that a careless template might leak:
                "v_number": f"{rnd.randint(10**9, 10**10 - 1)}",
                "birth_date": birth,
                "nationality": rnd.choice(NATIONALITIES),
                "medical": {"detail": rnd.choice(MEDICAL)},
                "regievoerder_name": rv["name"],
            }
        )
    return staff, cases


def lines_for(case: dict[str, Any], rnd: random.Random) -> list[SignalLine]:
    """What the pipeline hands over: only the permitted fields of a case."""
    out = []
    for rule_id, title, severity, action in rnd.sample(RULES, rnd.randint(0, 3)):
        opened = max(case["opened_on"], AS_OF - dt.timedelta(days=rnd.randint(0, 120)))
        esc = opened + dt.timedelta(days=30)
        out.append(
            SignalLine(
                case_ref=case["case_ref"],
                rule_id=rule_id,
                mail_title=title,
                severity=severity,  # type: ignore[arg-type]
                opened_on=opened,
                days_open=(AS_OF - opened).days,
                is_new=opened == AS_OF,
                reopened=rnd.random() < 0.1,
                escalated=esc <= AS_OF,
                escalates_on=esc,
                expected_action=action,
                link=BASE_URL + case["case_ref"],
                score=rnd.random() * 10,
            )
        )
    return out


def render_run(
    seed: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[ComposedMessage]]:
    rnd = random.Random(seed)
    staff, cases = synthetic_world(seed)
    by_rv: dict[str, list[SignalLine]] = defaultdict(list)
    team_of = {s["id"]: s["team"] for s in staff}
    for case in cases:
        by_rv[case["regievoerder"]].extend(lines_for(case, rnd))
    messages = []
    for s in staff:
        if s["role"] == "regievoerder" and by_rv[s["id"]]:
            recipient = Recipient(s["id"], s["email"])
            messages.append(compose_case_manager(recipient, AS_OF, by_rv[s["id"]]))
    for lead in (s for s in staff if s["role"] == "teamleider"):
        team = lead["team"]
        summaries = []
        escalations = []
        for rv, lines in by_rv.items():
            if team_of[rv] != team:
                continue
            by_sev: dict[str, int] = defaultdict(int)
            for ln in lines:
                by_sev[ln.severity] += 1
                if ln.escalated:
                    escalations.append(
                        EscalationLine(ln.case_ref, ln.rule_id, ln.mail_title, ln.days_open, rv)
                    )
            summaries.append(
                ManagerSummary(
                    rv,
                    open_cases=sum(1 for c in cases if c["regievoerder"] == rv),
                    open_by_severity=dict(by_sev),
                    new=sum(ln.is_new for ln in lines),
                    resolved=rnd.randint(0, 3),
                    escalated=sum(ln.escalated for ln in lines),
                )
            )
        digest = TeamDigest(
            team,
            AS_OF,
            "weekly",
            summaries,
            rules=[RuleCount(r[0], r[1], open=1, new=0) for r in RULES],
            escalations=escalations,
        )
        messages.append(compose_team_digest(Recipient(lead["id"], lead["email"]), digest))
    return staff, cases, messages


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_personal_data_in_any_message_of_a_realistic_run(seed: int) -> None:
    staff, cases, messages = render_run(seed)
    assert len(messages) >= 6  # case managers and both team leads got mail
    forbidden: set[str] = set()
    for s in staff:
        first, last = s["name"].split(" ", 1)
        forbidden.update({s["name"], first, last})  # no first or last name on its own either
    for case in cases:
        birth: dt.date = case["birth_date"]
        forbidden.update(
            {
                case["v_number"],
                case["nationality"],
                case["medical"]["detail"],
                birth.isoformat(),
                birth.strftime("%d-%m-%Y"),
                birth.strftime("%d/%m/%Y"),
            }
        )
    rule_ids = {r[0] for r in RULES}
    v_number = re.compile(r"(?<!\d)\d{10}(?!\d)")
    any_date = re.compile(r"\b(\d{2})-(\d{2})-(\d{4})\b|\b(\d{4})-(\d{2})-(\d{2})\b")
    for msg in messages:
        for body in (msg.subject, msg.text, msg.html):
            words = set(re.findall(r"[\w']+", body))
            for item in forbidden:
                if " " in item or "-" in item or "/" in item:
                    assert item not in body, f"{item!r} leaked into a message"
                else:
                    assert item not in words, f"{item!r} leaked into a message"
            assert not v_number.search(body)
            assert "V-nummer" not in body
            assert not rule_ids & set(re.findall(r"[A-Z0-9]+(?:-[A-Z0-9]+)+", body))
            assert sensitive_words(body, MAIL_WORDS) == [], msg.subject
            for match in any_date.finditer(body):
                year = int(match.group(3) or match.group(4))
                assert year >= 2025, f"date {match.group(0)} looks like a birth date"


def test_minimal_detail_leaves_titles_out_of_the_digests_escalations() -> None:
    digest = make_digest()
    full = compose_team_digest(RECIPIENT, digest)
    minimal = compose_team_digest(RECIPIENT, digest, compose.MailOptions(detail="minimal"))
    assert "* hoog | ZK-2026-000042 | Eerste vertrekgesprek | 40 dagen" in full.text
    assert "* hoog | ZK-2026-000042 | 40 dagen\n" in minimal.text
    assert "ZK-2026-000042 · 40 dagen</td>" in minimal.html
    assert "Eerste vertrekgesprek</td>" not in minimal.html
