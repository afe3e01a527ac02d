"""How much the product asks of its readers: `make attention` (issue 16).

Generates 20,000 synthetic cases, runs 15 consecutive working days in which nobody acts
(the source does not change; the last day is a Friday), and prints what the people read on
the last day:

- the case manager's mail: median and maximum lines of its text body, items under
  "Vandaag", and whether every critical signal that is new or newly escalated that day is
  in its case manager's mail;
- open signals per open case: stored in the signal store, and shown as items in the mail;
- the team lead's digest: median and maximum text lines;
- the LKO agenda per team: cases in full (on the agenda and proposed for the RAO), median
  and maximum; the agendas of the Mondays before are recorded as earlier meetings, so the
  last one marks what is new and what was discussed before without progress.

Usage: ``python bench/attention.py [--cases N] [--nights N] [--dir DIR] [--json FILE]``.
Nothing here is a mock: real rules, real store, real SMTP on loopback.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.dates import add_working_days
from regiesignaal.engine.language.packaged import PACKAGED_RULES_DIR
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.source.read import case_index, read_case_range
from regiesignaal.engine.store.tables import outbox, signals
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.pipeline import RunOptions, run, upgrade_store
from regiesignaal.notifications.compose.lko_agenda import Agenda, render_agenda
from regiesignaal.notifications.delivery.mailserver import MailCatcher
from regiesignaal.notifications.delivery.settings import SmtpSettings
from regiesignaal.notifications.lko_agenda import (
    build_agenda,
    load_escalated,
    load_history,
    record_agenda,
)

ROOT = Path(__file__).resolve().parent.parent
LAST_NIGHT = dt.date(2026, 11, 27)  # a Friday; the 15 working days before it hold no holiday


def working_days(last: dt.date, n: int) -> list[dt.date]:
    return [add_working_days(last, -(n - 1 - i)) for i in range(n)]


def text_lines(body: str) -> int:
    return len(body.rstrip("\n").split("\n")) if body else 0


TODAY_SECTION = re.compile(r"(?ms)^== Vandaag.*?$(.*?)(?=^== |\Z)")


def today_items(body: str) -> int | None:
    """Items under "Vandaag" (one item per line starting with a digit and a dot), or None
    for a mail without that section."""
    m = TODAY_SECTION.search(body)
    if m is None:
        return None
    return sum(1 for line in m.group(1).splitlines() if re.match(r"^\s*\d+\.\s", line))


def agendas(source: sa.Engine, store_url: str, day: dt.date, *, record: bool) -> list[Agenda]:
    """The agenda of every team for a meeting the next day, compared with the team's
    earlier meetings; ``record``: keep it as this meeting's agenda."""
    index = case_index(source, status="open")
    cases: list[dict[str, Any]] = []
    for start in range(0, len(index), 2000):
        chunk = index[start : start + 2000]
        cases.extend(read_case_range(source, chunk[0][0], chunk[-1][0]).cases)
    ruledir = load_rule_dir(PACKAGED_RULES_DIR)
    store = sa.create_engine(store_url)
    escalated = load_escalated(store, day)
    meeting_on = day + dt.timedelta(days=1)
    out = []
    for team in sorted({str(c["team"]) for c in cases if c.get("team")}):
        key = f"team:{team}"
        agenda = build_agenda(
            cases,
            escalated,
            ruledir,
            day,
            team=team,
            meeting_on=meeting_on,
            history=load_history(store, key, meeting_on),
        )
        if record:
            with store.begin() as conn:
                record_agenda(conn, key, meeting_on, agenda)
        out.append(agenda)
    store.dispose()
    return out


def spread(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "max": None}
    return {"n": len(values), "median": statistics.median(values), "max": max(values)}


def run_nights(
    directory: Path,
    cases: int,
    seed: int,
    days: list[dt.date],
    source: sa.Engine,
    source_url: str,
    store_url: str,
) -> None:
    """Generate ``cases`` case plans and run every night of ``days``, nobody acting; the
    agendas of the Monday meetings are recorded as ``lko send`` would."""
    case_file, staff_file = directory / "cases.jsonl", directory / "staff.jsonl"
    generate(cases, seed, days[0], case_file, staff_file)
    source.dispose()
    for stale in (directory / "source.sqlite", directory / "store.sqlite"):
        stale.unlink(missing_ok=True)
    load_staff_file(source, staff_file)
    load_cases(source, case_file)
    with MailCatcher(directory / "mail") as catcher:
        settings = dataclasses.replace(
            load_settings(env={}),
            source_url=source_url,
            store_url=store_url,
            rules_dir=PACKAGED_RULES_DIR,
            workers=2,
            smtp=SmtpSettings(host="127.0.0.1", port=catcher.port, tls="none", timeout_seconds=30),
        )
        upgrade_store(settings)
        for i, night in enumerate(days, start=1):
            summary = run(settings, RunOptions(night, "manual", force=True))
            print(f"night {i}/{len(days)} {night}: {summary.status}", file=sys.stderr)
            if night.weekday() == 0 and night != days[-1]:  # a meeting every Tuesday
                agendas(source, store_url, night, record=True)


def measure(
    directory: Path, cases: int, nights: int, seed: int, read_only: bool = False
) -> dict[str, Any]:
    """Run the nights (unless ``read_only``: read what an earlier run left in
    ``directory``) and measure what the people get on the last one."""
    directory.mkdir(parents=True, exist_ok=True)
    days = working_days(LAST_NIGHT, nights)
    source_url = f"sqlite:///{directory / 'source.sqlite'}"
    store_url = f"sqlite:///{directory / 'store.sqlite'}"
    source = sa.create_engine(source_url)
    started = time.perf_counter()
    if not read_only:
        run_nights(directory, cases, seed, days, source, source_url, store_url)
    last = days[-1]
    store = sa.create_engine(store_url)
    with store.connect() as conn:
        mails = conn.execute(
            sa.select(outbox.c.kind, outbox.c.recipient_id, outbox.c.body_text).where(
                outbox.c.as_of == last
            )
        ).all()
        open_rows = conn.execute(
            sa.select(
                signals.c.case_ref,
                signals.c.regievoerder,
                signals.c.severity,
                signals.c.opened_on,
                signals.c.escalated_on,
                signals.c.explained_until,
                signals.c.gap_since,
                signals.c.baseline,
                *([signals.c.covered_by] if "covered_by" in signals.c else []),
            ).where(signals.c.closed_on.is_(None))
        ).all()
    store.dispose()
    manager_mail = {r.recipient_id: r.body_text for r in mails if r.kind == "regievoerder"}
    digests = [r.body_text for r in mails if r.kind == "teamleider"]
    index = case_index(source, status="open")
    open_cases = len(index)
    shown = sum(
        1
        for r in open_rows
        if r.gap_since is None
        and (r.explained_until is None or r.explained_until < last)
        and getattr(r, "covered_by", None) is None
    )
    missing_critical = []
    for r in open_rows:
        fresh = (r.opened_on == last and not r.baseline) or r.escalated_on == last
        if r.severity != "critical" or not fresh or r.gap_since is not None:
            continue
        if getattr(r, "covered_by", None) is not None:
            continue
        if r.explained_until is not None and r.explained_until >= last:
            continue
        body = manager_mail.get(r.regievoerder or "", "")
        if r.case_ref not in body:
            missing_critical.append(r.case_ref)
    found = agendas(source, store_url, last, record=False)
    source.dispose()
    agenda_sizes = [len(a.items) + len(a.rao) for a in found]
    agenda_lines = [text_lines(render_agenda(a).text) for a in found]
    today = [n for n in (today_items(b) for b in manager_mail.values()) if n is not None]
    return {
        "cases": cases,
        "open_cases": open_cases,
        "nights": nights,
        "last_night": last.isoformat(),
        "seconds": round(time.perf_counter() - started, 1),
        "case_manager_mail_lines": spread([text_lines(b) for b in manager_mail.values()]),
        "today_items": spread(today),
        "open_signals_per_case_stored": round(len(open_rows) / open_cases, 2),
        "open_signals_per_case_shown": round(shown / open_cases, 2),
        "new_or_escalated_critical_missing_from_mail": len(missing_critical),
        "team_digest_lines": spread([text_lines(b) for b in digests]),
        "agenda_cases_per_team": spread(agenda_sizes),
        "agenda_rao_per_team": spread([len(a.rao) for a in found]),
        "agenda_cases_asking_per_team": spread(
            [len(a.items) + len(a.rao) + a.not_shown for a in found]
        ),
        "agenda_lines_per_team": spread(agenda_lines),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--nights", type=int, default=15)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "attention")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--read-only", action="store_true", help="measure what an earlier run left in --dir"
    )
    args = parser.parse_args(argv)
    result = measure(args.dir, args.cases, args.nights, args.seed, args.read_only)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
