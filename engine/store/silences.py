"""Silences (issue 18): a rule silenced for one team, one location or the whole service,
from a date up to and including ``until``.

A silenced signal keeps its episode and history; it is left out of every mail to a case
manager and of the chain-meeting agenda, it does not escalate, and the team digest counts
it. A silence ends by itself: the first run with an as-of date after ``until`` records it
as ended. Every change is a row of ``silence_events`` with who and why: ``added`` and
``expired`` (by hand, ``regiesignaal silences add|expire``), ``ended`` (by the run).

Errors are :class:`SilenceError` with a Dutch message that names what is wrong and what to
do, never repeating a value typed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.catalogue import suggest
from regiesignaal.engine.language.freetext import ID_MAX, TEXT_MAX, text_message
from regiesignaal.engine.store.tables import runs, silence_events, silences

SYSTEM = "regiesignaal"
"""``by`` of an event the run records (a silence that ended by itself)."""

ENDED_REASON = "einddatum verstreken"

REASON_MAX = TEXT_MAX

SILENCE_MAX_DAYS = 365
"""Longest silence: ``until`` lies at most this many days after the start; a later date is
shortened to it (``silence_end``) and the command line says so. A rule that should stay
quiet longer is switched off or put in shadow in its file."""


def silence_end(start: dt.date, until: dt.date) -> dt.date:
    """``until``, shortened to at most ``SILENCE_MAX_DAYS`` after ``start``."""
    return min(until, start + dt.timedelta(days=SILENCE_MAX_DAYS))


def last_run_date(conn: sa.Connection) -> dt.date | None:
    """The as-of date of the latest successful run, None before the first."""
    latest = conn.execute(
        sa.select(sa.func.max(runs.c.as_of)).where(runs.c.status == "succeeded")
    ).scalar()
    return latest if isinstance(latest, dt.date) else None


def _not_before_last_run(conn: sa.Connection, day: dt.date, what: str) -> None:
    """SilenceError when ``day`` lies before the last run: nights already run stay as
    they were (their mail went out, their escalations stand)."""
    last = last_run_date(conn)
    if last is not None and day < last:
        raise SilenceError(
            f"{what} (--as-of) ligt voor de laatste run ({last.isoformat()}); een stilte kan "
            f"nachten die al gedraaid zijn niet veranderen. Kies {last.isoformat()} of later, "
            "of laat --as-of weg (vandaag)"
        )


def overlapping(
    conn: sa.Connection,
    rule_id: str,
    team: str | None,
    location: str | None,
    start: dt.date,
    until: dt.date,
) -> list[int]:
    """Ids of the silences not ended that already silence ``rule_id`` for this scope (the
    same team or location, or the whole service) somewhere between ``start`` and
    ``until``."""
    c = silences.c
    whole = sa.and_(c.team.is_(None), c.location.is_(None))
    same = sa.and_(
        c.team.is_(None) if team is None else c.team == team,
        c.location.is_(None) if location is None else c.location == location,
    )
    return [
        int(i)
        for i in conn.execute(
            sa.select(c.id)
            .where(
                c.rule_id == rule_id,
                sa.or_(whole, same),
                c.starts_on <= until,
                c.until >= start,
                c.ended_on.is_(None),
                sa.or_(c.expired_on.is_(None), c.expired_on > start),
            )
            .order_by(c.id)
        ).scalars()
    ]


class SilenceError(Exception):
    """A silence could not be added or expired; the message says why."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    rule_id: str
    team: str | None
    location: str | None
    until: dt.date

    def matches(self, rule_id: str, team: str | None, location: str | None) -> bool:
        if rule_id != self.rule_id:
            return False
        if self.team is not None and team != self.team:
            return False
        return self.location is None or location == self.location


def _active_on(as_of: dt.date) -> Any:
    c = silences.c
    return sa.and_(
        c.starts_on <= as_of,
        c.until >= as_of,
        sa.or_(c.expired_on.is_(None), c.expired_on > as_of),
    )


def active_silences(conn: sa.Connection, as_of: dt.date) -> list[Silence]:
    """The silences in force on ``as_of``, by id."""
    c = silences.c
    rows = conn.execute(
        sa.select(c.id, c.rule_id, c.team, c.location, c.until)
        .where(_active_on(as_of))
        .order_by(c.id)
    ).all()
    return [Silence(r.id, r.rule_id, r.team, r.location, r.until) for r in rows]


def silencing(
    found: Iterable[Silence], rule_id: str, team: str | None, location: str | None
) -> Silence | None:
    """The first silence that silences a signal of ``rule_id`` in ``team`` at ``location``."""
    for silence in found:
        if silence.matches(rule_id, team, location):
            return silence
    return None


def silenced_clause(table: sa.Table, as_of: dt.date) -> sa.ColumnElement[bool]:
    """True for a row of ``table`` (with ``rule_id``, ``team`` and ``location``) that a
    silence in force on ``as_of`` silences; for the queries of the message kinds."""
    c = silences.c
    where_location = (
        sa.or_(c.location.is_(None), c.location == table.c.location)
        if "location" in table.c
        else c.location.is_(None)  # a table without a location: only the other silences
    )
    return sa.exists(
        sa.select(c.id).where(
            _active_on(as_of),
            c.rule_id == table.c.rule_id,
            sa.or_(c.team.is_(None), c.team == table.c.team),
            where_location,
        )
    )


def _check_text(value: str, label: str, max_length: int = ID_MAX) -> None:
    """SilenceError when ``value`` is empty, too long or holds control or invisible
    characters (the command line's own check, for callers of this API)."""
    message = text_message(value, label, max_length)
    if message is not None:
        raise SilenceError(message)


def _event(
    conn: sa.Connection,
    silence_id: int,
    kind: str,
    as_of: dt.date,
    by: str,
    reason: str,
    run_id: int | None = None,
    now: dt.datetime | None = None,
) -> None:
    conn.execute(
        silence_events.insert().values(
            silence_id=silence_id,
            kind=kind,
            as_of=as_of,
            by=by,
            reason=reason,
            run_id=run_id,
            created_at=now or dt.datetime.now(dt.UTC),
        )
    )


def add_silence(
    conn: sa.Connection,
    rule_id: str,
    until: dt.date,
    reason: str,
    by: str,
    today: dt.date,
    rule_ids: Collection[str],
    *,
    team: str | None = None,
    location: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Record a silence from ``today`` up to and including ``until`` (shortened to
    ``SILENCE_MAX_DAYS`` after ``today``); returns its id. Refused when ``today`` lies
    before the last run's as-of date."""
    if rule_id not in rule_ids:
        hint = suggest(rule_id.strip().upper(), rule_ids) or "zie 'regiesignaal rules fields'"
        raise SilenceError(f"De regel bestaat niet in de regelmap; {hint}")
    if team is not None and location is not None:
        raise SilenceError("Kies --team of --location, niet beide")
    if team is not None and not team.strip():
        raise SilenceError("--team is leeg; geef een team-id op of laat --team weg")
    if location is not None and not location.strip():
        raise SilenceError("--location is leeg; geef een locatie-id op of laat --location weg")
    if until < today:
        raise SilenceError(
            f"De einddatum ligt voor vandaag ({today.isoformat()}); kies een datum vanaf vandaag"
        )
    _not_before_last_run(conn, today, "De begindatum")
    until = silence_end(today, until)
    if not reason.strip():
        raise SilenceError("Geef een reden op met --reason")
    if len(reason.strip()) > REASON_MAX:
        raise SilenceError(f"De reden is langer dan {REASON_MAX} tekens; maak haar korter")
    if not by.strip():
        raise SilenceError("Geef uw medewerker-id op met --by")
    _check_text(reason, "De reden (--reason)", REASON_MAX)
    _check_text(by, "Het medewerker-id (--by)")
    if team is not None:
        _check_text(team, "Het team (--team)")
    if location is not None:
        _check_text(location, "De locatie (--location)")
    stamp = now or dt.datetime.now(dt.UTC)
    result = conn.execute(
        silences.insert().values(
            rule_id=rule_id,
            team=team.strip() if team else None,
            location=location.strip() if location else None,
            starts_on=today,
            until=until,
            reason=reason.strip(),
            created_by=by.strip(),
            created_at=stamp,
        )
    )
    silence_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    _event(conn, silence_id, "added", today, by.strip(), reason.strip(), now=stamp)
    return silence_id


def expire_silence(
    conn: sa.Connection,
    silence_id: int,
    by: str,
    reason: str,
    today: dt.date,
    now: dt.datetime | None = None,
) -> None:
    """End a silence by hand: from ``today`` it silences nothing."""
    c = silences.c
    row = conn.execute(sa.select(silences).where(c.id == silence_id)).first()
    if row is None:
        raise SilenceError(
            f"Stilte {silence_id} bestaat niet; zie 'regiesignaal silences list --all'"
        )
    if row.expired_on is not None or row.ended_on is not None:
        raise SilenceError(f"Stilte {silence_id} is al beëindigd")
    if not by.strip():
        raise SilenceError("Geef uw medewerker-id op met --by")
    if not reason.strip():
        raise SilenceError("Geef een reden op met --reason")
    _check_text(by, "Het medewerker-id (--by)")
    _check_text(reason, "De reden (--reason)", REASON_MAX)
    _not_before_last_run(conn, today, "De datum van beëindigen")
    conn.execute(
        silences.update().where(c.id == silence_id).values(expired_on=today, expired_by=by.strip())
    )
    _event(conn, silence_id, "expired", today, by.strip(), reason.strip(), now=now)


def end_lapsed(conn: sa.Connection, as_of: dt.date, run_id: int | None) -> int:
    """Record as ended every silence whose ``until`` lies before ``as_of`` (by the run,
    event ``ended``); returns how many."""
    c = silences.c
    ids = [
        r.id
        for r in conn.execute(
            sa.select(c.id)
            .where(c.until < as_of, c.ended_on.is_(None), c.expired_on.is_(None))
            .order_by(c.id)
        )
    ]
    if ids:
        conn.execute(silences.update().where(c.id.in_(ids)).values(ended_on=as_of))
        for silence_id in ids:
            _event(conn, silence_id, "ended", as_of, SYSTEM, ENDED_REASON, run_id)
    return len(ids)


def list_silences(
    conn: sa.Connection, today: dt.date, include_ended: bool = False
) -> list[dict[str, Any]]:
    """The silences (by default only those not ended), each with its state on ``today``
    (``actief``, ``gepland``, ``verlopen``, ``beëindigd``) and its events."""
    c = silences.c
    query = sa.select(silences).order_by(c.id)
    if not include_ended:
        query = query.where(c.expired_on.is_(None), c.ended_on.is_(None), c.until >= today)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    if not rows:
        return rows
    e = silence_events.c
    events: dict[int, list[dict[str, Any]]] = {}
    for ev in conn.execute(
        sa.select(silence_events).where(e.silence_id.in_([r["id"] for r in rows])).order_by(e.id)
    ).mappings():
        events.setdefault(ev["silence_id"], []).append(dict(ev))
    for r in rows:
        if r["expired_on"] is not None and r["expired_on"] <= today:
            r["state"] = "beëindigd"
        elif r["ended_on"] is not None or r["until"] < today:
            r["state"] = "verlopen"
        elif r["starts_on"] > today:
            r["state"] = "gepland"
        else:
            r["state"] = "actief"
        r["events"] = events.get(r["id"], [])
    return rows
