"""Pictures of the demo mails for the README.

``python -m regiesignaal.jobs.demo.screenshots [DIR]``.

Runs a multi-night demo (``jobs.demo.mailrun``), picks the last night's longest case
manager list and a team digest, and photographs both in headless Chromium at 375 px (a
phone) and 900 px (a desktop client) as ``docs/img/{list,digest}-{375,900}.png``, and the
LKO agenda of the busiest location as ``docs/img/agenda-{375,900}.png``, and the rule
report: the page at desktop and phone width and the last weekly mail on a phone
(``docs/img/regelrapport-{desktop,phone,mail}.png``, whole pages).
Needs Debian's ``chromium`` and the ``playwright`` package (dev extras).
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

from regiesignaal.jobs.demo.mailrun import multi_night_run

NIGHTS = [dt.date(2026, 11, d) for d in (2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 16, 17)]
HEIGHT = {375: 1300, 900: 900}


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report_dir = Path(tmp) / "rapport"
        run = multi_night_run(
            Path(tmp), NIGHTS, cases=400, seed=5, changes={"rule_report_dir": report_dir}
        )
        agenda_html = _busiest_agenda(run.settings, NIGHTS[-1])
        report_page = (report_dir / "regelrapport.html").read_text(encoding="utf-8")
    report_mail = [m for m in run.messages if m.kind == "beleid"][-1].html
    last = [m for m in run.messages if m.as_of == NIGHTS[-1]]
    lists = sorted((m for m in last if m.kind == "regievoerder"), key=lambda m: -len(m.html))
    digest = next(m for m in last if m.kind == "teamleider")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        shots = (("list", lists[0].html), ("digest", digest.html), ("agenda", agenda_html))
        for name, body in shots:
            for width in (375, 900):
                page = browser.new_page(viewport={"width": width, "height": HEIGHT[width]})
                page.set_content(body)
                page.screenshot(path=str(out / f"{name}-{width}.png"))
                page.close()
        rule_report_shots(browser, report_page, report_mail, out)
        browser.close()
    print(f"geschreven: {out}/{{list,digest,agenda}}-{{375,900}}.png")
    return 0


def rule_report_shots(browser: Any, page_html: str, mail_html: str, out: Path) -> None:
    """The rule report's page at 1000 and 390 px and its mail at 390 px, whole pages."""
    for name, body, width in (
        ("regelrapport-desktop", page_html, 1000),
        ("regelrapport-phone", page_html, 390),
        ("regelrapport-mail", mail_html, 390),
    ):
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.set_content(body)
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        page.close()


def _busiest_agenda(settings: Any, as_of: dt.date) -> str:
    """The HTML of the LKO agenda of the location with the most cases on ``as_of``."""
    import sqlalchemy as sa

    from regiesignaal.engine.language.rulefile.folder import load_rule_dir
    from regiesignaal.engine.source.read import case_index, read_case_range
    from regiesignaal.notifications.compose.lko_agenda import render_agenda
    from regiesignaal.notifications.lko_agenda import build_agenda, load_escalated, location_of

    ruledir = load_rule_dir(settings.rules_dir)
    source, store = sa.create_engine(settings.source_url), sa.create_engine(settings.store_url)
    try:
        index = case_index(source, status="open")
        cases = read_case_range(source, index[0][0], index[-1][0]).cases
        escalated = load_escalated(store, as_of)
    finally:
        source.dispose()
        store.dispose()
    counts: dict[str, int] = {}
    for case in cases:
        counts[location_of(case)] = counts.get(location_of(case), 0) + 1
    location = max(sorted(counts), key=lambda loc: counts[loc])
    agenda = build_agenda(cases, escalated, ruledir, as_of, location=location)
    return render_agenda(agenda).html


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
