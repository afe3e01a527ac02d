"""The messages of one night: each message kind asked in turn, all queued in one transaction.

The pipeline calls :func:`queue_night` once per run after reconcile. It asks, in this order,
the case manager's list (on working days), the team digests (on digest days, and catch-up
for a digest that was missed) and the rule report (weekly), each kind deciding who gets
what; every message is queued in the outbox in one transaction, so a crash leaves none of
the night's messages queued and a rerun composes them all. A recipient who already has
the night's message in the outbox is skipped (the same date twice sends nothing twice).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.pool import Pool
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.dates import is_working_day
from regiesignaal.engine.memory import release_free_memory
from regiesignaal.notifications.case_manager import (
    RenderTask,
    iter_case_manager_lists,
    new_since,
    own_figures,
    render_list,
)
from regiesignaal.notifications.compose.overrides import check_template_overrides
from regiesignaal.notifications.compose.render import MailOptions, count_nl
from regiesignaal.notifications.delivery import outbox
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.recipients import Staff, address_of
from regiesignaal.notifications.rule_report import queue_rule_report
from regiesignaal.notifications.settings import MailSettings
from regiesignaal.notifications.shared import RuleMeta
from regiesignaal.notifications.team_digest import RenderTask as DigestTask
from regiesignaal.notifications.team_digest import (
    missed_digest_starts,
    render_digest,
    team_digests,
)

COMPOSE_GROUP = 64
"""Case managers whose messages are composed (by the worker pool) and queued together."""


@dataclass
class NightMail:
    """What queueing the night's messages did: new outbox rows per kind, and problems
    (Dutch lines for the run's record: addresses that could not be used, a rule report
    page that could not be written, a day without case manager mail)."""

    enqueued: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def mail_options(settings: MailSettings) -> MailOptions:
    """The ``[mail]`` settings that shape a message."""
    return MailOptions(
        detail="minimal" if settings.mail_detail == "minimal" else "full",
        daily_items=settings.mail_daily_items,
        full_list=settings.mail_full_list,
        full_list_weekday=settings.mail_full_list_weekday,
        full_cases=settings.mail_full_cases,
        escalations_shown=settings.digest_escalations_shown,
        compare_case_managers=settings.digest_compare_case_managers,
        staff_names=settings.mail_staff_names,
        templates_dir=settings.mail_templates_dir,
    )


def template_problems(settings: MailSettings) -> list[str]:
    """``file:line: problem`` for every broken template override; [] without overrides."""
    if settings.mail_templates_dir is None:
        return []
    return check_template_overrides(settings.mail_templates_dir)


def _render_all(
    pool: Pool | None, render: Callable[[Any], ComposedMessage], tasks: list[Any]
) -> Iterator[ComposedMessage]:
    """The messages of ``tasks`` in order: handed to the worker pool at once (rendered
    while the caller goes on), or rendered one by one as they are taken without a pool."""
    if pool is None or not tasks:
        return map(render, tasks)
    return pool.imap(render, tasks, chunksize=4)


def queue_night(
    store: sa.Engine,
    settings: MailSettings,
    as_of: dt.date,
    *,
    run_id: int,
    staff: Staff,
    rules_by_id: Mapping[str, Any],
    bonus: Mapping[str, int],
    open_cases_per_manager: Mapping[str, int],
    any_day: bool = False,
    pool: Pool | None = None,
    open_cases: int | None = None,
) -> NightMail:
    """Compose every message of the night and queue it in the outbox, in one transaction.

    ``rules_by_id``: the active rules (``engine.language.rulefile.model.Rule``); ``bonus``:
    the case factors' priority bonus per case_ref; ``any_day``: case managers get mail on
    any day (the demo), not only on working days; ``pool``: worker processes that render;
    ``open_cases``: the night's open cases, for the rule report's share per rule.
    """
    night = NightMail()
    problems = night.problems
    meta = {rid: RuleMeta.of(r) for rid, r in rules_by_id.items()}
    sender_domain = settings.smtp.sender.rpartition("@")[2] or "regiesignaal.local"
    allowed = settings.smtp.allowed_domains
    with store.begin() as conn:

        def queue(kind: str, recipient: str, email: str, message: ComposedMessage) -> None:
            if outbox.enqueue(
                conn,
                run_id=run_id,
                as_of=as_of,
                kind=kind,
                recipient_id=recipient,
                recipient_email=email,
                message=message,
                sender_domain=sender_domain,
                settle=False,  # settle_queued below, once for the night
            ):
                night.enqueued[kind] += 1

        queued = outbox.queued_recipients(conn, as_of)
        working_day = any_day or is_working_day(as_of)
        if not working_day:
            problems.append(
                f"{as_of} is geen werkdag: geen berichten aan regievoerders (wel signalen "
                "bijgewerkt); de volgende werkdag tellen ze als nieuw"
            )
        shape = mail_options(settings)
        if working_day:
            reached = outbox.last_reached(conn, "regievoerder", as_of)
            lines_problems: list[str] = []
            # "Jouw cijfers" once a week, on the digest weekday (issue 18)
            own = (
                own_figures(conn, as_of, meta, staff, open_cases_per_manager)
                if as_of.weekday() == settings.digest_weekday
                else {}
            )

            def list_tasks() -> Iterator[RenderTask]:
                for staff_id, found in iter_case_manager_lists(
                    conn,
                    as_of,
                    meta,
                    settings.case_link,
                    bonus,
                    reached,
                    lines_problems,
                    defer=True,  # the workers make the lines (render_list)
                ):
                    if ("regievoerder", staff_id) in queued:
                        continue
                    email = address_of(staff, staff_id, problems, found.line_count, allowed)
                    if email is not None:
                        found.own = own.get(staff_id)
                        since = new_since(reached.get(staff_id), as_of)
                        yield (staff_id, email, as_of, found, shape, since)

            # one group of recipients at a time, and the next group's lines are read while
            # the workers render this one's: memory holds two groups' lines and messages
            tasks = list_tasks()
            group = list(itertools.islice(tasks, COMPOSE_GROUP))
            messages = _render_all(pool, render_list, group)
            while group:
                following = list(itertools.islice(tasks, COMPOSE_GROUP))
                rendering = _render_all(pool, render_list, following)
                for (staff_id, address, *_), message in zip(group, messages, strict=True):
                    queue("regievoerder", staff_id, address, message)
                group, messages = following, rendering
                # the group's messages (100 KB each) are queued and gone: without this
                # the C allocator keeps their memory and the process creeps (issue 19)
                release_free_memory()
            problems.extend(lines_problems)
        # weekly digests go out on their weekday whatever it is; daily ones on working days;
        # a digest that was missed goes out with the next run (catch-up)
        catch_up = missed_digest_starts(
            as_of,
            settings.digest,
            settings.is_digest_day,
            staff,
            outbox.last_reached(conn, "teamleider", as_of),
        )
        mail_day = settings.digest == "weekly" or working_day
        digest_day = settings.is_digest_day(as_of) and mail_day
        if not mail_day:
            catch_up = {}  # a daily digest never goes out on a weekend or holiday
        if digest_day or catch_up:
            result = team_digests(
                conn,
                as_of,
                settings.digest,
                staff,
                open_cases_per_manager,
                meta,
                settings.case_link,
                period_starts=catch_up,
                staff_names=settings.mail_staff_names,
                escalations_kept=shape.escalations_shown,  # the rest are counted
            )
            problems.extend(result.problems)
            digest_tasks: list[DigestTask] = []
            for lead, member in sorted(staff.items()):
                digest = result.digests.get(member.get("team") or "")
                if member.get("role") != "teamleider" or digest is None:
                    continue
                if not digest_day and digest.team not in catch_up:
                    continue
                if ("teamleider", lead) in queued:
                    continue
                email = address_of(staff, lead, problems, 1, allowed)
                if email is not None:
                    digest_tasks.append((lead, email, digest, shape))
            # rendered by the workers too, queued in the same order as before
            rendered = _render_all(pool, render_digest, digest_tasks)
            for (lead, email, *_), message in zip(digest_tasks, rendered, strict=True):
                queue("teamleider", lead, email, message)
            del result, digest_tasks, rendered
            release_free_memory()
        email_of = partial(address_of, staff, problems=problems, n=1, allowed=allowed)
        problems.extend(
            queue_rule_report(
                settings,
                conn,
                as_of,
                rules_by_id,
                staff,
                queue,
                queued,
                email_of,
                open_cases=open_cases,
            )
        )
        outbox.settle_queued(conn, run_id=run_id, as_of=as_of)
    return night


def unsettled_problems(store: sa.Engine, as_of: dt.date) -> list[str]:
    """Dutch lines about messages stuck in delivery (a killed run) or with an unknown
    outcome for ``as_of``: a rerun after a crash says so instead of looking clean."""
    with store.connect() as conn:
        found = outbox.unsettled(conn, as_of)
    out = []
    if found["stuck"]:
        out.append(
            f"{count_nl(found['stuck'], 'bericht', 'berichten')} blijven hangen in verzending "
            "(een eerdere bezorging is onderbroken, of een andere bezorging loopt nog); "
            "10 minuten na de onderbreking handelt 'regiesignaal deliver' ze af: wat nog niet "
            "verstuurd was opnieuw, wat mogelijk is aangekomen niet (of vervangen door een "
            "nieuwer bericht)"
        )
    if found["uncertain"]:
        out.append(
            f"{count_nl(found['uncertain'], 'bericht', 'berichten')} van {as_of} mogelijk "
            "aangekomen (uitkomst onbekend; niet opnieuw verstuurd): zoek het Message-ID op "
            "in het logboek van de mailserver; niet aangekomen? 'regiesignaal deliver "
            "--retry-uncertain'"
        )
    return out
