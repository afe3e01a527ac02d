"""Alerts for the operator: short mails about trouble, through the same outbox.

An alert is queued as an outbox message of kind ``operator`` to every address in
``[alerts] operators``; the outbox's uniqueness per (as_of, kind, recipient_id) with
``recipient_id = "<subject>:<address hash>"`` and ``as_of`` = today makes it at most one
mail per subject per address per day. Alerts name run ids, dates and counts and point
at the command that shows more; they never contain case contents (no case references,
no names, no rule ids: a rule id can reveal a case's category).

Subjects (``SUBJECTS``): a run failed, a run was refused, the rules do not check, mail
undelivered past ``[alerts] undelivered_hours``, an export in the drop folder refused,
a scheduled night that did not run, mail of the day not out by ``[smtp] retry_until``.

With ``[alerts] webhook_url`` every alert raised is also POSTed there as JSON (a second
channel, so an alert about a broken relay does not depend on that relay): the subject,
its Dutch title, the date, the run id, the host and counts; never the text of the mail
(notifications/delivery/webhook.py). The mail goes out at most once per subject and day;
the webhook is called each time the alert is raised.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import socket
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from regiesignaal.engine.store.tables import outbox as outbox_table
from regiesignaal.notifications.delivery import outbox, webhook
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.settings import AlertSettings

log = logging.getLogger("regiesignaal.alerts")

SUBJECTS: dict[str, str] = {
    "run_failed": "nachtelijke run mislukt",
    "run_refused": "nachtelijke run geweigerd",
    "rules": "de regels bevatten fouten",
    "undelivered": "berichten niet afgeleverd",
    "export_refused": "levering uit de dropmap geweigerd",
    "missed": "geplande nacht niet gedraaid",
    "rules_last_good": "de regels bevatten fouten; de nacht draaide met de vorige regelset",
    "late_mail": "berichten van vandaag nog niet afgeleverd",
}


def _recipient_id(subject: str, address: str) -> str:
    digest = hashlib.sha256(address.lower().encode()).hexdigest()[:16]
    return f"{subject}:{digest}"


def compose_alert(subject: str, lines: Sequence[str], day: dt.date) -> ComposedMessage:
    """The alert mail: Dutch, plain text and HTML, ids and counts only."""
    title = f"[regiesignaal] {SUBJECTS[subject]} ({day.isoformat()})"
    body = [
        "Melding voor de beheerder van regiesignaal.",
        "",
        *lines,
        "",
        "Meer: 'regiesignaal runs' en 'regiesignaal runs show ID' op de server. U krijgt over "
        "dit onderwerp hoogstens één melding per dag.",
    ]
    text = "\n".join(body) + "\n"
    html_body = "".join(f"<p>{html.escape(line)}</p>" for line in body if line)
    return ComposedMessage(title, text, f'<html lang="nl"><body>{html_body}</body></html>')


def alert_payload(
    subject: str, day: dt.date, run_id: int, counts: Mapping[str, int]
) -> dict[str, object]:
    """The webhook's JSON object: ids, a date and counts only."""
    return {
        "source": "regiesignaal",
        "alert": subject,
        "title": SUBJECTS[subject],
        "date": day.isoformat(),
        "run_id": run_id or None,
        "host": socket.gethostname(),
        "counts": {str(k): int(v) for k, v in counts.items()},
    }


def raise_alert(
    store: sa.Engine,
    settings: AlertSettings,
    subject: str,
    lines: Sequence[str],
    *,
    run_id: int = 0,
    now: dt.datetime | None = None,
    counts: Mapping[str, int] | None = None,
    also: Sequence[str] = (),
) -> int:
    """Queue the alert ``subject`` to every operator (and the addresses ``also``, e.g. the
    policy owners); returns how many were new today.

    Without configured operators it only logs. Never raises for a database problem (an
    alert must not turn trouble into a crash); it logs it instead.
    """
    if subject not in SUBJECTS:
        raise ValueError(f"unknown alert subject {subject!r}")
    log.warning("alert %s (run %d)", subject, run_id)
    now = now or outbox.utcnow()
    day = now.astimezone(settings.tz).date()
    if settings.webhook_url:
        webhook.post_json(
            settings.webhook_url,
            alert_payload(subject, day, run_id, counts or {}),
            settings.http_timeout_seconds,
        )
    recipients = list(dict.fromkeys([*settings.operators, *(a for a in also if a)]))
    if not recipients:
        return 0
    message = compose_alert(subject, lines, day)
    sender_domain = settings.smtp.sender.rpartition("@")[2] or "regiesignaal.local"
    queued = 0
    try:
        with store.begin() as conn:
            for address in recipients:
                queued += outbox.enqueue(
                    conn,
                    run_id=run_id,
                    as_of=day,
                    kind="operator",
                    recipient_id=_recipient_id(subject, address),
                    recipient_email=address,
                    message=message,
                    sender_domain=sender_domain,
                    now=now,
                )
    except sa.exc.SQLAlchemyError as exc:
        log.error("alert %s not queued: %s", subject, type(exc).__name__)
    return queued


def undelivered(store: sa.Engine, settings: AlertSettings, now: dt.datetime | None = None) -> int:
    """Messages to staff still pending, sending or failed longer than the threshold."""
    now = now or outbox.utcnow()
    limit = now - dt.timedelta(hours=settings.alert_undelivered_hours)
    with store.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(outbox_table)
                .where(
                    outbox_table.c.kind != "operator",
                    outbox_table.c.status.in_(("pending", "sending", "failed")),
                    outbox_table.c.created_at < limit,
                )
            ).scalar_one()
        )


def check_undelivered(
    store: sa.Engine, settings: AlertSettings, now: dt.datetime | None = None
) -> int:
    """Alert when mail stays undelivered past ``[alerts] undelivered_hours``; the count."""
    n = undelivered(store, settings, now)
    if n:
        raise_alert(
            store,
            settings,
            "undelivered",
            [
                f"{n} bericht(en) aan medewerkers staan langer dan "
                f"{settings.alert_undelivered_hours} uur onverstuurd of mislukt.",
                "Controleer de mailserver en probeer opnieuw met 'regiesignaal deliver --now' "
                "(mislukte: 'regiesignaal deliver --retry-failed').",
            ],
            now=now,
            counts={"undelivered": n},
        )
    return n


def deliver_alerts(store: sa.Engine, settings: AlertSettings) -> None:
    """Try to send queued mail now (alerts included); trouble is logged, never raised."""
    if not settings.mail_enabled or not settings.operators:
        return
    from regiesignaal.notifications.delivery.smtp import deliver_pending

    try:
        deliver_pending(store, settings.smtp)
    except Exception as exc:  # an unreachable relay must not crash the caller
        log.error("alert delivery failed: %s", type(exc).__name__)
