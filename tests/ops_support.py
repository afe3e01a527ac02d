"""Shared helpers for the operations tests (scheduler, lock, alerts, retention, intake)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
from email import policy
from pathlib import Path

import sqlalchemy as sa

from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.config import Settings, load_settings
from regiesignaal.jobs.pipeline import upgrade_store
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.delivery.settings import SmtpSettings

RULES = Path(__file__).resolve().parents[1] / "rules"
AS_OF = dt.date(2026, 3, 2)  # a Monday


def make_source(directory: Path, cases: int = 120, seed: int = 3) -> tuple[str, Path, Path]:
    """A SQLite source with synthetic cases; returns (url, cases.jsonl, staff.jsonl)."""
    case_file, staff_file = directory / "cases.jsonl", directory / "staff.jsonl"
    generate(cases, seed, AS_OF, case_file, staff_file)
    url = f"sqlite:///{directory / 'source.sqlite'}"
    engine = sa.create_engine(url)
    try:
        load_staff_file(engine, staff_file)
        load_cases(engine, case_file)
    finally:
        engine.dispose()
    return url, case_file, staff_file


def make_settings(source_url: str, store_url: str, port: int = 1, **changes: object) -> Settings:
    settings = dataclasses.replace(
        load_settings(env={}),
        source_url=source_url,
        store_url=store_url,
        rules_dir=RULES,
        workers=1,
        mail_enabled=False,
        smtp=SmtpSettings(host="127.0.0.1", port=port, tls="none", timeout_seconds=10),
    )
    settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
    upgrade_store(settings)
    return settings


def run_rows(store_url: str) -> list[sa.Row[tuple[object, ...]]]:
    from regiesignaal.engine.store.tables import runs

    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(runs).order_by(runs.c.id)).all())
    finally:
        engine.dispose()


def enqueue_lists(engine: sa.Engine, n: int, as_of: dt.date, now: dt.datetime) -> None:
    """Queue ``n`` case manager lists (rv-0 ... rv-N-1 at dtv.example) as of ``as_of``."""
    with engine.begin() as conn:
        for i in range(n):
            assert ob.enqueue(
                conn,
                run_id=1,
                as_of=as_of,
                kind="regievoerder",
                recipient_id=f"rv-{i}",
                recipient_email=f"rv-{i}@dtv.example",
                message=ComposedMessage(f"Onderwerp {i}", f"tekst {i}\n", f"<p>{i}</p>"),
                sender_domain="dtv.example",
                now=now,
            )


def outbox_rows(engine: sa.Engine) -> list[ob.OutboxRow]:
    """Every outbox row, in id order."""
    with engine.connect() as conn:
        ids = conn.execute(sa.select(ob.outbox.c.id).order_by(ob.outbox.c.id)).scalars().all()
        found = [ob.get(conn, i) for i in ids]
    return [r for r in found if r is not None]


def received_texts(directory: Path, seen: set[Path]) -> dict[str, str]:
    """The text and HTML parts (the whole-list attachment included) of every .eml in
    ``directory`` not yet in ``seen``, by recipient address; adds them to ``seen``."""
    out = {}
    for path in sorted(directory.glob("*.eml")):
        if path in seen:
            continue
        seen.add(path)
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        parts = [
            p.get_content()  # type: ignore[attr-defined]
            for p in msg.walk()
            if p.get_content_type() in ("text/plain", "text/html") and not p.is_multipart()
        ]
        out[str(msg["To"])] = "\n".join(parts)
    return out
