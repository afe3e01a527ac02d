"""The working-day calendar's data file: shipped equated days, an operator's extension, and
clear Dutch errors for a bad file; `wd` everywhere follows it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from regiesignaal.engine.language.dates import (
    CalendarError,
    Duration,
    calendar_files,
    future_limit,
    is_working_day,
    past_threshold,
    read_calendar_file,
    use_calendar_file,
)
from regiesignaal.jobs.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def shipped_calendar() -> Iterator[None]:
    use_calendar_file(None)
    yield
    use_calendar_file(None)


def test_the_shipped_equated_days_are_not_working_days() -> None:
    assert not is_working_day(dt.date(2026, 1, 2))  # Friday after New Year's Day
    assert not is_working_day(dt.date(2026, 5, 15))  # Friday after Ascension Day
    assert is_working_day(dt.date(2026, 1, 5)) and is_working_day(dt.date(2026, 5, 18))


def test_five_working_days_from_a_friday_skip_the_weekend_and_holidays() -> None:
    """The guide's example: `within_next: 5wd` read on a Friday."""
    friday = dt.date(2026, 3, 6)
    # five working days: Monday 9 to Friday 13 March; the window runs until the day before
    # the sixth working day, so the weekend after it still belongs to the window
    assert future_limit(friday, Duration(5, "wd")) == dt.date(2026, 3, 15)
    # Friday 1 May 2026: Tuesday 5 May (Bevrijdingsdag) does not count
    assert future_limit(dt.date(2026, 5, 1), Duration(5, "wd")) == dt.date(2026, 5, 11)
    # Friday 8 May 2026: Ascension Thursday 14 May and the equated Friday 15 May do not count
    assert future_limit(dt.date(2026, 5, 8), Duration(5, "wd")) == dt.date(2026, 5, 19)
    # older_than 2wd on Monday 5 January 2026: 2 January and the weekend do not count
    assert past_threshold(dt.date(2026, 1, 5), Duration(2, "wd")) == dt.date(2025, 12, 30)


def test_an_operator_file_extends_the_calendar(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text('[[dag]]\ndatum = 2027-05-07\nbron = "Besluit 2027"\n', encoding="utf-8")
    assert is_working_day(dt.date(2027, 5, 7))
    use_calendar_file(extra)
    assert not is_working_day(dt.date(2027, 5, 7))
    assert not is_working_day(dt.date(2026, 1, 2))  # the shipped days still count
    assert calendar_files()[1] == extra


def test_the_setting_applies_the_operator_file(tmp_path: Path) -> None:
    extra = tmp_path / "dagen.toml"
    extra.write_text('[[dag]]\ndatum = 2027-05-07\nbron = "Besluit 2027"\n', encoding="utf-8")
    config = tmp_path / "regiesignaal.toml"
    config.write_text('[calendar]\nextra_days_file = "dagen.toml"\n', encoding="utf-8")
    settings = load_settings(config, env={})
    assert settings.calendar_file == extra
    assert not is_working_day(dt.date(2027, 5, 7))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[dag]]\ndatum = "2027-05-07"\nbron = "x"\n', "blok [[dag]] nummer 1 heeft geen geldige"),
        ("[[dag]]\ndatum = 2027-05-07\n", "blok [[dag]] nummer 1 mist 'bron'"),
        ('[[dag]]\ndatum = 2027-05-07\nbron = "x"\nwie = "y"\n', "mag alleen 'datum' en 'bron'"),
        ("[dagen]\nx = 1\n", "onbekend blok 'dagen'"),
        ("[[dag]\ndatum = 2027-05-07\n", "ongeldige TOML (regel 1"),
    ],
)
def test_a_bad_file_is_named_without_repeating_the_value(
    tmp_path: Path, text: str, message: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError) as err:
        read_calendar_file(bad)
    assert message in str(err.value) and str(bad) in str(err.value)
    assert "2027-05-07" not in str(err.value)


def test_a_bad_operator_file_is_a_config_error_and_changes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[dag]]\ndatum = 2027-13-01\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(env={"REGIESIGNAAL_CALENDAR_FILE": str(bad)})
    assert "calendar.extra_days_file" in str(err.value)
    with pytest.raises(ConfigError, match="kan niet worden gelezen"):
        load_settings(env={"REGIESIGNAAL_CALENDAR_FILE": str(tmp_path / "missing.toml")})
    assert calendar_files() == calendar_files()[:1]  # still only the shipped file
    assert not is_working_day(dt.date(2026, 1, 2))
