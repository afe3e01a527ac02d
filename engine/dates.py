"""Date arithmetic relative to the as-of date: calendar days, weeks and working days.

Working days are Monday to Friday minus the days the Algemene termijnenwet (the Dutch
General Time Limits Act) treats as public holidays: New Year's Day, Good Friday, Easter
Monday, King's Day, Liberation Day (5 May, every year), Ascension Day, Whit Monday and
Christmas: the `holidays` package's NL calendar plus Good Friday and 5 May in every year
(that package counts 5 May only in lustrum years). All functions are pure and deterministic.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
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


@lru_cache(maxsize=64)
def _nl_holidays(year: int) -> frozenset[dt.date]:
    days = set(holidays.country_holidays("NL", years=year).keys())
    days.add(easter(year) - dt.timedelta(days=2))  # Goede Vrijdag
    days.add(dt.date(year, 5, 5))  # Bevrijdingsdag, every year under the Algemene termijnenwet
    return frozenset(days)


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


def working_days_between(earlier: dt.date, later: dt.date) -> int:
    """Number of working days d with earlier < d <= later (0 when later <= earlier)."""
    if later <= earlier:
        return 0
    count, day = 0, earlier
    while day < later:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count


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
