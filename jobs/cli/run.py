"""``regiesignaal run`` and ``regiesignaal deliver``: one whole run by hand, and sending what
waits in the outbox. Thin shells over ``jobs.pipeline.run`` and
``notifications.delivery.smtp.deliver_pending``.

Exit codes: 0 done; 1 refused (the message says why); 2 configuration or database error;
3 mail not (yet) delivered, or failed or possibly arrived mail not settled by a newer
message (``deliver``, issue 17); 4 another run holds the run lock.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click
from rich.markup import escape

from regiesignaal.jobs.cli.common import as_of_option, console, err, settings_of, today_of
from regiesignaal.jobs.cli.tables import cli_table, print_table


@click.command("run")
@as_of_option
@click.option(
    "--no-mail",
    is_flag=True,
    help="Berichten wel klaarzetten in de outbox, niet versturen (dat doet 'deliver' of de "
    "volgende run; een nieuwere run vervangt ze).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Ook draaien als de bron geen of veel minder open zaken heeft dan de vorige run, "
    "of als de peildatum meer dan een dag vooruit ligt.",
)
@click.option(
    "--trigger", default="manual", hidden=True, type=click.Choice(["manual", "scheduler", "demo"])
)
@click.pass_context
def run_command(
    ctx: click.Context, as_of: dt.date | None, no_mail: bool, force: bool, trigger: str
) -> None:
    """Voer de hele nachtelijke run één keer uit."""
    from regiesignaal.jobs.pipeline import RunOptions, RunRefused
    from regiesignaal.jobs.pipeline import run as run_pipeline

    settings = settings_of(ctx)
    day = as_of or today_of(settings)
    from regiesignaal.jobs.cli.progress import busy
    from regiesignaal.jobs.ops.nightly import Terminated, stop_cleanly

    try:
        with stop_cleanly(settings), busy(f"Run peildatum {day}", err):
            options = RunOptions(day, trigger, deliver=not no_mail, force=force)
            summary = run_pipeline(settings, options)
    except Terminated as exc:
        err.print(f"Run gestopt ({exc}); vastgelegd als afgebroken.", markup=False)
        sys.exit(1)
    except RunRefused as exc:
        err.print(f"Run niet gestart: {exc}", style="red", markup=False)
        for line in exc.details:
            click.echo(line, err=True)
        sys.exit(_refused_exit_code(exc))
    print_summary(summary)
    from regiesignaal.jobs.mail_status import EXIT_MAIL_WAITING, mail_needs_look

    if mail_needs_look(summary.delivery, summary.problems):
        sys.exit(EXIT_MAIL_WAITING)


def _refused_exit_code(exc: Exception) -> int:
    """1 for a refused run, 4 when another run holds the lock (engine/store/lock.py)."""
    from regiesignaal.engine.store.lock import EXIT_LOCKED
    from regiesignaal.jobs.pipeline import RunLocked

    return EXIT_LOCKED if isinstance(exc, RunLocked) else 1


def print_summary(summary: Any) -> None:
    console.print(
        f"Run {summary.run_id} peildatum {summary.as_of}: [bold]{escape(summary.status)}[/bold] "
        f"(regels {escape(str(summary.ruleset_version))})",
        markup=True,
    )
    console.print(f"Open zaken gelezen: {summary.cases}")
    shadow = set(getattr(summary, "shadow_rules", ()))
    table = cli_table("regel", "signalen", title="Signalen per regel")
    for rule_id, n in summary.signals_per_rule.items():
        table.add_row(rule_id + (" (schaduw: niet gemaild)" if rule_id in shadow else ""), str(n))
    print_table(console, table)
    r = summary.reconcile
    console.print(
        f"Nieuw: {r.get('new', 0)} (heropend {r.get('reopened', 0)}), "
        f"bestaand (eerste nacht of live gezet): {r.get('baseline', 0)}, "
        f"nog open: {r.get('still_open', 0)}, tijdelijk afwezig: {r.get('in_gap', 0)}, "
        f"geëscaleerd: {r.get('escalated_today', 0)}, "
        f"met toelichting: {r.get('explained', 0)}, "
        f"toelichting verlopen: {r.get('explanation_expired', 0)}, "
        f"vervallen (gegevens gewijzigd): {r.get('explanation_lapsed', 0)}"
    )
    console.print(
        f"Gesloten: opgelost {r.get('resolved', 0)}, zaak gesloten {r.get('closed_case', 0)}, "
        f"regel uit {r.get('rule_removed', 0)}, regel ingetrokken {r.get('rule_retired', 0)}"
    )
    m = summary.messages_enqueued
    console.print(
        f"Berichten klaargezet: {m.get('regievoerder', 0)} regievoerder, "
        f"{m.get('teamleider', 0)} teamleider"
    )
    if summary.delivery is not None:
        console.print(summary.delivery.line(), markup=False)
    for problem in summary.problems[:20]:
        err.print(f"let op: {problem}", style="yellow", markup=False)
    if len(summary.problems) > 20:
        err.print(f"... en {len(summary.problems) - 20} meer (zie 'regiesignaal runs')")


@click.command("deliver")
@click.option("--now", "now_", is_flag=True, help="Wacht niet op de herhaaltijd: probeer alles nu.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Zet mislukte berichten terug in de wachtrij (tenzij er al een nieuwer bericht is).",
)
@click.option(
    "--retry-uncertain",
    is_flag=True,
    help="Zet berichten met onbekende uitkomst ('mogelijk aangekomen') terug in de wachtrij; "
    "alleen na controle in het logboek van de mailserver (anders kan het dubbel aankomen).",
)
@click.pass_context
def deliver_command(
    ctx: click.Context, now_: bool, retry_failed: bool, retry_uncertain: bool
) -> None:
    """Verstuur berichten die nog in de outbox staan (bijv. na een SMTP-storing)."""

    from regiesignaal.engine.store.db import store_engine
    from regiesignaal.notifications.delivery import outbox
    from regiesignaal.notifications.delivery.smtp import deliver_pending

    settings = settings_of(ctx)
    store = store_engine(settings.store_url)
    try:
        with store.begin() as conn:
            if retry_failed:
                console.print(f"Terug in de wachtrij: {outbox.requeue_failed(conn)}")
                _refuse_emptied(outbox.emptied(conn, "failed"), "mislukte")
            if retry_uncertain:
                n = outbox.requeue_uncertain(conn)
                console.print(f"Onbekende uitkomst terug in de wachtrij: {n}")
                _refuse_emptied(outbox.emptied(conn, "uncertain"), "onzekere")
            if now_:
                console.print(f"Nu te proberen: {outbox.release_due(conn, outbox.utcnow())}")
        report = None
        if settings.mail_enabled:
            report = deliver_pending(store, settings.smtp)
        else:
            err.print("Versturen staat uit ([mail] enabled = false).", markup=False)
        with store.connect() as conn:
            counts = outbox.counts(conn)
            look = outbox.needs_look(conn)
    finally:
        store.dispose()
    if report is not None:
        console.print(report.line(), markup=False)
        for e in report.errors[:20]:
            click.echo(e, err=True)
    console.print(
        "Outbox: " + ", ".join(f"{status} {n}" for status, n in counts.items()), markup=False
    )
    from regiesignaal.jobs.mail_status import EXIT_MAIL_WAITING, mail_needs_look

    if any(look.values()):
        err.print(
            f"Nog te bekijken: {look['failed']} mislukt, {look['uncertain']} mogelijk "
            "aangekomen, zonder nieuwer bericht voor dezelfde ontvanger ('regiesignaal "
            "deliver --retry-failed', of --retry-uncertain na controle van de mailserver)",
            markup=False,
        )
    if mail_needs_look(report, (), counts, look):
        sys.exit(EXIT_MAIL_WAITING)


def _refuse_emptied(n: int, what: str) -> None:
    """Say why rows whose body retention emptied were not requeued (issue 17)."""
    if n:
        err.print(
            f"{n} {what} {'bericht' if n == 1 else 'berichten'} niet teruggezet: de inhoud "
            "is geleegd door de bewaartermijn ([retention] message_body_days) en een leeg "
            "bericht wordt nooit verstuurd; de volgende lijst aan die ontvanger vervangt het",
            markup=False,
        )
