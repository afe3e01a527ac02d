"""A realistic multi-night run whose messages can be read back: for the privacy scan,
the browser test and the README's pictures.

Synthetic case plans (``fixtures.generator``) are loaded once; the pipeline then runs for
each as-of date in turn and delivers to a local SMTP server on loopback (so the outbox
holds ``sent`` rows, as in production). Nothing here is a mock: real rules, real store,
real SMTP.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.packaged import PACKAGED_RULES_DIR
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.config import Settings, load_settings
from regiesignaal.jobs.pipeline import RunOptions, RunSummary, run, upgrade_store
from regiesignaal.notifications.delivery.mailserver import MailCatcher
from regiesignaal.notifications.delivery.settings import SmtpSettings

RULES_DIR = PACKAGED_RULES_DIR


@dataclass(frozen=True)
class RunMessage:
    """One queued message of the run, as stored in the outbox."""

    as_of: dt.date
    kind: str  # regievoerder | teamleider
    recipient_id: str
    subject: str
    text: str
    html: str
    status: str
    attachment_html: str | None = None  # the whole list attached to a case manager's mail


@dataclass
class MailRun:
    settings: Settings
    staff: dict[str, dict[str, Any]]
    summaries: list[RunSummary]
    messages: list[RunMessage]


def multi_night_run(
    directory: Path,
    nights: Sequence[dt.date],
    *,
    cases: int = 400,
    seed: int = 5,
    changes: dict[str, Any] | None = None,
) -> MailRun:
    """Generate ``cases`` case plans as of the first night, then run every night in
    ``nights`` (ascending) with delivery to a loopback SMTP server. ``changes`` replaces
    settings fields (e.g. ``{"digest": "weekly"}``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    case_file, staff_file = directory / "cases.jsonl", directory / "staff.jsonl"
    generate(cases, seed, nights[0], case_file, staff_file)
    source_url = f"sqlite:///{directory / 'source.sqlite'}"
    store_url = f"sqlite:///{directory / 'store.sqlite'}"
    source = sa.create_engine(source_url)
    try:
        load_staff_file(source, staff_file)
        load_cases(source, case_file)
    finally:
        source.dispose()
    from regiesignaal.engine.source.read import load_staff

    source = sa.create_engine(source_url)
    try:
        staff = load_staff(source)
    finally:
        source.dispose()
    summaries = []
    with MailCatcher(directory / "mail") as catcher:
        settings = dataclasses.replace(
            load_settings(env={}),
            source_url=source_url,
            store_url=store_url,
            rules_dir=RULES_DIR,
            workers=1,
            smtp=SmtpSettings(host="127.0.0.1", port=catcher.port, tls="none", timeout_seconds=10),
            **(changes or {}),
        )
        upgrade_store(settings)
        for night in nights:
            summaries.append(run(settings, RunOptions(night, "manual", force=True)))
    return MailRun(settings, staff, summaries, read_messages(store_url))


def read_messages(store_url: str) -> list[RunMessage]:
    """Every message in the outbox, oldest first."""
    from regiesignaal.engine.store.tables import outbox

    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(outbox).order_by(outbox.c.id)).all()
    finally:
        engine.dispose()
    return [
        RunMessage(
            r.as_of,
            r.kind,
            r.recipient_id,
            r.subject,
            r.body_text,
            r.body_html,
            r.status,
            r.attachment_html,
        )
        for r in rows
    ]
