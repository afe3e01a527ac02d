"""Date arithmetic relative to the as-of date: calendar days, weeks and working days.

Working days are Monday to Friday minus the days the Algemene termijnenwet (the Dutch
General Time Limits Act, art. 3) treats as public holidays: New Year's Day, Easter Monday,
King's Day, Liberation Day (5 May, every year), Ascension Day, Whit Monday and both days of
Christmas. That is the `holidays` package's NL calendar without Good Friday (the package
lists it; the act does not) and with 5 May in every year (the package counts it only in
lustrum years); plus the days the government declares equal to them (art. 3(3), e.g.
2 January and 15 May 2026), read from the shipped data file
``engine/language/data/gelijkgestelde-dagen.toml`` and an optional operator file
(``use_calendar_file``). Given the calendar, all functions are pure and deterministic.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import holidays
from dateutil.easter import easter

Unit = Literal["d", "w", "wd"]
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MAX_DURATION = {"d": 3660, "w": 522, "wd": 2600}  # about ten years
_DURATION = re.compile(r"^\s*(\d+)\s*(d|w|wd)\s*$")


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_duration(text: str) -> Duration:
    """Parse ``14d``, ``12w`` or ``10wd``; raises ValueError with a Dutch hint."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(
            f"{text!r} is geen geldige duur: gebruik een getal met d (dagen), "
            "w (weken) of wd (werkdagen), bijv. 14d, 12w of 10wd"
        )
    amount, unit = int(m.group(1)), m.group(2)
    limit = MAX_DURATION[unit]
    if amount > limit:
        raise ValueError(f"{text!r} is te lang: hooguit {limit}{unit} (tien jaar)")
    return Duration(amount, unit)  # type: ignore[arg-type]


def today_amsterdam(now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(tz=AMSTERDAM)
    return now.astimezone(AMSTERDAM).date()


SHIPPED_CALENDAR = Path(__file__).resolve().parent / "data" / "gelijkgestelde-dagen.toml"


class CalendarError(ValueError):
    """A calendar data file cannot be used; ``str()`` is a Dutch message naming the file."""


def read_calendar_file(path: Path) -> frozenset[dt.date]:
    """The days of one calendar file: ``[[dag]]`` blocks with ``datum`` (a TOML date) and
    ``bron`` (text). Raises CalendarError naming the file, the block and what to do; the
    bad value itself is never repeated."""
    name = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError:
        raise CalendarError(
            f"{name}: het bestand met gelijkgestelde dagen kan niet worden gelezen; "
            "controleer het pad ([calendar] extra_days_file of REGIESIGNAAL_CALENDAR_FILE)"
        ) from None
    except UnicodeDecodeError:
        raise CalendarError(f"{name}: het bestand is geen UTF-8-tekst") from None
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+), column (\d+)", str(exc))
        where = f" (regel {m.group(1)}, kolom {m.group(2)})" if m else ""
        raise CalendarError(
            f"{name}: ongeldige TOML{where}; schrijf per dag "
            '[[dag]] met datum = JJJJ-MM-DD en bron = "..."'
        ) from None
    unknown = sorted(set(data) - {"dag"})
    if unknown:
        raise CalendarError(f"{name}: onbekend blok '{unknown[0]}'; gebruik alleen [[dag]]")
    blocks: Any = data.get("dag", [])
    if not isinstance(blocks, list):
        raise CalendarError(f"{name}: 'dag' moet een lijst van blokken [[dag]] zijn")
    days = set()
    for n, block in enumerate(blocks, start=1):
        if not isinstance(block, dict) or set(block) - {"datum", "bron"}:
            raise CalendarError(
                f"{name}: blok [[dag]] nummer {n} mag alleen 'datum' en 'bron' bevatten"
            )
        day = block.get("datum")
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise CalendarError(
                f"{name}: blok [[dag]] nummer {n} heeft geen geldige datum; schrijf "
                "datum = JJJJ-MM-DD zonder aanhalingstekens"
            )
        if not isinstance(block.get("bron"), str) or not block["bron"].strip():
            raise CalendarError(
                f"{name}: blok [[dag]] nummer {n} mist 'bron': noem het besluit of de reden"
            )
        days.add(day)
    return frozenset(days)


_extra_days: frozenset[dt.date] = frozenset()
_calendar_files: tuple[Path, ...] = ()


def use_calendar_file(path: Path | None) -> None:
    """Use the shipped file plus ``path`` (the operator's file, optional) from now on.

    Raises CalendarError and keeps the calendar as it was when a file is unusable.
    """
    global _extra_days, _calendar_files
    files = (SHIPPED_CALENDAR,) if path is None else (SHIPPED_CALENDAR, Path(path))
    days: set[dt.date] = set()
    for f in files:
        days |= read_calendar_file(f)
    _extra_days, _calendar_files = frozenset(days), files
    _nl_holidays.cache_clear()


def calendar_files() -> tuple[Path, ...]:
    """The calendar files in use (for worker processes, which must use the same ones)."""
    return _calendar_files


def equated_days() -> frozenset[dt.date]:
    """The days declared equal to public holidays that are in use."""
    return _extra_days


@lru_cache(maxsize=64)
def _nl_holidays(year: int) -> frozenset[dt.date]:
    days = set(holidays.country_holidays("NL", years=year).keys())
    # Goede Vrijdag is no "algemeen erkende feestdag" under art. 3 Algemene termijnenwet
    days.discard(easter(year) - dt.timedelta(days=2))
    days.add(dt.date(year, 5, 5))  # Bevrijdingsdag, every year under the Algemene termijnenwet
    days |= {d for d in _extra_days if d.year == year}
    return frozenset(days)


def non_working_days(days: Iterable[dt.date]) -> list[dt.date]:
    """Those of ``days`` that are not working days (for documentation and checks)."""
    return [d for d in days if not is_working_day(d)]


def is_working_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _nl_holidays(day.year)


def add_working_days(start: dt.date, n: int) -> dt.date:
    """The date reached by stepping ``n`` working days from ``start`` (backwards if n < 0).

    ``start`` itself never counts; a step lands only on working days.
    """
    step = 1 if n >= 0 else -1
    day, left = start, abs(n)
    while left:
        day += dt.timedelta(days=step)
        if is_working_day(day):
            left -= 1
    return day


def _weekdays_up_to(day: dt.date) -> int:
    """Mondays to Fridays from 01-01-0001 (a Monday) up to and including ``day``."""
    weeks, rest = divmod(day.toordinal(), 7)
    return 5 * weeks + min(rest, 5)


def working_days_between(earlier: dt.date, later: dt.date) -> int:
    """Number of working days d with earlier < d <= later (0 when later <= earlier).

    Counted without stepping through the days (the rule report takes it for every
    resolved signal): the weekdays in between, less the holidays on a weekday."""
    if later <= earlier:
        return 0
    off = sum(
        1
        for year in range(earlier.year, later.year + 1)
        for day in _nl_holidays(year)
        if earlier < day <= later and day.weekday() < 5
    )
    return _weekdays_up_to(later) - _weekdays_up_to(earlier) - off


def shift(as_of: dt.date, duration: Duration, direction: int) -> dt.date:
    """``as_of`` moved by ``duration`` into the past (direction -1) or future (+1)."""
    if duration.unit == "d":
        return as_of + dt.timedelta(days=direction * duration.amount)
    if duration.unit == "w":
        return as_of + dt.timedelta(days=direction * 7 * duration.amount)
    return add_working_days(as_of, direction * duration.amount)


def days_between(earlier: dt.date, later: dt.date) -> int:
    return (later - earlier).days


def past_threshold(as_of: dt.date, duration: Duration) -> dt.date:
    """The earliest date that is NOT more than ``duration`` before ``as_of``.

    A date ``d`` is "more than N before as-of" exactly when ``d < past_threshold``:
    for calendar units ``as_of - d > N days``; for working days, more than N working days
    lie in ``(d, as_of]``.
    """
    if duration.unit != "wd":
        return shift(as_of, duration, -1)
    return add_working_days(as_of + dt.timedelta(days=1), -(duration.amount + 1))


def future_limit(as_of: dt.date, duration: Duration) -> dt.date:
    """The latest date that is at most ``duration`` after ``as_of``.

    For working days: at most N working days lie in ``(as_of, d]``.
    """
    if duration.unit != "wd":
        return shift(as_of, duration, +1)
    return add_working_days(as_of, duration.amount + 1) - dt.timedelta(days=1)


use_calendar_file(None)  # the shipped equated days count from the start
