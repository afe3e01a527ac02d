"""Command line for the chain meeting: ``lko agenda`` and ``lko send``.

Thin shells over ``notifications.lko_agenda``; messages are Dutch. Exit codes: 0 done,
1 the data or rules cannot be used (message says what to do), 2 wrong use or configuration.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import sqlalchemy as sa

from regiesignaal.engine.language.rulefile.model import RuleDir
from regiesignaal.jobs.cli.common import ID, parse_date, settings_of
from regiesignaal.jobs.config import Settings
from regiesignaal.notifications.lko_agenda import AgendaHistory, AgendaOptions, Escalated, Meeting


class StoreNotReady(RuntimeError):
    """The store is missing or not migrated: nothing is queued."""


lko_group = click.Group("lko", help="Lokaal ketenoverleg: agenda per locatie of team.")


def _settings(ctx: click.Context) -> Settings:
    return settings_of(ctx)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _inputs(
    settings: Settings, as_of: dt.date
) -> tuple[RuleDir, list[dict[str, Any]], list[Escalated]]:
    """Rules, open cases and escalated episodes, or a clear exit."""
    from regiesignaal.engine.language.casefile import shown_key
    from regiesignaal.engine.language.compiler import check_rule_dir
    from regiesignaal.engine.source.read import case_index, read_case_range
    from regiesignaal.engine.store.db import store_engine
    from regiesignaal.jobs.pipeline import RunRefused, source_engine
    from regiesignaal.notifications.lko_agenda import load_escalated

    ruledir = check_rule_dir(settings.rules_dir)
    if not ruledir.ok:
        _fail(
            f"De regels in {settings.rules_dir} bevatten {len(ruledir.problems)} probleem/"
            "problemen; voer 'regiesignaal rules check' uit en herstel ze."
        )
    try:
        source = source_engine(settings.source_url)
    except RunRefused as exc:
        _fail(str(exc))
    cases: list[dict[str, Any]] = []
    unreadable: dict[str, str] = {}
    try:
        index = case_index(source, status="open")
        for i in range(0, len(index), settings.batch_size):
            chunk = index[i : i + settings.batch_size]
            read = read_case_range(source, chunk[0][0], chunk[-1][0])
            cases.extend(read.cases)
            unreadable.update(read.unreadable)
    except sa.exc.SQLAlchemyError:
        _fail("De brondatabase kan niet worden gelezen; controleer source_url.")
    finally:
        source.dispose()
    for case_ref, kind in sorted(unreadable.items()):
        click.echo(
            f"Let op: zaak {shown_key(case_ref)} heeft onleesbare gegevens in de brondatabase "
            f"({kind}); overgeslagen. Herstel de zaak in de bron.",
            err=True,
        )
    store = store_engine(settings.store_url)
    try:
        escalated = load_escalated(store, as_of)
    except sa.exc.SQLAlchemyError:
        escalated = []  # no store yet (no run so far): the agenda shows the rule reasons only
        click.echo(
            "Let op: geen signaalopslag gevonden; geëscaleerde signalen ontbreken.", err=True
        )
    finally:
        store.dispose()
    return ruledir, cases, escalated


def _agenda_options(settings: Settings) -> AgendaOptions:
    from regiesignaal.notifications.lko_agenda import LkoConfigError, load_agenda_options

    try:
        return load_agenda_options(settings.config_path)
    except LkoConfigError as exc:
        _fail(str(exc), 2)


def _history(settings: Settings, meeting: str, day: dt.date) -> AgendaHistory | None:
    """The meeting's earlier agendas (None without a store: no marks then)."""
    from regiesignaal.engine.store.db import store_engine
    from regiesignaal.notifications.lko_agenda import load_history

    store = store_engine(settings.store_url)
    try:
        return load_history(store, meeting, day + dt.timedelta(days=1))
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        store.dispose()


def _silences(settings: Settings, day: dt.date) -> list[Any]:
    """The silences in force on ``day`` (none without a store)."""
    from regiesignaal.engine.store.db import store_engine
    from regiesignaal.engine.store.silences import active_silences

    store = store_engine(settings.store_url)
    try:
        with store.connect() as conn:
            return list(active_silences(conn, day))
    except sa.exc.SQLAlchemyError:
        return []
    finally:
        store.dispose()


@lko_group.command("agenda")
@click.option("--location", type=ID, help="Locatie-id (het zaakveld 'location').")
@click.option("--team", type=ID, help="Team-id, in plaats van een locatie.")
@click.option("--as-of", "as_of", callback=parse_date, help="Peildatum JJJJ-MM-DD.")
@click.option("--html", "as_html", is_flag=True, help="HTML in plaats van tekst.")
@click.option(
    "--output", type=click.Path(path_type=Path, dir_okay=False), help="Schrijf naar bestand."
)
@click.pass_context
def agenda_command(
    ctx: click.Context,
    location: str | None,
    team: str | None,
    as_of: dt.date | None,
    as_html: bool,
    output: Path | None,
) -> None:
    """De agenda van het lokaal ketenoverleg: per zaak waarom en de vraag aan het overleg."""
    from regiesignaal.engine.language.casefile import shown_key
    from regiesignaal.engine.language.dates import today_amsterdam
    from regiesignaal.notifications.compose.lko_agenda import render_agenda
    from regiesignaal.notifications.lko_agenda import build_agenda

    if (location is None) == (team is None):
        _fail("Geef precies één van --location of --team.", 2)
    settings = _settings(ctx)
    day = as_of or today_amsterdam()
    ruledir, cases, escalated = _inputs(settings, day)
    key, wanted = ("location", location) if location is not None else ("team", team)
    known = sorted({str(c.get(key)) for c in cases if c.get(key)})
    if wanted not in known:
        kind = "locatie" if key == "location" else "team"
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        _fail(
            f"Geen open zaken met {kind} {shown_key(str(wanted))} in de brondatabase; een "
            f"tikfout? Bekende {kind}s: {shown or '(geen)'}."
        )
    agenda = build_agenda(
        cases,
        escalated,
        ruledir,
        day,
        location=location,
        team=team,
        history=_history(settings, f"locatie:{location}" if location else f"team:{team}", day),
        options=_agenda_options(settings),
        silences=_silences(settings, day),
    )
    message = render_agenda(agenda)
    text = message.html if as_html else message.text
    if output is not None:
        output.write_text(text, encoding="utf-8")
        click.echo(f"Agenda geschreven naar {output} ({len(agenda.items)} zaken).")
    else:
        click.echo(text, nl=False)


@lko_group.command("send")
@click.option("--as-of", "as_of", callback=parse_date, help="Peildatum JJJJ-MM-DD.")
@click.option(
    "--dry-run", is_flag=True, help="Alleen tonen welke agenda's verstuurd zouden worden."
)
@click.pass_context
def send_command(ctx: click.Context, as_of: dt.date | None, dry_run: bool) -> None:
    """Verstuur de agenda van elk ingesteld overleg op de werkdag ervoor ([[lko.meeting]])."""
    from regiesignaal.engine.language.dates import today_amsterdam
    from regiesignaal.notifications.lko_agenda import LkoConfigError, load_meetings

    settings = _settings(ctx)
    day = as_of or today_amsterdam()
    try:
        meetings = load_meetings(settings.config_path)
    except LkoConfigError as exc:
        _fail(str(exc), 2)
    if not meetings:
        click.echo("Geen overleggen ingesteld ([[lko.meeting]] in regiesignaal.toml).")
        return
    ruledir, cases, escalated = _inputs(settings, day)
    try:
        report = send_due_agendas(settings, meetings, cases, escalated, ruledir, day, dry_run)
    except StoreNotReady as exc:
        _fail(str(exc))
    for line in report:
        click.echo(line)


def send_due_agendas(
    settings: Settings,
    meetings: Sequence[Meeting],
    cases: Sequence[Mapping[str, Any]],
    escalated: Sequence[Escalated],
    ruledir: RuleDir,
    as_of: dt.date,
    dry_run: bool = False,
) -> list[str]:
    """Queue the due agendas in the outbox (once per meeting date and recipient) and deliver.

    Returns Dutch report lines (ids and counts only). The outbox row's as-of date is the
    meeting date, so a second run before the same meeting queues nothing again.
    """
    from regiesignaal.engine.store import migrate
    from regiesignaal.engine.store.db import store_engine
    from regiesignaal.notifications.delivery import outbox as ob
    from regiesignaal.notifications.delivery.smtp import deliver_pending
    from regiesignaal.notifications.lko_agenda import (
        due_messages,
        load_agenda_options,
        recipient_key,
        record_agenda,
    )

    options = load_agenda_options(settings.config_path)
    if dry_run:
        return [
            f"{m.scope}: overleg op {day.isoformat()}, {len(m.recipients)} ontvanger(s)"
            for m, day, _, _ in due_messages(meetings, cases, escalated, ruledir, as_of)
        ]
    if not migrate.is_up_to_date(settings.store_url):
        raise StoreNotReady(
            "de opslag (store) heeft niet het juiste schema; voer eerst "
            "'regiesignaal db upgrade' uit"
        )
    store = store_engine(settings.store_url)
    lines = []
    try:
        due = due_messages(meetings, cases, escalated, ruledir, as_of, store=store, options=options)
        domain = settings.smtp.sender.rpartition("@")[2] or "localhost"
        queued = 0
        with store.begin() as conn:
            for m, day, agenda, message in due:
                record_agenda(conn, m.key, day, agenda)
                for i, address in enumerate(m.recipients):
                    queued += ob.enqueue(
                        conn,
                        run_id=0,
                        as_of=day,
                        kind="lko",
                        recipient_id=recipient_key(m, i),
                        recipient_email=address,
                        message=message,
                        sender_domain=domain,
                    )
                lines.append(f"{m.scope}: agenda voor {day.isoformat()} klaargezet")
        lines.append(f"{queued} bericht(en) nieuw in de wachtrij")
        if settings.mail_enabled and queued:
            report = deliver_pending(store, settings.smtp)
            lines.append(f"verzonden: {report.sent}, mislukt: {report.failed}")
    finally:
        store.dispose()
    return lines
