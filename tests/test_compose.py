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
from regiesignaal.notifications.compose import team_digest as compose_td
from regiesignaal.notifications.compose.case_manager import compose_case_manager
from regiesignaal.notifications.compose.model import (
    SEVERITIES,
    EscalationLine,
    ManagerSummary,
    Recipient,
    RuleCount,
    SignalLine,
    TeamDigest,
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


CM_SIGNAL = re.compile(r"^    (laag|middel|hoog|kritiek), sinds ")
CM_COMPACT = re.compile(r"^\* (\S+): (\d+) signa(?:al|len)(?: \(([^)]*)\))?")


def text_counts(text: str) -> dict[str, int]:
    """Count what the plain-text sections hold: signals, new, escalated and cases, read
    from the full blocks and the compact entries."""
    out = {"total": 0, "new": 0, "escalated": 0, "cases": 0}
    for raw in text.splitlines():
        if raw.startswith("Zaak "):
            out["cases"] += 1
        elif CM_SIGNAL.match(raw):
            out["total"] += 1
            parts = raw.strip().split(", ")
            out["new"] += "nieuw" in parts
            out["escalated"] += "geëscaleerd" in parts
        elif m := CM_COMPACT.match(raw):
            out["cases"] += 1
            out["total"] += int(m.group(2))
            summary = m.group(3) or ""
            for part in summary.split(", "):
                num, _, word = part.partition(" ")
                if word == "nieuw":
                    out["new"] += int(num)
                elif word == "geëscaleerd":
                    out["escalated"] += int(num)
    return out


def intro_counts(msg: ComposedMessage) -> dict[str, int]:
    m = re.search(
        r"Je hebt (\d+) open signa(?:al|len) in (\d+) za(?:ak|ken): (\d+) nieuw(?: sinds \S+)?, "
        r"(\d+) geëscaleerd",
        msg.text,
    )
    assert m, msg.text[:400]
    total, cases, new, esc = map(int, m.groups())
    return {"total": total, "cases": cases, "new": new, "escalated": esc}


# --- the case manager's message ----------------------------------------------------


def test_subject_counts_new_and_open_in_dutch_date_format() -> None:
    lines = [line(f"ZK-2026-{i:06d}", is_new=i < 3) for i in range(12)]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert msg.subject == "Regiesignaal 28-11-2026: 3 nieuw, 12 open"
    lines.append(line("ZK-2026-999999", escalated=True))
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert msg.subject == "Regiesignaal 28-11-2026: 3 nieuw, 13 open, 1 geëscaleerd"


def test_line_shows_the_required_fields_and_no_rule_id() -> None:
    """Failure 5: the mail names a signal by its neutral code and title, never its rule id."""
    ln = dataclasses.replace(
        line(
            "ZK-2026-000123",
            rule_id="AMV-RECEPTION",
            mail_title="Vastlegging ontbreekt",
            severity="critical",
            opened_on=dt.date(2026, 11, 2),
            expected_action="Plan een check of leg vast waarom die niet nodig is.",
        ),
        mail_code="R07",
    )
    msg = compose_case_manager(RECIPIENT, AS_OF, [ln])
    for body in (msg.subject, msg.text, msg.html):
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
    assert f"    {dutch}, sinds " in msg.text
    assert f">{dutch}</span>" in msg.html


def test_one_day_is_singular() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(opened_on=dt.date(2026, 11, 27))])
    assert "sinds 27-11-2026 (1 dag)" in msg.text


def test_one_block_per_case_and_each_action_once() -> None:
    """Failure 1: a case with three signals is one block; a shared action is shown once."""
    shared = "Plan het eerste vertrekgesprek."
    lines = [
        line("ZK-A", mail_title="Eerste", severity="low", expected_action=shared),
        line("ZK-B", mail_title="Ander", severity="high"),
        line("ZK-A", mail_title="Tweede", severity="high", expected_action=shared),
        line("ZK-A", mail_title="Derde", severity="medium", expected_action="Iets anders."),
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert msg.text.count("Zaak ZK-A\n") == 1
    block = msg.text.split("Zaak ZK-A\n")[1].split("Open de zaak")[0]
    assert [t for t in ("Tweede", "Derde", "Eerste") if t in block] == ["Tweede", "Derde", "Eerste"]
    assert block.index("Tweede") < block.index("Derde") < block.index("Eerste")
    assert block.count(shared) == 1 and block.count("Iets anders.") == 1
    assert msg.html.count(">ZK-A</a>") == 1


def test_escalated_and_critical_come_first_and_the_counts_match_the_sections() -> None:
    """Failure 2: the intro's counts are what the sections hold, and a new medium signal
    does not stand above escalated critical ones."""
    lines = [line("ZK-NEW", severity="medium", is_new=True, score=999.0)]
    lines += [line(f"ZK-ESC-{i:02d}", severity="critical", escalated=True) for i in range(29)]
    lines += [
        line("ZK-SOON", escalates_on=AS_OF + dt.timedelta(days=2), is_new=True),
        line("ZK-LATER", escalates_on=AS_OF + dt.timedelta(days=9)),
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines, compose.MailOptions(full_cases=40))
    first = msg.text.split("== Eerst doen (5 zaken) ==")[1].split("== Overige zaken")[0]
    assert first.count("Zaak ZK-ESC-") == 5
    assert msg.text.index("ZK-ESC-28") < msg.text.index("ZK-SOON") < msg.text.index("ZK-NEW")
    assert msg.text.index("ZK-NEW") < msg.text.index("ZK-LATER")
    assert "escaleert 30-11-2026 (over 2 dagen)" in msg.text
    assert "escaleert 07-12-2026" not in msg.text  # outside the window: no warning
    assert text_counts(msg.text) == intro_counts(msg)
    assert intro_counts(msg) == {"total": 32, "cases": 32, "new": 2, "escalated": 29}
    assert "29 geëscaleerd en 1 binnen 5 dagen te escaleren" in msg.text
    assert compose_cm.RANKING_NL.split(":")[0] in msg.html


@settings(max_examples=60, deadline=None)
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
            escalates_on=st.none() | st.dates(dt.date(2026, 11, 1), dt.date(2027, 1, 1)),
        ),
        max_size=80,
    ),
    first_cases=st.integers(0, 6),
    full_cases=st.integers(0, 30),
    baseline_every=st.integers(2, 7),
)
def test_sections_hold_every_case_once_in_ranked_order_and_the_counts_agree(
    lines: list[SignalLine], first_cases: int, full_cases: int, baseline_every: int
) -> None:
    lines = [
        dataclasses.replace(ln, baseline=i % baseline_every == 0) for i, ln in enumerate(lines)
    ]
    options = compose.MailOptions(first_cases=first_cases, full_cases=full_cases)
    sections = compose_cm.split_cases(lines, AS_OF, options)
    groups = sections.all
    assert sorted(g.case_ref for g in groups) == sorted({ln.case_ref for ln in lines})
    assert sum(len(g.lines) for g in groups) == len(lines)
    assert len(sections.first) <= first_cases
    assert all(g.is_first(AS_OF) for g in sections.first)
    keys = [g.key(AS_OF) for g in groups]
    assert keys == sorted(keys)
    assert len(sections.first) + len(sections.full) <= max(full_cases, len(sections.first))
    msg = compose_case_manager(RECIPIENT, AS_OF, lines, options)
    counted = text_counts(msg.text)
    assert counted == intro_counts(msg)
    assert counted["new"] == sum(1 for ln in lines if ln.is_new and not ln.baseline)
    subject = re.fullmatch(
        r"Regiesignaal \S+: (\d+) nieuw, (\d+) open(?:, (\d+) geëscaleerd)?", msg.subject
    )
    assert subject is not None
    assert int(subject.group(1)) == counted["new"]
    assert int(subject.group(2)) == counted["total"]
    assert int(subject.group(3) or 0) == counted["escalated"]


def test_baseline_signals_are_existing_never_new() -> None:
    lines = [
        dataclasses.replace(line("ZK-OLD", is_new=True), baseline=True),
        line("ZK-FRESH", is_new=True),
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert msg.subject == "Regiesignaal 28-11-2026: 1 nieuw, 2 open"
    old = msg.text.split("Zaak ZK-OLD")[1].split("Open de zaak")[0]
    assert "bestaand" in old and "nieuw" not in old
    assert "1 bestaand (al gevonden bij de invoering, niet nieuw)" in msg.text


def test_new_since_the_last_list_that_reached_the_reader_is_said() -> None:
    msg = compose_case_manager(
        RECIPIENT, AS_OF, [line(is_new=True)], new_since=dt.date(2026, 11, 24)
    )
    assert "1 nieuw sinds 24-11-2026" in msg.text
    assert "nieuw sinds 24-11-2026" in msg.html


def test_expired_explanation_is_marked() -> None:
    lines = [line("ZK-EXP", explanation_expired=True), line("ZK-PLAIN")]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    marked = [ln for ln in msg.text.splitlines() if "toelichting verlopen" in ln]
    assert len(marked) == 2  # the signal line and the footer
    assert "toelichting verlopen" in msg.text.split("Zaak ZK-EXP")[1].split("Open de zaak")[0]
    assert msg.html.count("<em>toelichting verlopen</em>") == 2  # the line and the footer


def test_an_expected_action_ending_in_a_newline_adds_no_blank_line() -> None:
    action = "Plan het eerste vertrekgesprek\nen leg het vast.\n"
    msg = compose_case_manager(RECIPIENT, AS_OF, [line("ZK-1", expected_action=action)])
    assert "\n\n  Open de zaak" not in msg.text
    assert "    - Plan het eerste vertrekgesprek" in msg.text and "en leg het vast.\n" in msg.text
    assert "en leg het vast.</div>" in msg.html


def test_html_of_500_signals_stays_under_gmails_clipping_limit_and_hides_nothing() -> None:
    """Failure 8: Gmail clips HTML above about 102 KB; at 500 signals the list stays under
    100 KB, and every case is still there (the first ones in full, the rest compact)."""
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
    assert len(msg.html.encode("utf-8")) < 100_000
    for i in range(250):
        assert f">ZK-2026-{i:06d}</a>" in msg.html
    assert msg.text.count("\nZaak ZK-2026-") == compose.DEFAULT_OPTIONS.full_cases
    assert text_counts(msg.text) == intro_counts(msg)


def test_minimal_detail_shows_per_case_only_reference_count_and_link() -> None:
    lines = [
        line("ZK-1", mail_title="Geheime titel", expected_action="Geheime actie.", escalated=True),
        line("ZK-1", mail_title="Andere titel"),
        line("ZK-2", mail_title="Derde titel"),
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines, compose.MailOptions(detail="minimal"))
    for body in (msg.text, msg.html):
        assert "titel" not in body and "Geheime" not in body
        assert "ZK-1" in body and "2 signalen" in body and "1 signaal" in body
        assert ", hoogste ernst" not in body and "kritiek</span>" not in body
    assert "Zaak ZK-1\n  2 signalen\n" in msg.text and "* ZK-2: 1 signaal\n" in msg.text
    assert f"{BASE_URL}ZK-1" in msg.text and f'href="{BASE_URL}ZK-2"' in msg.html


@pytest.mark.parametrize(
    ("case_ref", "encoded"),
    [("Z-7#intern", "Z-7%23intern"), ("Z/8", "Z%2F8"), ("Z?9", "Z%3F9"), ("Z 10", "Z%2010")],
)
def test_case_links_encode_the_reference(case_ref: str, encoded: str) -> None:
    """Failure 7: ``Z-7#intern`` must not open Z-7."""
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
    assert "javascript:" not in msg.html
    assert "javascript:" not in msg.text
    assert "ZK-X" in msg.html  # the reference is still there, as plain text


def test_html_special_characters_in_a_mail_title_are_escaped() -> None:
    title = '<script>alert("x")</script> & <b>vet</b>'
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(mail_title=title)])
    assert "<script>" not in msg.html
    assert "<b>" not in msg.html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;vet&lt;/b&gt;" in msg.html
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
    parsed = parse_html(msg.html)
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
    assert msg.subject == "Regiesignaal 28-11-2026: 0 nieuw, 0 open"
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


def test_team_digest_figures() -> None:
    msg = compose_team_digest(Recipient("tl-01", "tl-01@dtv.example"), make_digest())
    assert msg.subject == (
        "Regiesignaal weekoverzicht team T-ZUID 28-11-2026: 9 open, 3 nieuw, 1 nu geëscaleerd"
    )
    text = msg.text
    assert "* rv-002: 5 open signalen in 20 zaken (2,5 per 10 zaken)" in text
    assert "* rv-001: 4 open signalen in 8 zaken (5,0 per 10 zaken)" in text
    assert "* rv-003: 0 open signalen in 0 zaken (– per 10 zaken)" in text
    assert "kritiek 0, hoog 2, middel 0, laag 3" in text
    assert "* Team: 9 open signalen in 28 zaken (3,2 per 10 zaken)" in text
    assert "+2 ten opzichte van de vorige periode (7)" in text
    assert "* Vastlegging <ontbreekt> (R03): 5 open, 2 nieuw" in text
    assert text.index("Vastlegging <ontbreekt>") < text.index("Eerste vertrekgesprek ontbreekt")
    assert "* hoog | ZK-2026-000042 | Eerste vertrekgesprek | 40 dagen open" in text
    assert "rv-002: 1 geëscaleerd" in text
    assert "nieuw 1, opgelost 2, nu geëscaleerd 1, toegelicht 2" in text
    assert "Nieuw afgelopen week: 3, opgelost: 2, nu geëscaleerd: 1, toegelicht: 2." in text
    assert "== Nu geëscaleerd (1) ==" in text
    assert "niet getoond" not in text
    for body in (msg.subject, text, msg.html):
        assert "VG-FIRST" not in body and "MED-CHECK" not in body  # no rule ids in mail
    html = msg.html
    assert "Vastlegging &lt;ontbreekt&gt;" in html
    assert html.index(">rv-001<") < html.index(">rv-002<") < html.index(">rv-003<")
    assert set(parse_html(html).tags) <= ALLOWED_TAGS


def test_digest_shows_names_median_age_trend_and_outliers() -> None:
    """Failure 6: case managers by name (configurable), a comparison mark and a trend."""
    days = [AS_OF - dt.timedelta(days=7 * k) for k in range(7, -1, -1)]
    managers = [
        ManagerSummary(
            f"rv-{i}",
            10,
            {"high": n},
            new=0,
            resolved=0,
            escalated=0,
            name=f"Naam{i} Achternaam",
            median_age_days=12.0,
            trend=tuple(range(n - 7, n + 1)),
        )
        for i, n in enumerate([10, 11, 12, 11, 10, 40])
    ]
    from regiesignaal.notifications.compose.model import TrendPoint

    digest = dataclasses.replace(
        make_digest(),
        managers=managers,
        trend=tuple(TrendPoint(d, 50 + k) for k, d in enumerate(days)),
    )
    msg = compose_team_digest(RECIPIENT, digest)
    assert "* Naam5 Achternaam (rv-5) [afwijkend: hoog]" in msg.text
    assert msg.text.count("[afwijkend") == 1
    assert "mediane leeftijd 12 dagen" in msg.text
    assert "verloop: 33, 34, 35, 36, 37, 38, 39, 40" in msg.text
    assert "In tekst: " in msg.html and "21-11: 56" in msg.html  # the bars' text alternative
    assert msg.html.count('bgcolor="#154273"') == 8  # eight team bars
    assert "interkwartielafstand" in msg.text
    hidden = compose_team_digest(RECIPIENT, digest, compose.MailOptions(staff_names=False))
    assert "Naam" not in hidden.text and "Naam" not in hidden.html
    assert compose_td.outlier_marks([1.0, 1.0, 1.0]) == ["", "", ""]  # too few to compare
    assert compose_td.outlier_marks([5.0, 5.0, 5.0, 5.0, 0.0]) == ["", "", "", "", "laag"]


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


def test_escalations_most_severe_first_grouped_per_manager_with_what_is_not_shown() -> None:
    """Failure 6: the capped list shows the critical escalations, not the 50 oldest."""
    from regiesignaal.notifications.team_digest import MAX_ESCALATIONS_IN_DIGEST, escalation_key

    everything = [
        EscalationLine(
            f"ZK-{i:04d}",
            "VG-FIRST",
            "Eerste vertrekgesprek",
            200 - i if i % 10 else 20 + i,
            f"rv-00{i % 3}",
            severity="critical" if i % 10 == 0 else "medium",
        )
        for i in range(300)
    ]
    shown = sorted(everything, key=escalation_key)[:MAX_ESCALATIONS_IN_DIGEST]
    assert sum(e.severity == "critical" for e in shown) == 30  # all 30 critical ones
    managers = [
        ManagerSummary(f"rv-00{k}", 10, {"medium": 100}, new=0, resolved=0, escalated=100)
        for k in range(3)
    ]
    digest = dataclasses.replace(
        make_digest(), managers=managers, escalations=shown, escalations_total=300
    )
    assert digest.escalations_not_listed == 250
    msg = compose_team_digest(RECIPIENT, digest)
    assert "== Nu geëscaleerd (300) ==" in msg.text
    assert "250 niet getoond (getoond: de 50 ernstigste en oudste)" in msg.text
    section = msg.text.split("== Nu geëscaleerd")[1]
    groups = re.findall(r"^(rv-00\d): 100 geëscaleerd, (\d+) niet getoond$", section, re.M)
    assert sorted(g[0] for g in groups) == ["rv-000", "rv-001", "rv-002"]
    assert sum(100 - int(n) for _, n in groups) == 50
    for group in re.split(r"^rv-00\d: ", section, flags=re.M)[1:]:
        sev = re.findall(r"^\* (kritiek|middel) \|", group, re.M)
        assert sev == sorted(sev, key=lambda x: x != "kritiek")  # critical first in a group
    assert "250 niet getoond" in msg.html


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
    msg = compose_team_digest(RECIPIENT, digest)
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
    assert "* hoog | ZK-2026-000042 | Eerste vertrekgesprek | 40 dagen open" in full.text
    assert "* hoog | ZK-2026-000042 | 40 dagen open" in minimal.text
    assert "ZK-2026-000042 · 40 dagen open" in minimal.html
    assert "Eerste vertrekgesprek</td>" not in minimal.html
