"""Settings for regiesignaal: defaults, an optional TOML file, and environment overrides.

Precedence, lowest to highest: built-in defaults, the TOML file, the environment.

The TOML file is the ``path`` argument, else the file named by ``REGIESIGNAAL_CONFIG``,
else ``./regiesignaal.toml`` when it exists; without any of these the defaults apply and
no file is needed. Relative paths inside the file (``[rules] dir``, a relative SQLite
database path) are relative to the file's own folder; relative paths in defaults and in
the environment are relative to the current directory.

The SMTP password comes only from ``REGIESIGNAAL_SMTP_PASSWORD``: a password in the file
is refused. It never appears in ``repr``/``str`` of the settings nor in :func:`describe`;
database URLs are shown with their password masked.

Every problem raises :class:`ConfigError` with a Dutch message that names the file (or
environment variable), the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from regiesignaal.engine.language.dates import CalendarError, use_calendar_file
from regiesignaal.engine.language.packaged import PACKAGED_RULES_DIR
from regiesignaal.notifications.compose.render import CaseLink
from regiesignaal.notifications.delivery.settings import SmtpSettings, TlsMode

DigestMode = Literal["daily", "weekly"]

CONFIG_ENV = "REGIESIGNAAL_CONFIG"
PASSWORD_ENV = "REGIESIGNAAL_SMTP_PASSWORD"
DEFAULT_CONFIG_FILE = "regiesignaal.toml"


def packaged_rules_dir() -> Path:
    """The default rule pack: ``rules/`` beside the product's folders, in a checkout as in
    an installed wheel (see ``engine.language.packaged``)."""
    return PACKAGED_RULES_DIR


DEFAULT_RULES_DIR = packaged_rules_dir()

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAYS_NL = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
_DIGEST_ALIASES: dict[str, DigestMode] = {
    "daily": "daily",
    "dagelijks": "daily",
    "weekly": "weekly",
    "wekelijks": "weekly",
}
_TLS_MODES: tuple[TlsMode, ...] = ("starttls", "tls", "none")
_LOG_FORMATS = ("plain", "json")
_DAYS = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?"
    r"(,(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?)*$"
)
_SCHEDULE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(:[0-5]\d)?$")


class ConfigError(Exception):
    """A configuration problem; ``str()`` is a complete Dutch message for the operator."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.source = source
        self.key = key
        where = ", ".join(part for part in (source, f"sleutel '{key}'" if key else None) if part)
        super().__init__(f"Configuratiefout in {where}: {message}" if where else message)


@dataclass(frozen=True, repr=False)
class Settings:
    """All settings of one run. Build with :func:`load_settings`; frozen."""

    source_url: str = "sqlite:///var/source.sqlite"
    store_url: str = "sqlite:///var/store.sqlite"
    rules_dir: Path = DEFAULT_RULES_DIR
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    case_link_template: str = "https://zaaksysteem.dtv.example/zaken/{case_ref}"
    timezone: str = "Europe/Amsterdam"
    batch_size: int = 2000
    workers: int = 2
    digest: DigestMode = "daily"
    digest_weekday: int = 0  # date.weekday(): 0 = Monday; used when digest == "weekly"
    schedule: str = "06:00"  # time of day (HH:MM, in ``timezone``) the scheduler starts a run
    schedule_days: str = "mon-fri"  # cron day_of_week of the scheduler (APScheduler syntax)
    misfire_grace_minutes: int = 240  # a night missed while down still runs this late
    max_minutes: float = 180  # a night running longer is stopped, recorded failed, alerted
    mail_enabled: bool = True
    # [signals] (issue 6): working days a signal may be absent and continue its episode;
    # working days over which first-night (baseline) escalation clocks are spread
    grace_days: int = 2
    baseline_spread_days: int = 10
    mail_detail: str = "full"  # full | minimal: per case only reference, count and link
    mail_full_cases: int = 25  # cases shown in full in a case manager's list; rest compact
    mail_first_cases: int = 5  # no longer used (issue 16: "Vandaag" replaced "Eerst doen")
    mail_daily_items: int = 10  # cases under "Vandaag" (and warnings under "Binnenkort")
    mail_full_list: str = "attachment"  # attachment | weekly | both: how the whole list goes
    mail_full_list_weekday: int = 0  # the weekday of the whole list in the mail (weekly)
    digest_escalations_shown: int = 10  # escalations in full in a team digest; rest counted
    # per case manager figures in the team digest: a personnel monitoring system under
    # WOR art. 27(1)(l) (works-council consent, a DPIA); never the default
    digest_compare_case_managers: bool = False
    report_volume_share: float = 0.25  # the rule report flags a rule firing on more cases
    # the rule report's other health flags (issue 18): over the closed episodes of the last
    # report_flag_weeks weeks, once at least report_flag_min_closed of them closed
    report_not_applicable_share: float = 0.5  # more explained "niet van toepassing": flag
    report_min_resolved_by_change: float = 0.1  # fewer resolved by a change in the case: flag
    report_flag_weeks: int = 8
    report_flag_min_closed: int = 10
    mail_staff_names: bool = True  # team digests show the team's case managers' names
    mail_templates_dir: Path | None = None  # operator's template overrides
    rule_report_dir: Path | None = None  # static HTML rule report written per run
    operators: tuple[str, ...] = ()  # operator addresses for alerts ([alerts] operators)
    alert_undelivered_hours: int = 6  # mail pending/failed longer than this: alert
    retention_body_days: int = 60  # outbox message bodies are emptied after this many days
    retention_signal_days: int = 730  # signals of cases closed longer ago are deleted
    retention_export_days: int = 14  # processed exports in the drop folder's archive
    drop_dir: Path | None = None  # take case plans from this drop folder before a run
    log_format: str = "plain"  # plain | json
    config_path: Path | None = None  # the TOML file that was read, if any
    # an operator's file of days equated to public holidays, besides the shipped one
    calendar_file: Path | None = None
    # health surface and last good rule set (issue 17): see docs/operations.md#monitoring
    status_night_late_minutes: int = 180  # [status] a night this late after its time: missed
    status_mail_pending_minutes: int = 60  # [status] mail pending this long: WARNING
    status_mail_days: int = 7  # [status] failed/uncertain mail of this many days counts
    status_heartbeat_warning_minutes: int = 5  # [status] scheduler silent this long; 0 = off
    status_heartbeat_critical_minutes: int = 15  # [status]
    metrics_dir: Path | None = None  # [metrics] textfile_dir: node_exporter's textfile folder
    heartbeat_url: str | None = None  # [alerts] called after every succeeded night
    webhook_url: str | None = None  # [alerts] second alert channel (JSON, ids and counts)
    http_timeout_seconds: float = 10.0  # [alerts] for both calls above
    rules_on_broken: str = "last_good"  # [rules] on_broken: last_good | refuse

    @property
    def schedule_time(self) -> dt.time:
        parts = [int(p) for p in self.schedule.split(":")] + [0]
        return dt.time(parts[0], parts[1], parts[2])

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def case_link(self) -> CaseLink:
        """The link to a case, a function of its reference: ``case_link("Z-7#intern")`` is
        the template with ``Z-7%23intern``."""
        return CaseLink(self.case_link_template)

    def is_digest_day(self, day: dt.date) -> bool:
        """Whether team leads get their digest for as-of date ``day``."""
        return self.digest == "daily" or day.weekday() == self.digest_weekday

    def __repr__(self) -> str:
        # Masks database passwords; SmtpSettings' repr already leaves out its password.
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("source_url", "store_url"):
                value = mask_url(value)
            elif f.name in ("heartbeat_url", "webhook_url") and value:
                value = _shown_http(value)
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    __str__ = __repr__


# --------------------------------------------------------------------------- helpers


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(ongeldige URL)"


def _shown_http(url: str | None) -> str:
    """Only scheme and host of an address: its path or query may hold a token."""
    from urllib.parse import urlsplit

    if not url:
        return "(niet gezet)"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/... (pad verborgen)"


def weekday_name(weekday: int) -> str:
    return WEEKDAYS[weekday]


def _suggest(word: str, options: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _find_line(text: str, section: str, key: str) -> int | None:
    """Best effort: the line number of ``key`` inside ``[section]`` of a TOML text."""
    current = ""  # "" = top level, before any [section]
    key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1).strip("\"'")
            if current == section and not key:
                return number
            continue
        if current == section and key and key_re.match(line):
            return number
    return None


# --------------------------------------------------------------------------- parsers
# Each parser turns a raw value (from TOML, or a string from the environment) into the
# typed value, or raises ValueError with a Dutch description of what is allowed.


def _parse_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("verwacht een niet-lege tekst tussen aanhalingstekens")
    return value.strip()


def _parse_optional_str(value: Any) -> str | None:
    if not isinstance(value, str):
        raise ValueError("verwacht een tekst tussen aanhalingstekens")
    return value.strip() or None


def _parse_url(value: Any) -> str:
    text = _parse_str(value)
    try:
        backend = make_url(text).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError("unsupported backend")
    except (ArgumentError, ValueError) as exc:
        raise ValueError(
            "verwacht een database-URL zoals sqlite:///var/store.sqlite of "
            "postgresql+psycopg://gebruiker@host/database (alleen SQLite en PostgreSQL)"
        ) from exc
    return text


NUMBER_NOTE = "zonder aanhalingstekens, bijv. {example}"
"""In the file a number is a TOML number: ``flag_weeks = 8``, not ``"8"`` (a text)."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_parser(minimum: int, maximum: int) -> Callable[[Any], int]:
    """A TOML integer in [minimum, maximum]; text (``"8"``) and floats (``8.0``) are
    refused. The environment's text goes through :func:`_env_int_parser`."""

    def parse(value: Any) -> int:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not (minimum <= value <= maximum)
        ):
            note = NUMBER_NOTE.format(example=max(minimum, min(maximum, 8)))
            raise ValueError(
                f"verwacht een geheel getal van {minimum} tot en met {maximum} ({note})"
            )
        return value

    return parse


def _env_int_parser(minimum: int, maximum: int) -> Callable[[Any], int]:
    """An environment variable (always text) holding a whole number in [minimum, maximum]."""
    strict = _int_parser(minimum, maximum)

    def parse(value: Any) -> int:
        text = value.strip() if isinstance(value, str) else ""
        if len(text) > 25 or not text.lstrip("+-").isdigit() or not text.isascii():
            raise ValueError(f"verwacht een geheel getal van {minimum} tot en met {maximum}")
        return strict(int(text))

    return parse


def _seconds_parser(maximum: int) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if not _number(value) or not (0 < value <= maximum):
            raise ValueError(
                f"verwacht een aantal seconden groter dan 0 en hoogstens {maximum} "
                f"({NUMBER_NOTE.format(example=30)})"
            )
        return float(value)

    return parse


_parse_timeout = _seconds_parser(3600)


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "ja", "yes"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "nee", "no"}:
        return False
    raise ValueError("verwacht true of false")


def _parse_tls(value: Any) -> TlsMode:
    text = value.strip().lower() if isinstance(value, str) else None
    for mode in _TLS_MODES:
        if text == mode:
            return mode
    raise ValueError(
        "verwacht 'starttls' (standaard), 'tls' of 'none' (alleen voor een lokale testserver)"
    )


def _parse_digest(value: Any) -> DigestMode:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in _DIGEST_ALIASES:
        return _DIGEST_ALIASES[text]
    raise ValueError("verwacht 'daily' (dagelijks) of 'weekly' (wekelijks)")


def _parse_detail(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in ("full", "minimal"):
        return text
    raise ValueError("verwacht 'full' (alle signalen) of 'minimal' (per zaak alleen het aantal)")


def _parse_full_list(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in ("attachment", "weekly", "both"):
        return text
    raise ValueError(
        "verwacht 'attachment' (als bijlage bij elke lijst), 'weekly' (op één weekdag in de "
        "mail) of 'both'"
    )


def _parse_share(value: Any) -> float:
    """A share: a TOML number greater than 0 and at most 1 (1: every case)."""
    if not _number(value) or not 0 < value <= 1:
        raise ValueError(
            "verwacht een deel groter dan 0 en hoogstens 1, "
            f"{NUMBER_NOTE.format(example='0.25 (een kwart)')}"
        )
    return float(value)


def _parse_weekday(value: Any) -> int:
    text = value.strip().lower() if isinstance(value, str) else ""
    for names in (WEEKDAYS, _WEEKDAYS_NL):
        if text in names:
            return names.index(text)
    raise ValueError(f"verwacht een weekdag: {', '.join(WEEKDAYS)} (of de Nederlandse naam)")


def _parse_schedule(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    m = _SCHEDULE.match(text)
    if not m:
        raise ValueError(
            'verwacht een tijdstip als "UU:MM" of "UU:MM:SS" (24 uur), bijvoorbeeld "06:00"'
        )
    return f"{int(m.group(1)):02d}:{m.group(2)}{m.group(3) or ''}"


def _parse_timezone(value: Any) -> str:
    text = _parse_str(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError('verwacht een IANA-tijdzone, bijvoorbeeld "Europe/Amsterdam"') from exc
    return text


def _parse_link_template(value: Any) -> str:
    text = _parse_str(value)
    ok = text.startswith(("https://", "http://")) and "{case_ref}" in text
    if ok:
        try:
            text.format(case_ref="x")
        except (KeyError, IndexError, ValueError):
            ok = False
    if not ok:
        raise ValueError(
            "verwacht een http(s)-adres met precies de plaatshouder {case_ref}, bijvoorbeeld "
            '"https://zaaksysteem.dtv.example/zaken/{case_ref}"'
        )
    return text


def _parse_days(value: Any) -> str:
    text = value.strip().lower().replace(" ", "") if isinstance(value, str) else ""
    if not _DAYS.match(text):
        raise ValueError('verwacht weekdagen als "mon-fri" of "mon,wed,fri" (mon..sun)')
    return text


def _parse_log_format(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in _LOG_FORMATS:
        raise ValueError("verwacht 'plain' of 'json'")
    return text


def _parse_addresses(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError('verwacht een lijst van e-mailadressen, bijvoorbeeld ["beheer@x.nl"]')
    out = []
    for item in items:
        text = item.strip() if isinstance(item, str) else ""
        if not text:
            continue
        if not re.fullmatch(r"[^@\s<>,\"]+@[^@\s<>,\"]+\.[^@\s<>,\"]+", text):
            raise ValueError("verwacht kale e-mailadressen (naam@domein.nl), zonder naam erbij")
        out.append(text)
    return tuple(out)


PATH_MAX = 4096
"""The longest path a setting may name, in characters (Linux's PATH_MAX)."""


def _parse_path(value: Any) -> Path:
    text = _parse_str(value)
    if "\x00" in text:
        raise ValueError("een pad mag geen NUL-teken bevatten; geef een gewoon bestandspad op")
    if len(text) > PATH_MAX:
        raise ValueError(f"het pad is langer dan {PATH_MAX} tekens; kies een korter pad")
    return Path(text).expanduser()


def _parse_sender(value: Any) -> str:
    """One bare address (no display name, no line break); the error never echoes it."""
    from regiesignaal.engine.language.addresses import AddressError, check_address

    try:
        return check_address(value)
    except AddressError as exc:
        raise ValueError(f"geen bruikbaar afzenderadres: {exc}") from None


_parse_deadline = _seconds_parser(86400)


def _parse_ca_file(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("verwacht het pad van een PEM-bestand met de certificaatautoriteit")
    return value.strip()


def _parse_domains(value: Any) -> tuple[str, ...]:
    from regiesignaal.engine.language.addresses import parse_domains

    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise ValueError('verwacht een lijst van domeinnamen, bijv. ["dtv.example"]')
    return parse_domains(value)


def _parse_http_url(value: Any) -> str | None:
    """An http(s) address, or "" for none; the error never echoes it (it may hold a token)."""
    from urllib.parse import urlsplit

    if not isinstance(value, str):
        raise ValueError("verwacht een adres tussen aanhalingstekens")
    text = value.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError('verwacht een http(s)-adres, bijvoorbeeld "https://hc.example/ping/..."')
    if any(c.isspace() for c in text):
        raise ValueError("een adres bevat geen spaties of regeleinden")
    return text


def _parse_on_broken(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in ("last_good", "refuse"):
        raise ValueError(
            "verwacht 'last_good' (draai met de laatste goede regelset) of 'refuse' (weiger de run)"
        )
    return text


# --------------------------------------------------------------------------- schema

# (section, key) -> (settings field, parser). Fields named "smtp.<x>" go into SmtpSettings.
_FILE_KEYS: dict[tuple[str, str], tuple[str, Callable[[Any], Any]]] = {
    ("database", "source_url"): ("source_url", _parse_url),
    ("database", "store_url"): ("store_url", _parse_url),
    ("rules", "dir"): ("rules_dir", _parse_path),
    ("rules", "on_broken"): ("rules_on_broken", _parse_on_broken),
    ("smtp", "host"): ("smtp.host", _parse_str),
    ("smtp", "port"): ("smtp.port", _int_parser(1, 65535)),
    ("smtp", "tls"): ("smtp.tls", _parse_tls),
    ("smtp", "user"): ("smtp.user", _parse_optional_str),
    ("smtp", "sender"): ("smtp.sender", _parse_sender),
    ("smtp", "timeout_seconds"): ("smtp.timeout_seconds", _parse_timeout),
    ("smtp", "max_attempts"): ("smtp.max_attempts", _int_parser(1, 100)),
    ("smtp", "deadline_seconds"): ("smtp.deadline_seconds", _parse_deadline),
    ("smtp", "ca_file"): ("smtp.ca_file", _parse_ca_file),
    ("smtp", "batch_size"): ("smtp.batch_size", _int_parser(1, 1000)),
    ("smtp", "connections"): ("smtp.connections", _int_parser(1, 8)),
    ("smtp", "retry_until"): ("smtp.retry_until", _parse_schedule),
    ("mail", "allowed_domains"): ("smtp.allowed_domains", _parse_domains),
    ("mail", "enabled"): ("mail_enabled", _parse_bool),
    ("mail", "case_link_template"): ("case_link_template", _parse_link_template),
    ("mail", "digest"): ("digest", _parse_digest),
    ("mail", "digest_weekday"): ("digest_weekday", _parse_weekday),
    ("mail", "detail"): ("mail_detail", _parse_detail),
    ("mail", "full_cases"): ("mail_full_cases", _int_parser(0, 10_000)),
    ("mail", "first_cases"): ("mail_first_cases", _int_parser(0, 50)),
    ("mail", "daily_items"): ("mail_daily_items", _int_parser(1, 50)),
    ("mail", "full_list"): ("mail_full_list", _parse_full_list),
    ("mail", "full_list_weekday"): ("mail_full_list_weekday", _parse_weekday),
    ("digest", "escalations_shown"): ("digest_escalations_shown", _int_parser(0, 200)),
    ("digest", "compare_case_managers"): ("digest_compare_case_managers", _parse_bool),
    ("report", "volume_share"): ("report_volume_share", _parse_share),
    ("report", "not_applicable_share"): ("report_not_applicable_share", _parse_share),
    ("report", "min_resolved_by_change"): ("report_min_resolved_by_change", _parse_share),
    ("report", "flag_weeks"): ("report_flag_weeks", _int_parser(1, 52)),
    ("report", "flag_min_closed"): ("report_flag_min_closed", _int_parser(1, 100_000)),
    ("mail", "staff_names"): ("mail_staff_names", _parse_bool),
    ("mail", "templates_dir"): ("mail_templates_dir", _parse_path),
    ("report", "dir"): ("rule_report_dir", _parse_path),
    ("run", "batch_size"): ("batch_size", _int_parser(1, 1_000_000)),
    ("run", "workers"): ("workers", _int_parser(1, 256)),
    ("run", "max_minutes"): ("max_minutes", _int_parser(1, 1440)),
    ("run", "timezone"): ("timezone", _parse_timezone),
    ("run", "schedule"): ("schedule", _parse_schedule),
    ("calendar", "extra_days_file"): ("calendar_file", _parse_path),
    ("signals", "grace_days"): ("grace_days", _int_parser(0, 30)),
    ("signals", "baseline_spread_days"): ("baseline_spread_days", _int_parser(1, 60)),
    ("scheduler", "days"): ("schedule_days", _parse_days),
    ("scheduler", "misfire_grace_minutes"): ("misfire_grace_minutes", _int_parser(1, 1080)),
    ("alerts", "operators"): ("operators", _parse_addresses),
    ("alerts", "undelivered_hours"): ("alert_undelivered_hours", _int_parser(1, 720)),
    ("alerts", "heartbeat_url"): ("heartbeat_url", _parse_http_url),
    ("alerts", "webhook_url"): ("webhook_url", _parse_http_url),
    ("alerts", "http_timeout_seconds"): ("http_timeout_seconds", _parse_timeout),
    ("status", "night_late_minutes"): ("status_night_late_minutes", _int_parser(1, 1440)),
    ("status", "mail_pending_minutes"): ("status_mail_pending_minutes", _int_parser(1, 10080)),
    ("status", "mail_days"): ("status_mail_days", _int_parser(1, 365)),
    ("status", "heartbeat_warning_minutes"): (
        "status_heartbeat_warning_minutes",
        _int_parser(0, 10080),
    ),
    ("status", "heartbeat_critical_minutes"): (
        "status_heartbeat_critical_minutes",
        _int_parser(0, 10080),
    ),
    ("metrics", "textfile_dir"): ("metrics_dir", _parse_path),
    ("retention", "message_body_days"): ("retention_body_days", _int_parser(1, 3650)),
    ("retention", "closed_signal_days"): ("retention_signal_days", _int_parser(1, 36500)),
    ("retention", "export_days"): ("retention_export_days", _int_parser(1, 3650)),
    ("intake", "drop_dir"): ("drop_dir", _parse_path),
    ("logging", "format"): ("log_format", _parse_log_format),
}

ENV_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "REGIESIGNAAL_SOURCE_URL": ("source_url", _parse_url),
    "REGIESIGNAAL_STORE_URL": ("store_url", _parse_url),
    "REGIESIGNAAL_RULES_DIR": ("rules_dir", _parse_path),
    "REGIESIGNAAL_SMTP_HOST": ("smtp.host", _parse_str),
    "REGIESIGNAAL_SMTP_PORT": ("smtp.port", _env_int_parser(1, 65535)),
    "REGIESIGNAAL_SMTP_TLS": ("smtp.tls", _parse_tls),
    "REGIESIGNAAL_SMTP_USER": ("smtp.user", _parse_optional_str),
    PASSWORD_ENV: ("smtp.password", _parse_optional_str),
    "REGIESIGNAAL_SMTP_SENDER": ("smtp.sender", _parse_sender),
    "REGIESIGNAAL_SMTP_CA_FILE": ("smtp.ca_file", _parse_ca_file),
    "REGIESIGNAAL_SMTP_BATCH_SIZE": ("smtp.batch_size", _env_int_parser(1, 1000)),
    "REGIESIGNAAL_SMTP_CONNECTIONS": ("smtp.connections", _env_int_parser(1, 8)),
    "REGIESIGNAAL_CASE_LINK": ("case_link_template", _parse_link_template),
    "REGIESIGNAAL_BATCH_SIZE": ("batch_size", _env_int_parser(1, 1_000_000)),
    "REGIESIGNAAL_WORKERS": ("workers", _env_int_parser(1, 256)),
    "REGIESIGNAAL_CALENDAR_FILE": ("calendar_file", _parse_path),
    "REGIESIGNAAL_OPERATORS": ("operators", _parse_addresses),
    "REGIESIGNAAL_DROP_DIR": ("drop_dir", _parse_path),
    "REGIESIGNAAL_LOG_FORMAT": ("log_format", _parse_log_format),
    "REGIESIGNAAL_HEARTBEAT_URL": ("heartbeat_url", _parse_http_url),
    "REGIESIGNAAL_WEBHOOK_URL": ("webhook_url", _parse_http_url),
}

_SECTIONS = sorted({section for section, _ in _FILE_KEYS})
_FULL_KEYS = sorted(f"{section}.{key}" for section, key in _FILE_KEYS)


def _relative_to(base: Path, field_name: str, value: Any) -> Any:
    """Resolve a relative path (or relative SQLite file) from the config file's folder."""
    dirs = (
        "rules_dir",
        "mail_templates_dir",
        "rule_report_dir",
        "calendar_file",
        "drop_dir",
        "metrics_dir",
    )
    if field_name in dirs and isinstance(value, Path) and not value.is_absolute():
        return base / value
    if field_name == "smtp.ca_file" and not Path(value).is_absolute():
        return str(base / value)
    if field_name in ("source_url", "store_url"):
        url: URL = make_url(value)
        db = url.database
        if (
            url.get_backend_name() == "sqlite"
            and db
            and db != ":memory:"
            and not db.startswith("file:")
            and not Path(db).is_absolute()
        ):
            return url.set(database=str(base / db)).render_as_string(hide_password=False)
    return value


# --------------------------------------------------------------------------- loading


def _config_file(path: Path | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        chosen, origin = Path(path), "het opgegeven configuratiebestand"
    elif env.get(CONFIG_ENV):
        chosen, origin = Path(env[CONFIG_ENV]), f"{CONFIG_ENV}"
    else:
        default = Path(DEFAULT_CONFIG_FILE)
        return default.resolve() if default.is_file() else None
    if not chosen.is_file():
        raise ConfigError(
            f"bestand niet gevonden (genoemd door {origin}); controleer het pad",
            source=str(chosen),
        )
    return chosen.resolve()


def _read_file(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"bestand kan niet gelezen worden: {exc}", source=source) from exc
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(
            "geen geldige TOML: te diep geneste waarden; een instelling heeft hooguit een lijst",
            source=source,
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"geen geldige TOML ({exc}); controleer aanhalingstekens en [secties]",
            source=source,
        ) from exc

    values: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            hint = _suggest(section, _SECTIONS)
            raise ConfigError(
                f"'{section}' staat buiten een sectie; zet sleutels onder een van "
                f"[{'], ['.join(_SECTIONS)}]" + (f" (bedoelde u [{hint}]?)" if hint else ""),
                source=_where(source, text, "", section),
                key=section,
            )
        if section == "lko":  # [[lko.meeting]]: read and checked by notifications.lko_agenda
            continue
        if section not in _SECTIONS:
            hint = _suggest(section, _SECTIONS)
            raise ConfigError(
                "onbekende sectie"
                + (f"; bedoelde u [{hint}]?" if hint else "")
                + f" Toegestaan: [{'], ['.join(_SECTIONS)}]",
                source=_where(source, text, section, ""),
                key=f"[{section}]",
            )
        for key, raw in table.items():
            full = f"{section}.{key}"
            where = _where(source, text, section, key)
            if section == "smtp" and key == "password":
                raise ConfigError(
                    "een SMTP-wachtwoord hoort niet in een bestand. Haal het hier weg en zet "
                    f"het in de omgevingsvariabele {PASSWORD_ENV}",
                    source=where,
                    key=full,
                )
            spec = _FILE_KEYS.get((section, key))
            if spec is None:
                raise ConfigError(_unknown_key_message(section, key), source=where, key=full)
            field_name, parser = spec
            try:
                value = parser(raw)
            except ValueError as exc:
                # never the value itself: the message names file, line and key (a URL may
                # hold a password, an address a person's name)
                raise ConfigError(f"ongeldige waarde: {exc}", source=where, key=full) from exc
            values[field_name] = _relative_to(path.parent, field_name, value)
    return values


def _where(source: str, text: str, section: str, key: str) -> str:
    line = _find_line(text, section, key)
    return f"{source}, regel {line}" if line else source


def _unknown_key_message(section: str, key: str) -> str:
    in_section = sorted(k for s, k in _FILE_KEYS if s == section)
    hint = _suggest(key, in_section)
    full_hint = f"{section}.{hint}" if hint else None
    if full_hint is None:
        elsewhere = [f"{s}.{k}" for s, k in _FILE_KEYS if k == key]
        full_hint = elsewhere[0] if elsewhere else _suggest(f"{section}.{key}", _FULL_KEYS)
    message = "onbekende sleutel"
    if full_hint:
        message += f"; bedoelde u '{full_hint}'?"
    return message + f" Toegestaan in [{section}]: {', '.join(in_section)}"


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (field_name, parser) in ENV_KEYS.items():
        if name not in env:
            continue
        raw = env[name]
        if name == PASSWORD_ENV:
            values[field_name] = raw if raw else None  # kept verbatim, never echoed
            continue
        try:
            values[field_name] = parser(raw)
        except ValueError as exc:
            raise ConfigError(
                f"ongeldige waarde: {exc}", source=f"omgevingsvariabele {name}"
            ) from exc
    return values


def load_settings(path: Path | None = None, env: Mapping[str, str] = os.environ) -> Settings:
    """Defaults, overlaid by the TOML file (if any), overlaid by the environment."""
    config_path = _config_file(path, env)
    values: dict[str, Any] = {}
    if config_path is not None:
        values.update(_read_file(config_path))
    values.update(_read_env(env))

    smtp_values = {k.removeprefix("smtp."): v for k, v in values.items() if k.startswith("smtp.")}
    top = {k: v for k, v in values.items() if not k.startswith("smtp.")}
    settings = Settings(smtp=SmtpSettings(**smtp_values), config_path=config_path, **top)
    if 0 < settings.status_heartbeat_critical_minutes < settings.status_heartbeat_warning_minutes:
        raise ConfigError(
            "status.heartbeat_critical_minutes is kleiner dan heartbeat_warning_minutes; "
            "maak de kritieke grens gelijk aan of groter dan de waarschuwingsgrens",
            source=str(config_path) if config_path else None,
            key="status.heartbeat_critical_minutes",
        )
    try:  # the working-day calendar ('wd') counts the operator's equated days from here on
        use_calendar_file(settings.calendar_file)
    except CalendarError as exc:
        raise ConfigError(str(exc), key="calendar.extra_days_file") from None
    return settings


def describe(settings: Settings) -> list[tuple[str, str]]:
    """(key, shown value) pairs for ``config show``: no password, masked database URLs."""
    smtp = settings.smtp

    def flag(value: bool) -> str:
        return "true" if value else "false"

    return [
        (
            "configbestand",
            str(settings.config_path) if settings.config_path else "(geen; standaardwaarden)",
        ),
        ("database.source_url", mask_url(settings.source_url)),
        ("database.store_url", mask_url(settings.store_url)),
        ("rules.dir", str(settings.rules_dir)),
        ("smtp.host", smtp.host),
        ("smtp.port", str(smtp.port)),
        ("smtp.tls", smtp.tls),
        ("smtp.user", smtp.user or "(niet gezet)"),
        ("smtp.password", "(gezet)" if smtp.password else "(niet gezet)"),
        ("smtp.sender", smtp.sender),
        ("smtp.timeout_seconds", f"{smtp.timeout_seconds:g}"),
        ("smtp.max_attempts", str(smtp.max_attempts)),
        ("smtp.deadline_seconds", f"{smtp.deadline_seconds:g}"),
        ("smtp.ca_file", smtp.ca_file or "(niet gezet; systeemcertificaten)"),
        ("smtp.batch_size", str(smtp.batch_size)),
        ("smtp.connections", str(smtp.connections)),
        ("smtp.retry_until", smtp.retry_until),
        ("mail.allowed_domains", ", ".join(smtp.allowed_domains) or "(alle domeinen)"),
        ("mail.enabled", flag(settings.mail_enabled)),
        ("mail.case_link_template", settings.case_link_template),
        ("mail.digest", settings.digest),
        ("mail.digest_weekday", weekday_name(settings.digest_weekday)),
        ("mail.detail", settings.mail_detail),
        ("mail.full_cases", str(settings.mail_full_cases)),
        ("mail.daily_items", str(settings.mail_daily_items)),
        ("mail.full_list", settings.mail_full_list),
        ("mail.full_list_weekday", weekday_name(settings.mail_full_list_weekday)),
        ("digest.escalations_shown", str(settings.digest_escalations_shown)),
        ("digest.compare_case_managers", flag(settings.digest_compare_case_managers)),
        ("report.volume_share", f"{settings.report_volume_share:g}"),
        ("report.not_applicable_share", f"{settings.report_not_applicable_share:g}"),
        ("report.min_resolved_by_change", f"{settings.report_min_resolved_by_change:g}"),
        ("report.flag_weeks", str(settings.report_flag_weeks)),
        ("report.flag_min_closed", str(settings.report_flag_min_closed)),
        ("mail.staff_names", flag(settings.mail_staff_names)),
        ("mail.templates_dir", str(settings.mail_templates_dir or "(geen; ingebouwde sjablonen)")),
        ("report.dir", str(settings.rule_report_dir or "(niet gezet; geen regelrapport)")),
        ("run.batch_size", str(settings.batch_size)),
        ("run.workers", str(settings.workers)),
        ("run.max_minutes", f"{settings.max_minutes:g}"),
        ("run.timezone", settings.timezone),
        ("run.schedule", settings.schedule),
        ("calendar.extra_days_file", str(settings.calendar_file or "(geen; alleen meegeleverd)")),
        ("signals.grace_days", str(settings.grace_days)),
        ("signals.baseline_spread_days", str(settings.baseline_spread_days)),
        ("scheduler.days", settings.schedule_days),
        ("scheduler.misfire_grace_minutes", str(settings.misfire_grace_minutes)),
        (
            "alerts.operators",
            ", ".join(settings.operators) or "(geen: meldingen worden alleen gelogd)",
        ),
        ("alerts.undelivered_hours", str(settings.alert_undelivered_hours)),
        ("alerts.heartbeat_url", _shown_http(settings.heartbeat_url)),
        ("alerts.webhook_url", _shown_http(settings.webhook_url)),
        ("alerts.http_timeout_seconds", f"{settings.http_timeout_seconds:g}"),
        ("rules.on_broken", settings.rules_on_broken),
        ("status.night_late_minutes", str(settings.status_night_late_minutes)),
        ("status.mail_pending_minutes", str(settings.status_mail_pending_minutes)),
        ("status.mail_days", str(settings.status_mail_days)),
        ("status.heartbeat_warning_minutes", str(settings.status_heartbeat_warning_minutes)),
        ("status.heartbeat_critical_minutes", str(settings.status_heartbeat_critical_minutes)),
        ("metrics.textfile_dir", str(settings.metrics_dir or "(niet gezet; geen metrics)")),
        ("retention.message_body_days", str(settings.retention_body_days)),
        ("retention.closed_signal_days", str(settings.retention_signal_days)),
        ("retention.export_days", str(settings.retention_export_days)),
        ("intake.drop_dir", str(settings.drop_dir) if settings.drop_dir else "(geen)"),
        ("logging.format", settings.log_format),
    ]
