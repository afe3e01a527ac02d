"""Every message of a realistic multi-night run: privacy scan, catch-up, and rendering in
a real browser (headless Chromium) at phone and desktop width.

One run (module fixture) of five nights over synthetic case plans, delivered to a
loopback SMTP server: Monday 2 to Thursday 5 November 2026, no run on Friday 6, then
Monday 9 (so the Monday digest must catch up the missed Friday).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regiesignaal.engine.language.mailtext import sensitive_words, word_lists
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.fixtures.names import FIRST_NAMES, SURNAMES
from regiesignaal.jobs.demo.mailrun import RULES_DIR, MailRun, multi_night_run

NIGHTS = [dt.date(2026, 11, d) for d in (2, 3, 4, 5, 9)]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = os.environ.get("REGIESIGNAAL_CHROMIUM", "/usr/bin/chromium")
WIDTHS = (375, 900)


@pytest.fixture(scope="module")
def mail_run(tmp_path_factory: pytest.TempPathFactory) -> MailRun:
    directory = tmp_path_factory.mktemp("mailrun")
    return multi_night_run(
        directory, NIGHTS, cases=400, seed=5, changes={"rule_report_dir": directory / "rapport"}
    )


def visible_text(body: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.mark.slow
def test_privacy_scan_finds_no_rule_id_sensitive_word_or_name(mail_run: MailRun) -> None:
    """Failure 5 over a whole run, the attached whole lists included: no rule id, no listed
    word, no name of a person; the digest names no case manager by default."""
    messages = mail_run.messages
    assert len(messages) >= 30
    assert {m.kind for m in messages} == {"regievoerder", "teamleider", "beleid"}
    rule_ids = {r.id for r in load_rule_dir(RULES_DIR).rules}
    forbidden = word_lists(RULES_DIR).forbidden
    name_parts = {w for n in (*FIRST_NAMES, *SURNAMES) for w in n.split() if len(w) > 3}
    for m in messages:
        reader = mail_run.staff[m.recipient_id]
        own = [
            s["name"]
            for s in mail_run.staff.values()
            if m.kind == "teamleider"
            and s.get("role") == "regievoerder"
            and s.get("team") == reader.get("team")
        ]
        whole = (m.attachment_html, visible_text(m.attachment_html)) if m.attachment_html else ()
        for body in (m.subject, m.text, visible_text(m.html), m.html, *whole):
            for rid in rule_ids:
                assert not re.search(rf"(?<![\w-]){re.escape(rid)}(?![\w-])", body), rid
            assert sensitive_words(body, forbidden) == [], m.subject
            for name in own:
                body = body.replace(name, " ")
            words = set(re.findall(r"\w+", body))
            assert not name_parts & words, (m.recipient_id, name_parts & words)
    # the whole list travels with the case managers' mail and was scanned too
    assert any(m.attachment_html for m in messages if m.kind == "regievoerder")
    # by default the digest names no case manager (issue 16: no ranking of named staff)
    digests = [m for m in messages if m.kind == "teamleider"]
    names = [s["name"] for s in mail_run.staff.values() if s.get("role") == "regievoerder"]
    assert not any(n in d.text or n in d.html for d in digests for n in names)


@pytest.mark.slow
def test_a_missed_day_is_caught_up(mail_run: MailRun) -> None:
    """Issue 6, failure 5: no run on Friday 6 November. Monday's digest covers the whole
    period since the last digest that was sent and says so; Monday's lists count as new
    what opened since the last list that reached the reader (Thursday)."""
    monday = [m for m in mail_run.messages if m.as_of == NIGHTS[-1]]
    digest = next(m for m in monday if m.kind == "teamleider")
    assert "Een eerder overzicht is niet verstuurd" in digest.text
    assert "sinds 06-11-2026" in digest.text
    assert "Nieuw sinds 06-11-2026:" in digest.text
    lists = [m for m in monday if m.kind == "regievoerder"]
    assert lists and all("nieuw sinds 05-11-2026" in m.text for m in lists)
    thursday = [m for m in mail_run.messages if m.as_of == NIGHTS[-2]]
    assert not any("niet verstuurd" in m.text for m in thursday)
    assert all(m.status == "sent" for m in mail_run.messages)


# --- a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's package) driven by Playwright; in CI a missing browser
    is a failure, elsewhere a skip."""
    problem = None
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - dev extras not installed
        problem = f"playwright missing: {exc}"
    if problem:
        if IN_CI:
            pytest.fail(f"Chromium is required in CI: {problem}")
        pytest.skip(problem)
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


OVERFLOW_JS = """() => {
    const doc = document.documentElement;
    const wide = [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > doc.clientWidth + 1)
        .map(e => e.tagName + ':' + (e.textContent || '').slice(0, 40));
    return {scroll: doc.scrollWidth, client: doc.clientWidth, wide: wide.slice(0, 5)};
}"""


def overflow(page: Any, body: str, width: int) -> dict[str, Any]:
    """Load ``body`` at ``width`` px; the document's and the widest elements' extent."""
    page.set_viewport_size({"width": width, "height": 800})
    page.set_content(body)
    return dict(page.evaluate(OVERFLOW_JS))


@pytest.mark.slow
def test_every_message_fits_a_phone_and_a_desktop_without_horizontal_overflow(
    mail_run: MailRun, browser: Any
) -> None:
    """Failure 4: at 375 px and 900 px nothing is cut off or needs sideways scrolling."""
    samples = {f"{m.recipient_id} {m.subject}": m.html for m in mail_run.messages}
    assert len(samples) == len(mail_run.messages)  # every message of the run
    whole = {
        f"{m.recipient_id} {m.as_of} volledige lijst": m.attachment_html
        for m in mail_run.messages
        if m.attachment_html
    }
    assert whole  # the attached whole lists are read on phones too
    samples.update(whole)
    samples.update(extreme_messages())
    page = browser.new_page()
    try:
        for subject, body in samples.items():
            for width in WIDTHS:
                result = overflow(page, body, width)
                assert result["scroll"] <= result["client"], (subject, width, result)
                assert result["wide"] == [], (subject, width, result)
    finally:
        page.close()


def extreme_messages() -> dict[str, str]:
    """Long references, titles without spaces, many cases: the worst a layout meets."""

    from regiesignaal.notifications.compose.case_manager import compose_case_manager
    from regiesignaal.notifications.compose.model import (
        EscalationLine,
        ManagerSummary,
        Recipient,
        SignalLine,
        TeamDigest,
    )
    from regiesignaal.notifications.compose.render import MailOptions
    from regiesignaal.notifications.compose.team_digest import compose_team_digest

    as_of = dt.date(2026, 11, 30)
    long_ref = "ZK-" + "9" * 40 + "#intern/deel?x"
    line = SignalLine(
        long_ref,
        "X",
        "Vastleggingontbreektbijeenheelerglangwoordzonderspaties" * 2,
        "critical",
        as_of - dt.timedelta(days=300),
        300,
        True,
        True,
        True,
        None,
        "Eenheellangeactiezonderspatiesomdelayouttetesten" * 3,
        "https://zaaksysteem.dtv.example/zaken/" + "x" * 120,
        999.0,
        mail_code="R9999",
    )
    lines = [dataclasses.replace(line, case_ref=f"{long_ref}{i}") for i in range(40)]
    recipient = Recipient("rv", "rv@dtv.example")
    digest = TeamDigest(
        "team-met-een-heel-lange-naam-" + "x" * 40,
        as_of,
        "weekly",
        [
            ManagerSummary(
                "rv-" + "1" * 30, 999, {"critical": 99999}, 9999, 9999, 9999, 9999, "A" * 60
            )
        ],
        escalations=[EscalationLine(long_ref, "X", "Titel" * 30, 9999, "rv-" + "1" * 30)],
    )
    return {
        "extreme list": compose_case_manager(recipient, as_of, lines).html,
        "extreme minimal": compose_case_manager(
            recipient, as_of, lines, MailOptions(detail="minimal")
        ).html,
        "extreme digest": compose_team_digest(recipient, digest).html,
    }


# --- mail preview -----------------------------------------------------------------------


@pytest.mark.slow
def test_mail_preview_writes_what_the_run_sent_and_changes_nothing(
    mail_run: MailRun, tmp_path: Path
) -> None:
    import email
    from email import policy

    import sqlalchemy as sa
    from click.testing import CliRunner

    from regiesignaal.jobs.mail_preview import compose_preview

    def state() -> list[Any]:
        engine = sa.create_engine(mail_run.settings.store_url)
        try:
            with engine.connect() as conn:
                return [
                    sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t}")))
                    for t in ("signals", "outbox", "runs")
                ]
        finally:
            engine.dispose()

    before = state()
    day = NIGHTS[-1]
    sent = {m.recipient_id: m for m in mail_run.messages if m.as_of == day}
    lead = next(rid for rid, m in sent.items() if m.kind == "teamleider")
    manager = next(rid for rid, m in sent.items() if m.kind == "regievoerder")
    officer = next(rid for rid, m in sent.items() if m.kind == "beleid")
    for staff_id in (lead, manager, officer):
        result = compose_preview(mail_run.settings, staff_id, day)
        assert result.message.html == sent[staff_id].html
        assert result.message.text == sent[staff_id].text
    assert state() == before

    from regiesignaal.jobs import cli
    from regiesignaal.jobs.cli import common

    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "load_settings", lambda path=None: mail_run.settings)
        out = tmp_path / "preview"
        ok = runner.invoke(
            cli.main,
            [
                "mail",
                "preview",
                "--recipient",
                manager,
                "--as-of",
                day.isoformat(),
                "--out",
                str(out),
            ],
        )
        assert ok.exit_code == 0, ok.output
        # the message (.eml, .html, .txt) and the whole list it carries (-volledig.html)
        files = sorted(p.suffix for p in out.iterdir())
        assert files == [".eml", ".html", ".html", ".txt"]
        whole = next(out.glob("*-volledig.html")).read_text(encoding="utf-8")
        assert whole == sent[manager].attachment_html
        eml = email.message_from_bytes(next(out.glob("*.eml")).read_bytes(), policy=policy.default)
        assert eml["Subject"] == sent[manager].subject
        unknown = runner.invoke(
            cli.main, ["mail", "preview", "--recipient", "rv-9999", "--out", str(out)]
        )
        assert unknown.exit_code == 1
        assert "rv-9999 staat niet in het medewerkersbestand" in unknown.output
    assert state() == before


@pytest.mark.slow
def test_rule_report_is_mailed_weekly_to_policy_staff_and_written_as_a_page(
    mail_run: MailRun,
) -> None:
    reports = [m for m in mail_run.messages if m.kind == "beleid"]
    policy = {sid for sid, s in mail_run.staff.items() if s.get("role") == "beleid"}
    assert policy and {m.recipient_id for m in reports} == policy
    assert {m.as_of for m in reports} == {d for d in NIGHTS if d.weekday() == 0}
    assert "mediaan werkdagen tot oplossing" in reports[-1].text
    assert "verloop: " in reports[-1].text and "<table" in reports[-1].html
    assert mail_run.settings.rule_report_dir is not None
    page = (mail_run.settings.rule_report_dir / "regelrapport.html").read_text(encoding="utf-8")
    assert "VG-FIRST: " in page  # the policy owners' page names rules by id
    assert "VG-FIRST" not in reports[-1].html  # the mail does not
    assert "09-11-2026" in page  # written by the last run


@pytest.mark.slow
def test_own_figures_come_weekly_and_name_no_other_person(mail_run: MailRun) -> None:
    """Issue 18: "Jouw cijfers" in a case manager's list on the digest weekday only, and no
    case manager's mail holds another staff member's id or name."""
    lists = [m for m in mail_run.messages if m.kind == "regievoerder"]
    weekday = mail_run.settings.digest_weekday
    for m in lists:
        assert ("== Jouw cijfers ==" in m.text) == (m.as_of.weekday() == weekday), m.as_of
        assert ("Jouw cijfers" in m.html) == (m.as_of.weekday() == weekday)
        others = [sid for sid in mail_run.staff if sid != m.recipient_id]
        names = [
            str(s.get("name")) for sid, s in mail_run.staff.items()
            if sid != m.recipient_id and s.get("name")
        ]  # fmt: skip
        for body in (m.text, m.html, m.attachment_html or ""):
            for sid in others:
                assert not re.search(rf"(?<![\w-]){re.escape(sid)}(?![\w-])", body), sid
            assert not any(n in body for n in names)
    assert any("teammediaan" in m.text for m in lists)  # teams big enough for a median
