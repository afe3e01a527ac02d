"""`regiesignaal demo`: the whole product on the embedded default, in one command.

Fresh SQLite databases under the demo directory, generated synthetic case plans, a local
SMTP server on loopback that saves every message it receives as an .eml file, one run as of
today, and a short summary that says where to look.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console

from regiesignaal.engine.language.dates import today_amsterdam
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.pipeline import RunOptions, RunRefused, RunSummary, run, upgrade_store
from regiesignaal.notifications.delivery.mailserver import MailCatcher
from regiesignaal.notifications.delivery.settings import SmtpSettings

DEMO_MARKER = ".regiesignaal-demo"

SHADOW_NIGHTS = 5
"""From this many nights on the demo rehearses a rule in shadow and promotes it before the
last night (jobs/demo/nights.py)."""


class DemoRefused(Exception):
    pass


def run_demo(
    directory: Path,
    *,
    cases: int = 2000,
    seed: int = 42,
    console: Console | None = None,
    nights: int = 1,
    rules_dir: Path | None = None,
    show_summary: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """The demo in ``directory``; ``rules_dir`` (default: the configured rules folder, see
    jobs.config) is the rule pack it runs. With ``nights`` > 1 the source evolves over that
    many working days ending today (see jobs/demo/nights.py) and the last night's summary
    is returned. ``show_summary`` (the command line's summary printer) shows that summary
    before the closing lines."""
    console = console or Console()
    directory = Path(directory)
    marker = directory / DEMO_MARKER
    if directory.exists() and any(directory.iterdir()) and not marker.exists():
        raise DemoRefused(
            f"{directory} bestaat al en is geen demomap van regiesignaal; kies een lege of "
            "nieuwe map met --dir (de demo maakt de map elke keer opnieuw)"
        )
    if directory.exists():
        shutil.rmtree(directory)
    mail_dir = directory / "mail"
    mail_dir.mkdir(parents=True)
    marker.write_text(
        "Deze map is gemaakt door 'regiesignaal demo' en wordt elke keer vervangen.\n"
    )
    from regiesignaal.jobs.demo.nights import (
        Evolution,
        copy_rules,
        operator_explanation,
        policy_silence,
        promote_shadow_rule,
    )
    from regiesignaal.jobs.demo.nights import nights as night_dates

    days = night_dates(today_amsterdam(), nights) if nights > 1 else [today_amsterdam()]
    as_of = days[0]  # the demo always uses Europe/Amsterdam
    case_file = directory / "cases.jsonl"
    staff_file = directory / "staff.jsonl"
    generate(cases, seed, as_of, case_file, staff_file)
    source_url = f"sqlite:///{(directory / 'source.sqlite').resolve()}"
    store_url = f"sqlite:///{(directory / 'store.sqlite').resolve()}"
    source = sa.create_engine(source_url)
    try:
        staff_report = load_staff_file(source, staff_file)
        case_report = load_cases(source, case_file)
    finally:
        source.dispose()
    console.print(
        f"Synthetische data: {case_report.loaded} zaken, {staff_report.loaded} medewerkers "
        f"(seed {seed}, peildatum {as_of})."
    )
    base = load_settings(env={})
    if rules_dir is not None:
        base = dataclasses.replace(base, rules_dir=Path(rules_dir).resolve())
    rehearse = nights >= SHADOW_NIGHTS  # a rule rehearsed in shadow, promoted before the last
    rules_copy = copy_rules(base.rules_dir, directory / "regels", with_shadow_rule=rehearse)
    base = dataclasses.replace(base, rules_dir=rules_copy)
    report_dir = directory / "regelrapport"
    config_file = write_demo_config(directory, source_url, store_url, base.rules_dir, report_dir)
    with MailCatcher(mail_dir) as catcher:
        settings = dataclasses.replace(
            base,
            source_url=source_url,
            store_url=store_url,
            rule_report_dir=report_dir,
            smtp=SmtpSettings(
                host="127.0.0.1",
                port=catcher.port,
                tls="none",  # loopback only: the local demo server speaks plain SMTP
                sender="regiesignaal@dtv.example",
                timeout_seconds=10,
            ),
        )
        upgrade_store(settings)
        evolution = Evolution(case_file, seed) if nights > 1 else None
        explained_case: str | None = None
        story: list[str] = []
        for i, day in enumerate(days):
            if evolution is not None and i:
                if i == 3:  # the explained case changes under its explanation
                    evolution.explained_case = explained_case
                evolution.evolve(sa.create_engine(source_url), day, directory)
                if i == 1:
                    explained_case = operator_explanation(store_url, day)
                    if explained_case is not None:
                        story.append(f"nacht 2: toelichting gegeven op zaak {explained_case}")
                if i == 2:
                    silence = policy_silence(store_url, day, _rule_ids(settings))
                    if silence is not None:
                        story.append(f"nacht 3: stilte {silence} voor één regel en één team")
                last = i == len(days) - 1
                if rehearse and last and promote_shadow_rule(settings.rules_dir, store_url):
                    story.append(
                        f"nacht {i + 1}: regel in schaduw live gezet (regels in "
                        f"{settings.rules_dir}); zijn signalen tellen als bestaand"
                    )
                if i == 3 and explained_case is not None:
                    story.append(
                        f"nacht 4: zaak {explained_case} kreeg een tweede vertrekwens; "
                        "de toelichting vervalt"
                    )
            try:
                summary = run(settings, RunOptions(day, "demo", case_manager_mail_any_day=True))
            except RunRefused as exc:
                raise DemoRefused(_refusal(exc, cases)) from None
            if evolution is not None:
                r = summary.reconcile
                console.print(
                    f"Nacht {i + 1}/{nights} ({day}): nieuw {r.get('new', 0)}, bestaand "
                    f"{r.get('baseline', 0)}, geëscaleerd {r.get('escalated_today', 0)}, "
                    f"toelichting verlopen {r.get('explanation_expired', 0)}, "
                    f"vervallen {r.get('explanation_lapsed', 0)}, "
                    f"gesloten {r.get('resolved', 0) + r.get('closed_case', 0)}"
                )
        received = catcher.messages
    if show_summary is not None:
        show_summary(summary)
    console.print(
        f"\n[bold]Klaar.[/bold] {received} berichten ontvangen door de lokale mailserver.\n"
        f"  berichten:     {mail_dir}/*.eml (open ze in een mailprogramma)\n"
        f"  brondata:      {case_file} en {staff_file}\n"
        f"  databases:     {directory / 'source.sqlite'} en {directory / 'store.sqlite'}\n"
        f"  configuratie:  {config_file} (bron, store en regels van deze demo)\n"
        f"  regelrapport:  {report_dir / 'regelrapport.html'}\n"
        f"  verder kijken (regiesignaal staat in {_installed_at()}):\n"
        f"    export REGIESIGNAAL_CONFIG={config_file}\n"
        "    regiesignaal runs\n"
        "    regiesignaal preview --diff\n"
        "    regiesignaal explain <zaak>",
        markup=True,
    )
    if nights > 1:
        console.print(
            "    regiesignaal signals list\n    regiesignaal signals show <zaak>\n"
            "    regiesignaal silences list --all",
            markup=False,
        )
    for line in story:
        console.print(f"  {line}", markup=False)
    console.print(
        "  let op: de demo mailt regievoerders op elke dag, ook in het weekend; een echte "
        "run alleen op werkdagen.",
        markup=False,
    )
    return summary


def _refusal(exc: RunRefused, cases: int) -> str:
    """The Dutch message for a demo whose run was refused (exit code 1)."""
    if cases < 1:
        return (
            "De demo kon de run niet starten: de brondatabase heeft geen open zaken "
            "(--cases 0). Gebruik --cases 1 of meer."
        )
    details = "".join(f"\n  {line}" for line in exc.details[:10])
    return f"De demo kon de run niet starten: {exc}{details}"


def _installed_at() -> str:
    """The folder holding the ``regiesignaal`` command of this installation."""
    return str(Path(sys.executable).parent)


def _rule_ids(settings: Any) -> set[str]:
    """The ids of the rules in the demo's rule folder."""
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir

    return {rule.id for rule in load_rule_dir(settings.rules_dir).rules}


def write_demo_config(
    directory: Path, source_url: str, store_url: str, rules_dir: Path, report_dir: Path
) -> Path:
    """A configuration file for the demo's databases, so the next commands read them."""
    path = directory / "regiesignaal.toml"
    path.write_text(
        "# Geschreven door 'regiesignaal demo': de databases en regels van deze demo.\n"
        "# Gebruik: export REGIESIGNAAL_CONFIG=<dit bestand> (of --config <dit bestand>).\n"
        "[database]\n"
        f"source_url = {_toml(source_url)}\n"
        f"store_url = {_toml(store_url)}\n\n"
        "[rules]\n"
        f"dir = {_toml(str(Path(rules_dir).resolve()))}\n\n"
        "[report]\n"
        f"dir = {_toml(str(Path(report_dir).resolve()))}\n\n"
        "[smtp]\n"
        "# 'regiesignaal mailcatcher' luistert hier; alleen loopback, dus zonder TLS\n"
        'host = "127.0.0.1"\n'
        "port = 1025\n"
        'tls = "none"\n',
        encoding="utf-8",
    )
    return path.resolve()


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
