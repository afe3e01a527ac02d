"""Message composition: content, ranking, sections, escaping, sandboxing and privacy."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
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

from notifications import compose
from notifications.compose import (
    compose_case_manager,
    compose_team_digest,
    rank_lines,
    split_sections,
)
from notifications.model import (
    SEVERITIES,
    SEVERITY_RANK,
    ComposedMessage,
    EscalationLine,
    ManagerSummary,
    Recipient,
    RuleCount,
    SignalLine,
    TeamDigest,
)

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


def section_of(text: str, case_ref: str) -> str:
    """The plain-text section title under which ``case_ref`` appears."""
    current = ""
    for raw in text.splitlines():
        match = re.match(r"^== (.+) \(\d+\) ==$", raw)
        if match:
            current = match.group(1)
        elif raw.startswith(f"* {case_ref} "):
            return current
    raise AssertionError(f"{case_ref} not in message")


# --- the case manager's message ----------------------------------------------------


def test_subject_counts_new_and_open_in_dutch_date_format() -> None:
    lines = [line(f"ZK-2026-{i:06d}", is_new=i < 3) for i in range(12)]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert msg.subject == "Regiesignaal 28-11-2026: 3 nieuw, 12 open"
    lines.append(line("ZK-2026-999999", escalated=True))
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert msg.subject == "Regiesignaal 28-11-2026: 3 nieuw, 13 open, 1 geëscaleerd"


def test_line_shows_the_required_fields_in_text_and_html() -> None:
    ln = line(
        "ZK-2026-000123",
        rule_id="MED-CHECK",
        mail_title="Vastlegging ontbreekt",
        severity="critical",
        opened_on=dt.date(2026, 11, 2),
        expected_action="Plan een medische check of leg vast waarom die niet nodig is.",
    )
    msg = compose_case_manager(RECIPIENT, AS_OF, [ln])
    for body in (msg.text, msg.html):
        assert "ZK-2026-000123" in body
        assert "MED-CHECK" in body
        assert "Vastlegging ontbreekt" in body
        assert "kritiek" in body
        assert "open sinds 02-11-2026 (26 dagen)" in body
        assert "Plan een medische check of leg vast waarom die niet nodig is." in body
        assert "toelichting" in body and "einddatum" in body  # the footer
    assert f'<a href="{BASE_URL}ZK-2026-000123"' in msg.html
    assert f"{BASE_URL}ZK-2026-000123" in msg.text


@pytest.mark.parametrize(
    ("severity", "dutch"),
    [("low", "laag"), ("medium", "middel"), ("high", "hoog"), ("critical", "kritiek")],
)
def test_severity_is_shown_in_dutch(severity: str, dutch: str) -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(severity=severity)])
    assert f"Ernst: {dutch} |" in msg.text
    assert f">{dutch}</span>" in msg.html


def test_one_day_is_singular() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(opened_on=dt.date(2026, 11, 27))])
    assert "open sinds 27-11-2026 (1 dag)" in msg.text


def test_sections_new_escalating_and_still_open() -> None:
    lines = [
        line("ZK-NEW", is_new=True, escalates_on=AS_OF + dt.timedelta(days=1)),
        line("ZK-ESC", escalated=True),
        line("ZK-SOON", escalates_on=AS_OF + dt.timedelta(days=5)),
        line("ZK-LATER", escalates_on=AS_OF + dt.timedelta(days=6)),
        line("ZK-OPEN"),
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert section_of(msg.text, "ZK-NEW") == "Nieuwe signalen"
    assert section_of(msg.text, "ZK-ESC") == "Geëscaleerd of escaleert binnenkort"
    assert section_of(msg.text, "ZK-SOON") == "Geëscaleerd of escaleert binnenkort"
    assert section_of(msg.text, "ZK-LATER") == "Nog open"
    assert section_of(msg.text, "ZK-OPEN") == "Nog open"
    assert "escaleert op 03-12-2026 (over 5 dagen)" in msg.text
    assert "escaleert op 04-12-2026" not in msg.text  # outside the window: no warning
    assert "geëscaleerd" in msg.html


def test_expired_explanation_is_marked() -> None:
    lines = [line("ZK-EXP", explanation_expired=True), line("ZK-PLAIN")]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    marked = [ln for ln in msg.text.splitlines() if "(toelichting verlopen)" in ln]
    assert len(marked) == 1 and marked[0].startswith("* ZK-EXP ")
    assert msg.html.count("<em>(toelichting verlopen)</em>") == 1
    row = msg.html.split(">ZK-EXP</a>")[1].split("</tr>")[0]
    assert "<em>(toelichting verlopen)</em>" in row


def test_an_expected_action_ending_in_a_newline_adds_no_blank_line() -> None:
    action = "Plan het eerste vertrekgesprek\nen leg het vast.\n"
    msg = compose_case_manager(RECIPIENT, AS_OF, [line("ZK-1", expected_action=action)])
    block = msg.text.split("* ZK-1 ")[1].split("Open de zaak")[0]
    assert block.endswith(
        "  Verwacht: Plan het eerste vertrekgesprek\n            en leg het vast.\n  "
    )
    assert "\n\n  Open de zaak" not in msg.text
    assert "en leg het vast.</td>" in msg.html


def test_html_of_150_lines_stays_under_gmails_clipping_limit() -> None:
    """Gmail clips a message whose HTML exceeds about 102 KB; keep well below 100 KB."""
    action = (
        "Laat vóór het vertrek een medische check uitvoeren en leg die vast, of stel het "
        "vertrek uit; leg bij dit signaal een toelichting vast als dat niet kan."
    )
    lines = [
        line(
            f"ZK-2026-{i:06d}",
            rule_id="DEPART-MED",
            mail_title="Medische status onbekend bij geboekt vertrek",
            severity=SEVERITIES[i % 4],
            opened_on=AS_OF - dt.timedelta(days=i),
            is_new=i % 5 == 0,
            reopened=i % 11 == 0,
            escalated=i % 7 == 0,
            escalates_on=AS_OF + dt.timedelta(days=i % 9),
            expected_action=action,
            link=f"https://zaaksysteem.dtv.example/zaken/ZK-2026-{i:06d}/overzicht",
            explanation_expired=i % 13 == 0,
        )
        for i in range(150)
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    assert len(msg.html.encode("utf-8")) < 100_000
    assert msg.html.count('<tr valign="top"') == 150
    assert msg.html.count(action) == 150


def test_reopened_is_marked() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line(is_new=True, reopened=True)])
    assert "(opnieuw open)" in msg.text
    assert "<em>(opnieuw open)</em>" in msg.html


def test_lines_appear_in_ranked_order_within_a_section() -> None:
    lines = [
        line("ZK-A", score=1.0, severity="critical", days_open=99),
        line("ZK-B", score=5.0, severity="low", days_open=1),
        line("ZK-C", score=5.0, severity="high", days_open=1),
        line("ZK-D", score=5.0, severity="high", days_open=30),
    ]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines)
    positions = [msg.text.index(f"* {ref} ") for ref in ("ZK-D", "ZK-C", "ZK-B", "ZK-A")]
    assert positions == sorted(positions)
    html_positions = [msg.html.index(f">{ref}</a>") for ref in ("ZK-D", "ZK-C", "ZK-B", "ZK-A")]
    assert html_positions == sorted(html_positions)


lines_strategy = st.lists(
    st.builds(
        line,
        case_ref=st.from_regex(r"ZK-2026-\d{6}", fullmatch=True),
        severity=st.sampled_from(SEVERITIES),
        days_open=st.integers(min_value=0, max_value=2000),
        score=st.floats(min_value=0, max_value=1000, allow_nan=False),
        is_new=st.booleans(),
        escalated=st.booleans(),
        escalates_on=st.none() | st.dates(dt.date(2026, 11, 1), dt.date(2027, 3, 1)),
    ),
    max_size=30,
)


@given(lines_strategy)
def test_ranking_is_score_then_severity_then_age(lines: list[SignalLine]) -> None:
    ranked = rank_lines(lines)
    assert sorted(map(id, ranked)) == sorted(map(id, lines))
    for a, b in itertools.pairwise(ranked):
        key_a = (a.score, SEVERITY_RANK[a.severity], a.days_open)
        key_b = (b.score, SEVERITY_RANK[b.severity], b.days_open)
        assert key_a >= key_b


@given(lines_strategy)
def test_every_line_lands_in_exactly_one_section(lines: list[SignalLine]) -> None:
    new, escalating, still_open = split_sections(lines, AS_OF)
    assert len(new) + len(escalating) + len(still_open) == len(lines)
    assert all(ln.is_new for ln in new)
    assert not any(ln.is_new for ln in escalating + still_open)
    assert not any(ln.escalated for ln in still_open)
    for ln in still_open:
        assert ln.escalates_on is None or (ln.escalates_on - AS_OF).days > 5


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


def test_html_has_no_external_resources_and_uses_table_headers() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [line("ZK-1"), line("ZK-2", is_new=True)])
    parsed = parse_html(msg.html)
    assert set(parsed.tags) <= ALLOWED_TAGS
    assert "th" in parsed.tags
    assert all(name != "src" for name, _ in parsed.attrs)
    hrefs = [value or "" for name, value in parsed.attrs if name == "href"]
    assert sorted(hrefs) == [BASE_URL + "ZK-1", BASE_URL + "ZK-2"]
    assert '<html lang="nl">' in msg.html


def test_empty_list_still_renders() -> None:
    msg = compose_case_manager(RECIPIENT, AS_OF, [])
    assert msg.subject == "Regiesignaal 28-11-2026: 0 nieuw, 0 open"
    assert "Geen." in msg.text


# --- templates are sandboxed -------------------------------------------------------


def test_templates_run_in_a_sandbox_with_strict_undefined() -> None:
    env = compose._environment()
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
            RuleCount("MED-CHECK", "Vastlegging <ontbreekt>", open=5, new=2),
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
    assert "* MED-CHECK | Vastlegging <ontbreekt>: 5 open, 2 nieuw" in text
    assert text.index("MED-CHECK") < text.index("VG-FIRST |")  # most open first
    assert "* ZK-2026-000042 | VG-FIRST | Eerste vertrekgesprek | 40 dagen open" in text
    assert "regievoerder rv-002" in text
    assert "nieuw 1, opgelost 2, nu geëscaleerd 1, toegelicht 2" in text
    assert "Nieuw afgelopen week: 3, opgelost: 2, nu geëscaleerd: 1, toegelicht: 2." in text
    assert "== Nu geëscaleerd (1) ==" in text
    assert " en " not in text.split("== Nu geëscaleerd")[1].split("--")[0]  # nothing left out
    html = msg.html
    assert ">Toegelicht</th>" in html and ">Nu geëscaleerd</th>" in html
    assert "Vastlegging &lt;ontbreekt&gt;" in html
    assert '<th scope="row"' in html and "<tfoot>" in html
    assert html.index(">rv-001<") < html.index(">rv-002<") < html.index(">rv-003<")
    assert set(parse_html(html).tags) <= ALLOWED_TAGS


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


def test_capped_escalation_list_says_how_many_more() -> None:
    listed = [
        EscalationLine(f"ZK-2026-{i:06d}", "VG-FIRST", "Eerste vertrekgesprek", 90 - i, "rv-002")
        for i in range(50)
    ]
    digest = dataclasses.replace(make_digest(), escalations=listed, escalations_total=53)
    assert digest.escalations_not_listed == 3
    msg = compose_team_digest(RECIPIENT, digest)
    assert "== Nu geëscaleerd (53) ==" in msg.text
    assert msg.text.count("| regievoerder rv-002") == 50
    assert "... en 3 meer." in msg.text
    assert "Nu geëscaleerd (53)</h2>" in msg.html
    assert "... en 3 meer." in msg.html
    uncapped = dataclasses.replace(digest, escalations_total=50)
    assert " meer." not in compose_team_digest(RECIPIENT, uncapped).text


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
RULES = [
    ("VG-FIRST", "Eerste vertrekgesprek ontbreekt", "high", "Plan het eerste vertrekgesprek."),
    ("MED-CHECK", "Vastlegging ontbreekt", "high", "Plan een medische check of leg vast."),
    ("CONTACT-30D", "Geen recent contact", "medium", "Neem contact op."),
    ("STRATEGY-STALE", "Vertrekstrategie verouderd", "low", "Werk de strategie bij."),
    ("AMV-RECEPTION", "Opvang niet gecontroleerd", "critical", "Controleer de opvang."),
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
            for match in any_date.finditer(body):
                year = int(match.group(3) or match.group(4))
                assert year >= 2025, f"date {match.group(0)} looks like a birth date"
