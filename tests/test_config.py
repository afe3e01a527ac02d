"""Settings: defaults, TOML file, environment overrides, clear errors, no leaked secrets."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regiesignaal.engine.store.db import ensure_sqlite_dir
from regiesignaal.jobs.config import (
    DEFAULT_RULES_DIR,
    PASSWORD_ENV,
    ConfigError,
    Settings,
    describe,
    load_settings,
)
from regiesignaal.notifications.delivery.settings import SmtpSettings


@pytest.fixture(scope="module")
def empty_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "empty.toml"
    path.write_text("", encoding="utf-8")
    return path


def write(tmp_path: Path, text: str, name: str = "regiesignaal.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./regiesignaal.toml here
    s = load_settings(env={})
    assert s.config_path is None
    assert s.source_url == "sqlite:///var/source.sqlite"
    assert s.store_url == "sqlite:///var/store.sqlite"
    assert s.rules_dir == DEFAULT_RULES_DIR
    assert s.rules_dir == Path(__file__).resolve().parents[1] / "rules"
    assert s.smtp == SmtpSettings()
    assert s.case_link_template == "https://zaaksysteem.dtv.example/zaken/{case_ref}"
    assert s.case_link("Z-001") == "https://zaaksysteem.dtv.example/zaken/Z-001"
    assert (s.timezone, s.batch_size, s.workers) == ("Europe/Amsterdam", 2000, 2)
    assert (s.digest, s.digest_weekday, s.schedule, s.mail_enabled) == ("daily", 0, "06:00", True)
    assert s.schedule_time.hour == 6 and s.schedule_time.minute == 0


FULL = """
[database]
source_url = "postgresql+psycopg://bron@db.example/source"
store_url = "sqlite:///data/store.sqlite"

[rules]
dir = "mijn-regels"

[smtp]
host = "smtp.example"
port = 465
tls = "tls"
user = "mailer"
sender = "noreply@dtv.example"
timeout_seconds = 12.5
max_attempts = 3

[mail]
enabled = false
case_link_template = "https://zaken.example/z/{case_ref}?tab=plan"
digest = "weekly"
digest_weekday = "vrijdag"

[run]
batch_size = 500
workers = 4
timezone = "UTC"
schedule = "5:30"
"""


def test_full_file_is_read(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FULL), env={})
    assert s.config_path == (tmp_path / "regiesignaal.toml").resolve()
    assert s.source_url == "postgresql+psycopg://bron@db.example/source"
    # relative paths in the file are relative to the file's folder
    assert s.store_url == f"sqlite:///{tmp_path.resolve()}/data/store.sqlite"
    assert s.rules_dir == tmp_path.resolve() / "mijn-regels"
    assert s.smtp == SmtpSettings(
        host="smtp.example",
        port=465,
        tls="tls",
        user="mailer",
        password=None,
        sender="noreply@dtv.example",
        timeout_seconds=12.5,
        max_attempts=3,
    )
    assert s.mail_enabled is False
    assert s.case_link("A1") == "https://zaken.example/z/A1?tab=plan"
    assert (s.digest, s.digest_weekday) == ("weekly", 4)
    assert (s.batch_size, s.workers, s.timezone, s.schedule) == (500, 4, "UTC", "05:30")


def test_weekly_digest_day() -> None:
    s = Settings(digest="weekly", digest_weekday=0)
    assert s.is_digest_day(dt.date(2026, 3, 2))  # a Monday
    assert not s.is_digest_day(dt.date(2026, 3, 3))
    assert Settings().is_digest_day(dt.date(2026, 3, 3))


def test_file_from_env_and_from_current_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "etc"
    other.mkdir()
    write(other, "[run]\nworkers = 7\n", name="x.toml")
    assert load_settings(env={"REGIESIGNAAL_CONFIG": str(other / "x.toml")}).workers == 7

    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[run]\nworkers = 3\n")
    assert load_settings(env={}).workers == 3
    # the explicit path beats the environment, which beats ./regiesignaal.toml
    assert load_settings(other / "x.toml", env={"REGIESIGNAAL_CONFIG": "nope.toml"}).workers == 7


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="niet gevonden"):
        load_settings(tmp_path / "absent.toml", env={})
    with pytest.raises(ConfigError, match="REGIESIGNAAL_CONFIG"):
        load_settings(env={"REGIESIGNAAL_CONFIG": str(tmp_path / "absent.toml")})


def test_environment_overrides_file(tmp_path: Path) -> None:
    env = {
        "REGIESIGNAAL_SOURCE_URL": "sqlite:///env-source.sqlite",
        "REGIESIGNAAL_STORE_URL": "postgresql+psycopg://u@h/store",
        "REGIESIGNAAL_RULES_DIR": "/opt/regels",
        "REGIESIGNAAL_SMTP_HOST": "mail.env",
        "REGIESIGNAAL_SMTP_PORT": "2525",
        "REGIESIGNAAL_SMTP_TLS": "STARTTLS",
        "REGIESIGNAAL_SMTP_USER": "envuser",
        "REGIESIGNAAL_SMTP_PASSWORD": "geheim wachtwoord",
        "REGIESIGNAAL_SMTP_SENDER": "env@dtv.example",
        "REGIESIGNAAL_CASE_LINK": "https://env.example/{case_ref}",
        "REGIESIGNAAL_BATCH_SIZE": "123",
        "REGIESIGNAAL_WORKERS": "9",
    }
    s = load_settings(write(tmp_path, FULL), env=env)
    assert s.source_url == "sqlite:///env-source.sqlite"  # env paths stay as given
    assert s.store_url == "postgresql+psycopg://u@h/store"
    assert s.rules_dir == Path("/opt/regels")
    assert (s.smtp.host, s.smtp.port, s.smtp.tls, s.smtp.user) == (
        "mail.env",
        2525,
        "starttls",
        "envuser",
    )
    assert s.smtp.password == "geheim wachtwoord"
    assert s.smtp.sender == "env@dtv.example"
    assert s.smtp.max_attempts == 3  # from the file: not overridden
    assert s.case_link("Q") == "https://env.example/Q"
    assert (s.batch_size, s.workers) == (123, 9)
    assert s.timezone == "UTC"  # untouched file value


def test_password_in_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "x"\npassword = "hunter2"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"REGIESIGNAAL_SMTP_PASSWORD": "ok"})
    message = str(info.value)
    assert "REGIESIGNAAL_SMTP_PASSWORD" in message
    assert "smtp.password" in message
    assert str(path) in message and "regel 3" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        ('[smtp]\nhots = "x"\n', "smtp.hots", "smtp.host"),
        ("[run]\nbatchsize = 5\n", "run.batchsize", "run.batch_size"),
        ('[run]\nhost = "x"\n', "run.host", "smtp.host"),
        ('[database]\nstore = "sqlite://"\n', "database.store", "database.store_url"),
        ('[mail]\ndigest_day = "monday"\n', "mail.digest_day", "mail.digest_weekday"),
    ],
)
def test_unknown_key_suggests_nearest(tmp_path: Path, text: str, key: str, suggestion: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.key == key
    assert f"bedoelde u '{suggestion}'?" in str(info.value)
    assert str(path) in str(info.value) and "regel 2" in str(info.value)


def test_unknown_section_and_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"onbekende sectie; bedoelde u \[smtp\]\?"):
        load_settings(write(tmp_path, "[smpt]\nhost = 'x'\n"), env={})
    with pytest.raises(ConfigError, match="buiten een sectie") as info:
        load_settings(write(tmp_path, "workers = 2\n"), env={})
    assert "regel 1" in str(info.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[run\nworkers = 2\n")
    with pytest.raises(ConfigError, match="geen geldige TOML") as info:
        load_settings(path, env={})
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("[run]\nworkers = 0\n", "1 tot en met 256"),
        ("[run]\nbatch_size = true\n", "geheel getal"),
        ('[run]\nbatch_size = "veel"\n', "geheel getal"),
        ('[run]\ntimezone = "Mars/Olympus"\n', "IANA-tijdzone"),
        ('[run]\nschedule = "25:00"\n', "UU:MM"),
        ("[smtp]\nport = 70000\n", "1 tot en met 65535"),
        ('[smtp]\ntls = "ssl"\n', "'starttls'"),
        ("[smtp]\ntimeout_seconds = -1\n", "groter dan 0"),
        ('[mail]\ndigest = "maandelijks"\n', "'daily'"),
        ('[mail]\ndigest_weekday = "someday"\n', "monday"),
        ('[mail]\nenabled = "misschien"\n', "true of false"),
        ('[mail]\ncase_link_template = "https://x.example/zaak"\n', "{case_ref}"),
        ('[mail]\ncase_link_template = "https://x.example/{case_ref}/{x}"\n', "{case_ref}"),
        ('[database]\nstore_url = "geen url"\n', "database-URL"),
        ('[rules]\ndir = ""\n', "niet-lege tekst"),
        ('[mail]\ndetail = "alles"\n', "'minimal'"),
        ("[mail]\nfull_cases = -1\n", "0 tot en met 10000"),
        ('[mail]\nstaff_names = "soms"\n', "true of false"),
        ("[report]\nnot_applicable_share = 1.5\n", "deel groter dan 0 en hoogstens 1"),
        ('[report]\nmin_resolved_by_change = "weinig"\n', "deel groter dan 0 en hoogstens 1"),
        ('[report]\nvolume_share = "0.25"\n', "zonder aanhalingstekens"),
        ("[report]\nvolume_share = 0\n", "deel groter dan 0 en hoogstens 1"),
        ('[report]\nflag_weeks = "8"\n', "zonder aanhalingstekens"),
        ('[run]\nworkers = "4"\n', "geheel getal van 1 tot en met 256 (zonder aanhalingstekens"),
        ("[run]\nworkers = 4.0\n", "geheel getal"),
        ('[smtp]\ntimeout_seconds = "30"\n', "zonder aanhalingstekens"),
        ("[report]\nflag_weeks = 0\n", "1 tot en met 52"),
        ("[report]\nflag_min_closed = -3\n", "1 tot en met 100000"),
    ],
)
def test_bad_values_say_what_is_allowed(tmp_path: Path, text: str, allowed: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert allowed in message
    assert str(path) in message and "regel 2" in message
    section, key = text.split("\n")[0].strip("[]"), text.split("\n")[1].split(" =")[0]
    assert info.value.key == f"{section}.{key}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REGIESIGNAAL_SMTP_PORT", "smtp"),
        ("REGIESIGNAAL_WORKERS", "-1"),
        ("REGIESIGNAAL_BATCH_SIZE", "1e3"),
        ("REGIESIGNAAL_SMTP_TLS", "yes"),
        ("REGIESIGNAAL_CASE_LINK", "zaak-{case_ref}"),
    ],
)
def test_bad_environment_values_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(env={name: value})
    assert f"omgevingsvariabele {name}" in str(info.value)
    assert "verwacht" in str(info.value)


def test_describe_masks_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[database]\nstore_url = "postgresql+psycopg://rs:dbgeheim@db.example/store"\n',
    )
    s = load_settings(path, env={"REGIESIGNAAL_SMTP_PASSWORD": "smtpgeheim"})
    shown = dict(describe(s))
    assert shown["smtp.password"] == "(gezet)"
    assert shown["database.store_url"] == "postgresql+psycopg://rs:***@db.example/store"
    assert shown["configbestand"] == str(path.resolve())
    assert shown["mail.digest_weekday"] == "monday"
    everything = repr(s) + str(s) + json.dumps(describe(s))
    assert "smtpgeheim" not in everything
    assert "dbgeheim" not in everything
    assert dict(describe(Settings()))["smtp.password"] == "(niet gezet)"


def test_empty_password_env_means_not_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={"REGIESIGNAAL_SMTP_PASSWORD": "", "REGIESIGNAAL_SMTP_USER": ""})
    assert s.smtp.password is None and s.smtp.user is None


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.workers = 3  # type: ignore[misc]


def test_ensure_sqlite_dir(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "store.sqlite"
    assert ensure_sqlite_dir(f"sqlite:///{target}") == target
    assert target.parent.is_dir()
    assert ensure_sqlite_dir("sqlite://") is None
    assert ensure_sqlite_dir("sqlite:///:memory:") is None
    assert ensure_sqlite_dir("postgresql+psycopg://u@h/db") is None


_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters='"\\'),
    min_size=1,
    max_size=30,
).filter(lambda t: t.strip() == t and t.strip())


@settings(max_examples=60, deadline=None)
@given(secret=st.text(min_size=1, max_size=40))
def test_password_never_shown(empty_config: Path, secret: str) -> None:
    password = f"§{secret}§"  # "§" occurs nowhere in the fixed output
    s = load_settings(env={"REGIESIGNAAL_CONFIG": str(empty_config), PASSWORD_ENV: password})
    assert s.smtp.password == password
    shown = [repr(s), str(s), repr(s.smtp), str(describe(s))]
    assert not any(password in text for text in shown)
    assert not any("§" in text for text in shown)


@settings(max_examples=60, deadline=None)
@given(
    host=_text,
    user=_text,
    port=st.integers(1, 65535),
    workers=st.integers(1, 256),
    batch=st.integers(1, 1_000_000),
    weekday=st.sampled_from(
        ["monday", "Dinsdag", "wednesday", "donderdag", "friday", "zaterdag", "sunday"]
    ),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    enabled=st.booleans(),
)
def test_file_values_round_trip(
    host: str,
    user: str,
    port: int,
    workers: int,
    batch: int,
    weekday: str,
    hour: int,
    minute: int,
    enabled: bool,
) -> None:
    text = (
        f"[smtp]\nhost = {json.dumps(host)}\nuser = {json.dumps(user)}\nport = {port}\n"
        f'[run]\nworkers = {workers}\nbatch_size = {batch}\nschedule = "{hour}:{minute:02d}"\n'
        f'[mail]\ndigest_weekday = "{weekday}"\nenabled = {str(enabled).lower()}\n'
    )
    with tempfile.TemporaryDirectory() as folder:
        s = load_settings(write(Path(folder), text), env={})
    assert (s.smtp.host, s.smtp.user, s.smtp.port) == (host, user, port)
    assert (s.workers, s.batch_size, s.mail_enabled) == (workers, batch, enabled)
    assert s.schedule == f"{hour:02d}:{minute:02d}"
    assert (
        dict(describe(s))["mail.digest_weekday"]
        == [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ][s.digest_weekday]
    )
    assert s.digest_weekday == [
        "monday",
        "dinsdag",
        "wednesday",
        "donderdag",
        "friday",
        "zaterdag",
        "sunday",
    ].index(weekday.lower())


def test_mail_settings_are_read_and_relative_folders_follow_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[mail]\ndetail = "minimal"\nfull_cases = 10\nfirst_cases = 3\nstaff_names = false\n'
        'templates_dir = "sjablonen"\n[report]\ndir = "rapport"\n',
    )
    s = load_settings(path, env={})
    assert (s.mail_detail, s.mail_full_cases, s.mail_first_cases) == ("minimal", 10, 3)
    assert s.mail_staff_names is False
    assert s.mail_templates_dir == tmp_path / "sjablonen"
    assert s.rule_report_dir == tmp_path / "rapport"
    shown = dict(describe(s))
    assert shown["mail.detail"] == "minimal" and shown["report.dir"] == str(tmp_path / "rapport")


def test_report_thresholds_are_read_and_checked(tmp_path: Path) -> None:
    """Issue 18: the rule report's health flags have their thresholds in [report]."""
    defaults = load_settings(write(tmp_path, "[report]\n"), env={})
    assert (
        defaults.report_volume_share,
        defaults.report_not_applicable_share,
        defaults.report_min_resolved_by_change,
        defaults.report_flag_weeks,
        defaults.report_flag_min_closed,
    ) == (0.25, 0.5, 0.1, 8, 10)
    text = (
        "[report]\nnot_applicable_share = 0.75\nmin_resolved_by_change = 0.05\n"
        "flag_weeks = 13\nflag_min_closed = 20\n"
    )
    s = load_settings(write(tmp_path, text), env={})
    assert (s.report_not_applicable_share, s.report_min_resolved_by_change) == (0.75, 0.05)
    assert (s.report_flag_weeks, s.report_flag_min_closed) == (13, 20)
    assert dict(describe(s))["report.flag_min_closed"] == "20"
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "[report]\nnot_applicable_share = 4.875\n"), env={})
    assert info.value.key == "report.not_applicable_share"
    assert "verwacht een deel groter dan 0 en hoogstens 1" in str(info.value)
    edge = load_settings(write(tmp_path, "[report]\nvolume_share = 1\n"), env={})
    assert edge.report_volume_share == 1.0, "1 is allowed, as the message says"


def test_numbers_from_the_environment_are_text_and_read_as_numbers(tmp_path: Path) -> None:
    """An environment variable is always text: there '4' is a number (the file wants 4)."""
    s = load_settings(write(tmp_path, ""), env={"REGIESIGNAAL_WORKERS": "4"})
    assert s.workers == 4


_MARK = "Geheim-waarde-7Q"


def _all_file_keys() -> list[tuple[str, str]]:
    from regiesignaal.jobs import config

    return sorted(config._FILE_KEYS)


@pytest.mark.parametrize("section, key", _all_file_keys())
def test_no_setting_repeats_its_bad_value(tmp_path: Path, section: str, key: str) -> None:
    """A bad value of any key is refused naming file, line and key, never the value (a URL
    may hold a password, an address a name): a table where a single value belongs."""
    path = tmp_path / "regiesignaal.toml"
    path.write_text(f'[{section}]\n{key} = {{ {_MARK} = "{_MARK}" }}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    message = str(caught.value)
    assert f"{section}.{key}" in message and "regel 2" in message
    assert _MARK not in message


def test_no_environment_variable_repeats_its_bad_value() -> None:
    from regiesignaal.jobs import config

    refused = 0
    for name in sorted(config.ENV_KEYS):
        try:
            load_settings(None, env={name: f"{_MARK}\x00{_MARK}"})
        except ConfigError as exc:
            refused += 1
            assert _MARK not in str(exc), name
    assert refused >= len(config.ENV_KEYS) // 2


def test_the_case_link_carries_only_its_template(tmp_path: Path) -> None:
    """The night hands ``case_link`` to its worker processes with every list (issue 19):
    pickled, it holds the template and nothing else of the settings (no database URL,
    no SMTP password), and links the same after the trip."""
    import pickle

    s = load_settings(
        env={
            "REGIESIGNAAL_STORE_URL": "postgresql+psycopg://rs:geheim-wachtwoord@db/store",
            "REGIESIGNAAL_CASE_LINK": "https://zaken.example/z/{case_ref}?tab=plan",
        }
    )
    sent = pickle.dumps(s.case_link)
    assert b"geheim-wachtwoord" not in sent and b"store_url" not in sent
    assert pickle.loads(sent)("Z-7#intern") == "https://zaken.example/z/Z-7%23intern?tab=plan"
