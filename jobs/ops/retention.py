"""Retention: what the store and the drop folder keep, and for how long (``[retention]``).

- Outbox message bodies (``body_text``, ``body_html``) of mail that is no longer waiting
  to be sent (sent, failed, uncertain, superseded) are emptied after ``message_body_days``; the row
  (recipient id, date, status, Message-ID) stays as the record of what was sent.
- Signals of cases closed (close reason ``case_closed``) more than ``closed_signal_days``
  ago are deleted with every episode of that case, the case's events (``signal_events``)
  and its command-line explanations (``signal_explanations``, whose free-text reasons
  should not outlive the case).
- Processed exports in ``<drop_dir>/archive`` and refused ones in ``<drop_dir>/refused``
  older than ``export_days`` are deleted (links are removed, never followed).

``purge(..., dry_run=True)`` counts without changing anything. The nightly job purges
after each run; ``regiesignaal purge [--dry-run]`` does it by hand.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from regiesignaal.engine.store.tables import explanations as signal_explanations
from regiesignaal.engine.store.tables import outbox, signal_events, signals
from regiesignaal.jobs.config import Settings

log = logging.getLogger("regiesignaal.retention")


@dataclass
class PurgeReport:
    message_bodies: int = 0
    signals: int = 0
    signal_events: int = 0
    explanations: int = 0
    exports: int = 0
    dry_run: bool = False


def _expired_case_refs(conn: sa.Connection, cutoff: dt.date) -> sa.Select[tuple[str]]:
    """case_refs closed before ``cutoff`` with no open or later-closed signal."""
    return (
        sa.select(signals.c.case_ref)
        .group_by(signals.c.case_ref)
        .having(
            sa.func.count() == sa.func.count(signals.c.closed_on),  # none open
            sa.func.max(signals.c.closed_on) < cutoff,
            sa.func.sum(sa.case((signals.c.close_reason == "case_closed", 1), else_=0)) > 0,
        )
    )


def purge_store(
    store: sa.Engine, settings: Settings, *, now: dt.datetime | None = None, dry_run: bool = False
) -> PurgeReport:
    """Empty old message bodies and delete signals of long-closed cases (see module)."""
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(settings.tz).date()
    report = PurgeReport(dry_run=dry_run)
    body_cutoff = now - dt.timedelta(days=settings.retention_body_days)
    case_cutoff = today - dt.timedelta(days=settings.retention_signal_days)
    old_bodies = sa.and_(
        outbox.c.status.in_(("sent", "failed", "uncertain", "superseded")),
        outbox.c.created_at < body_cutoff,
        sa.or_(
            outbox.c.body_text != "",
            outbox.c.body_html != "",
            outbox.c.attachment_html.is_not(None),
        ),
    )
    with store.begin() as conn:
        report.message_bodies = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(outbox).where(old_bodies)
            ).scalar_one()
        )
        refs = _expired_case_refs(conn, case_cutoff).subquery()
        doomed = sa.select(signals.c.id).where(signals.c.case_ref.in_(sa.select(refs.c.case_ref)))
        ids = [int(i) for i in conn.execute(doomed).scalars()]
        report.signals = len(ids)
        if ids:
            of_case = sa.select(refs.c.case_ref)
            report.signal_events = int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(signal_events)
                    .where(signal_events.c.case_ref.in_(of_case))
                ).scalar_one()
            )
            report.explanations = int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(signal_explanations)
                    .where(signal_explanations.c.case_ref.in_(of_case))
                ).scalar_one()
            )
            if not dry_run:
                conn.execute(signal_events.delete().where(signal_events.c.case_ref.in_(of_case)))
                conn.execute(
                    signal_explanations.delete().where(signal_explanations.c.case_ref.in_(of_case))
                )
        if not dry_run:
            conn.execute(
                outbox.update()
                .where(old_bodies)
                .values(body_text="", body_html="", attachment_html=None)
            )
            for start in range(0, len(ids), 500):
                conn.execute(signals.delete().where(signals.c.id.in_(ids[start : start + 500])))
    return report


def archive_dir(settings: Settings) -> Path | None:
    return settings.drop_dir / "archive" if settings.drop_dir is not None else None


def purge_exports(settings: Settings, *, now: float | None = None, dry_run: bool = False) -> int:
    """Delete exports in ``archive`` and ``refused`` older than ``export_days`` (by the
    entry's own time, links never followed; see ``jobs.ops.dropfolder``); returns how many
    (or would). A folder that is not the product's own real folder is left alone."""
    if settings.drop_dir is None:
        return 0
    from regiesignaal.jobs.ops import dropfolder

    cutoff = (now or time.time()) - settings.retention_export_days * 86400
    count = 0
    try:
        with dropfolder.opened_dir(settings.drop_dir) as drop:
            for folder in ("archive", "refused"):
                if dropfolder.kind(drop, folder) is None:
                    continue
                with dropfolder.subdir(drop, folder, settings.drop_dir / folder) as fd:
                    for name in sorted(os.listdir(fd)):
                        if os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime < cutoff:
                            count += 1
                            if not dry_run:
                                dropfolder.remove(fd, name)
    except dropfolder.DropFolderError as exc:
        log.warning("purge of old exports skipped: %s", type(exc).__name__)
        log.debug("%s", exc)
    return count


def purge(
    settings: Settings, store: sa.Engine, *, now: dt.datetime | None = None, dry_run: bool = False
) -> PurgeReport:
    """Everything retention removes: store and archived exports."""
    report = purge_store(store, settings, now=now, dry_run=dry_run)
    report.exports = purge_exports(settings, now=now.timestamp() if now else None, dry_run=dry_run)
    log.info(
        "purge%s: bodies=%d signals=%d events=%d explanations=%d exports=%d",
        " (dry run)" if dry_run else "",
        report.message_bodies,
        report.signals,
        report.signal_events,
        report.explanations,
        report.exports,
    )
    return report
