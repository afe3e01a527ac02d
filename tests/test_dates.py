"""Date arithmetic relative to the as-of date, checked against brute-force counting."""

from __future__ import annotations

import datetime as dt

import holidays
import pytest
from dateutil.easter import easter
from hypothesis import given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.dates import (
    Duration,
    add_working_days,
    future_limit,
    is_working_day,
    parse_duration,
    past_threshold,
    working_days_between,
)

days = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2028, 12, 31))
amounts = st.integers(min_value=0, max_value=60)
units = st.sampled_from(["d", "w", "wd"])


# Days the government declared equal to public holidays (Algemene termijnenwet art. 3(3)),
# as shipped in engine/language/data/gelijkgestelde-dagen.toml.
EQUATED = (dt.date(2026, 1, 2), dt.date(2026, 5, 15))


def brute_working(day: dt.date) -> bool:
    """Algemene termijnenwet art. 3: the NL calendar without Good Friday, with 5 May every
    year, plus the days declared equal to public holidays."""
    good_friday = easter(day.year) - dt.timedelta(days=2)
    listed = day in holidays.country_holidays("NL", years=day.year) and day != good_friday
    off = listed or day in (dt.date(day.year, 5, 5), *EQUATED)
    return day.weekday() < 5 and not off


def brute_between(earlier: dt.date, later: dt.date) -> int:
    """Working days d with earlier < d <= later, one by one."""
    n, day = 0, earlier
    while day < later:
        day += dt.timedelta(days=1)
        n += brute_working(day)
    return n


def is_older(day: dt.date, as_of: dt.date, d: Duration) -> bool:
    """The specification of older_than: more than N before as-of."""
    if d.unit == "wd":
        return brute_between(day, as_of) > d.amount
    return (as_of - day).days > d.amount * (7 if d.unit == "w" else 1)


def within_next(day: dt.date, as_of: dt.date, d: Duration) -> bool:
    if day < as_of:
        return False
    if d.unit == "wd":
        return brute_between(as_of, day) <= d.amount
    return (day - as_of).days <= d.amount * (7 if d.unit == "w" else 1)


@given(as_of=days, amount=amounts, unit=units, offset=st.integers(-120, 120))
def test_past_threshold_matches_the_definition(
    as_of: dt.date, amount: int, unit: str, offset: int
) -> None:
    d = Duration(amount, unit)  # type: ignore[arg-type]
    day = as_of + dt.timedelta(days=offset)
    assert (day < past_threshold(as_of, d)) == is_older(day, as_of, d)


@given(as_of=days, amount=amounts, unit=units, offset=st.integers(-120, 120))
def test_future_limit_matches_the_definition(
    as_of: dt.date, amount: int, unit: str, offset: int
) -> None:
    d = Duration(amount, unit)  # type: ignore[arg-type]
    day = as_of + dt.timedelta(days=offset)
    assert (as_of <= day <= future_limit(as_of, d)) == within_next(day, as_of, d)


@given(start=days, n=st.integers(-40, 40))
def test_add_working_days_lands_on_a_working_day_n_steps_away(start: dt.date, n: int) -> None:
    end = add_working_days(start, n)
    if n == 0:
        assert end == start
        return
    assert brute_working(end)
    if n > 0:  # n working days in (start, end]
        assert brute_between(start, end) == n
    else:  # -n working days in [end, start)
        one = dt.timedelta(days=1)
        assert brute_between(end - one, start - one) == -n


@settings(deadline=None)  # the brute-force count walks up to five years day by day
@given(a=days, b=days)
def test_working_days_between_counts_one_by_one(a: dt.date, b: dt.date) -> None:
    assert working_days_between(a, b) == (brute_between(a, b) if b > a else 0)


def test_dutch_holidays_are_not_working_days() -> None:
    assert not is_working_day(dt.date(2026, 4, 27))  # Koningsdag
    assert not is_working_day(dt.date(2026, 12, 25))  # Eerste Kerstdag
    assert not is_working_day(dt.date(2026, 5, 25))  # Tweede Pinksterdag
    # Goede Vrijdag is no public holiday under the Algemene termijnenwet (art. 3)
    assert is_working_day(dt.date(2026, 4, 3))
    assert is_working_day(dt.date(2027, 3, 26))
    assert not is_working_day(dt.date(2026, 4, 6))  # Tweede Paasdag
    assert not is_working_day(dt.date(2026, 5, 5))  # Bevrijdingsdag, also outside lustrum years
    assert not is_working_day(dt.date(2027, 5, 5))
    assert is_working_day(dt.date(2026, 4, 28))
    # Christmas 2026: Thursday 24th, then Fri 25 and Sat 26 (holidays), Sun 27
    assert add_working_days(dt.date(2026, 12, 24), 1) == dt.date(2026, 12, 28)


def test_thirty_days_does_not_fire_thirty_one_does() -> None:
    as_of = dt.date(2026, 4, 1)
    t = past_threshold(as_of, Duration(30, "d"))
    assert not as_of - dt.timedelta(days=30) < t
    assert as_of - dt.timedelta(days=31) < t


@pytest.mark.parametrize("text", ["14x", "d14", "-3d", "1.5w", "", "wd"])
def test_bad_durations_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="14d, 12w of 10wd"):
        parse_duration(text)
