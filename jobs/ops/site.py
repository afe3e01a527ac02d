"""``regiesignaal init DIR``: a site folder for an installation.

Creates, in a new or empty folder:

- ``regiesignaal.toml``: every setting with a Dutch comment, ready to fill in;
- ``rules/``: an editable copy of the default rule pack (the configuration points here);
- ``schema/``: the JSON Schemas the ``$schema`` comment at the top of every copied rule file
  points at, so an editor completes and checks the rules (``regiesignaal rules schema``
  writes them again after a change to ``rules/derived.yaml``);
- ``regiesignaal-scheduler.service``: a systemd unit that runs ``regiesignaal scheduler``
  with this configuration (install with ``systemctl link`` or copy to /etc/systemd/system);
- ``regiesignaal.env``: where the SMTP password goes (read by the unit; mode 600).

Nothing is overwritten: a folder that is not empty is refused. Any file system error
(no permission, a path through a file, a full disk) becomes :class:`SiteRefused` naming
the folder; what was already written stays for the operator to inspect.
"""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path

from regiesignaal.engine.language.packaged import schema_dir_for
from regiesignaal.engine.language.schema import write_schemas
from regiesignaal.jobs.config import packaged_rules_dir


class SiteRefused(Exception):
    """The folder cannot be used; ``str()`` says why (Dutch)."""


CONFIG_TEMPLATE = """\
# Configuratie van regiesignaal op deze server (gemaakt door 'regiesignaal init').
# Relatieve paden gelden vanaf de map van dit bestand. Omgevingsvariabelen
# (REGIESIGNAAL_...) gaan voor; zie de README voor de volledige lijst.
# Het SMTP-wachtwoord hoort NIET hier: zet het in regiesignaal.env.

[database]
# Bron (alleen lezen) en store (signalen, runs, outbox). Productie: PostgreSQL, bijv.
# source_url = "postgresql+psycopg://regiesignaal_ro@db.dtv.example/zaken"
# store_url = "postgresql+psycopg://regiesignaal@db.dtv.example/regiesignaal"
source_url = "sqlite:///var/source.sqlite"
store_url = "sqlite:///var/store.sqlite"

[rules]
dir = "rules"                      # de bewerkbare kopie van het regelpakket hiernaast
on_broken = "last_good"            # kapotte regels: draai met de laatste goede regelset
                                   # (beheer en beleid krijgen een melding) | refuse

[smtp]
host = "smtp.dtv.example"          # de mailrelay
port = 587
tls = "starttls"                   # starttls | tls | none (none alleen voor een lokale testserver)
user = "regiesignaal"
sender = "regiesignaal@dtv.example"
timeout_seconds = 30
max_attempts = 8
retry_until = "12:00"              # uitgestelde mail: tot dan elke minuut opnieuw, daarna gemeld

[mail]
enabled = true
case_link_template = "https://zaaksysteem.dtv.example/zaken/{case_ref}"
digest = "weekly"                  # daily | weekly
digest_weekday = "monday"

[run]
batch_size = 2000
workers = 2
timezone = "Europe/Amsterdam"
schedule = "06:00"                 # tijdstip van de nachtelijke run (UU:MM, in timezone)
max_minutes = 180                  # een nacht die langer duurt wordt gestopt en gemeld

[scheduler]
days = "mon-fri"                   # werkdagen; "mon-sun" voor elke dag
misfire_grace_minutes = 240        # gemiste nacht: draait alsnog als de scheduler zo laat terug is

[alerts]
# meldingen bij storingen (hoogstens één per onderwerp per dag). Zolang hier geen adres
# staat, worden meldingen alleen gelogd; vul het adres van het beheerteam in:
# operators = ["beheer@dtv.example"]
undelivered_hours = 6              # melding als mail langer dan dit onverstuurd blijft
# heartbeat_url = "https://hc.example/ping/..."  # aangeroepen na elke geslaagde nacht
# webhook_url = "https://meldingen.example/..."  # elke melding ook als JSON (ids, aantallen)
http_timeout_seconds = 10          # voor beide; een monitor die plat ligt, breekt geen nacht

[status]
# 'regiesignaal status' voor monitoring: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
night_late_minutes = 180           # geplande nacht zo lang na zijn tijd nog niet geslaagd
mail_pending_minutes = 60          # mail die langer wacht: WARNING
mail_days = 7                      # mislukte of onzekere mail van zoveel dagen telt mee
heartbeat_warning_minutes = 5      # hartslag van de scheduler ouder: WARNING; 0 = niet kijken
heartbeat_critical_minutes = 15    # ouder: CRITICAL

[metrics]
# textfile_dir = "/var/lib/node_exporter/textfile_collector"  # regiesignaal.prom na elke nacht

[retention]
message_body_days = 60             # berichtteksten in de outbox (de regel en status blijven)
closed_signal_days = 730           # signalen van zaken die langer gesloten zijn
export_days = 14                   # leveringen in <drop_dir>/archive en /refused

# [intake]
# drop_dir = "drop"                # haal de zaken uit een dropmap i.p.v. de brondatabase

[logging]
format = "plain"                   # plain | json (één regel per gebeurtenis)
"""

UNIT_TEMPLATE = """\
# systemd-unit voor de scheduler van regiesignaal (gemaakt door 'regiesignaal init').
# Installeren: sudo systemctl link {unit} && sudo systemctl enable --now {name}
# Stoppen (een lopende run wordt netjes afgebroken en later hervat): systemctl stop {name}
[Unit]
Description=regiesignaal scheduler (nachtelijke kwaliteitssignalen)
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
Type=simple
User=regiesignaal
WorkingDirectory={site}
Environment=REGIESIGNAAL_CONFIG={config}
EnvironmentFile=-{site}/regiesignaal.env
ExecStart={exe} scheduler
KillSignal=SIGTERM
TimeoutStopSec=360
Restart=on-failure
RestartSec=30

[Install]
WantedBy=multi-user.target
"""

ENV_TEMPLATE = """\
# Geheimen voor regiesignaal (gelezen door de systemd-unit). Alleen leesbaar voor de
# gebruiker regiesignaal: chmod 600 regiesignaal.env
REGIESIGNAAL_SMTP_PASSWORD=
"""

UNIT_NAME = "regiesignaal-scheduler.service"


def _executable() -> str:
    script = Path(sys.executable).with_name("regiesignaal")
    return str(script) if script.exists() else f"{sys.executable} -m jobs.cli"


_OS_REASONS = {
    errno.ENOTDIR: "een deel van het pad is een bestand, geen map",
    errno.EEXIST: "een deel van het pad bestaat al als bestand",
    errno.ENOSPC: "de schijf is vol",
    errno.EROFS: "het bestandssysteem is alleen-lezen",
    errno.EACCES: "geen schrijfrechten",
}


def create_site(directory: Path) -> list[Path]:
    """Create the site folder (see module docstring); returns the paths written.

    Raises :class:`SiteRefused` (Dutch message naming the folder) when the folder is not
    empty or cannot be written."""
    directory = Path(directory).resolve()
    try:
        return _create_site(directory)
    except OSError as exc:
        reason = (
            "geen schrijfrechten (maak de map eerst aan als een gebruiker die dat mag en geef "
            "hem aan de gebruiker van regiesignaal, bijv. met mkdir en chown)"
            if isinstance(exc, PermissionError)
            else _OS_REASONS.get(exc.errno or 0, f"bestandsfout ({type(exc).__name__})")
        )
        raise SiteRefused(f"de sitemap {directory} kan niet worden aangemaakt: {reason}") from None


def _create_site(directory: Path) -> list[Path]:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise SiteRefused(
            f"{directory} bestaat al en is niet leeg; kies een nieuwe of lege map "
            "(er wordt nooit iets overschreven)"
        )
    rules = packaged_rules_dir()
    if not rules.is_dir():
        raise SiteRefused(f"het meegeleverde regelpakket is niet gevonden ({rules})")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "regiesignaal.toml"
    config.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    target = directory / "rules"
    shutil.copytree(rules, target, ignore=shutil.ignore_patterns("__pycache__", "*.py*"))
    schemas = schema_dir_for(target)
    write_schemas(schemas, target)
    unit = directory / UNIT_NAME
    unit.write_text(
        UNIT_TEMPLATE.format(
            unit=unit, name=UNIT_NAME, site=directory, config=config, exe=_executable()
        ),
        encoding="utf-8",
    )
    env = directory / "regiesignaal.env"
    env.write_text(ENV_TEMPLATE, encoding="utf-8")
    env.chmod(0o600)
    (directory / "var").mkdir()
    return [config, target, schemas, unit, env]
