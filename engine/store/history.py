"""Look-up and operator actions on the signal history (issue 6).

Reading: :func:`list_signals` and :func:`signal_histories` read the store only.
Operator actions: :func:`add_explanation`, :func:`revoke_explanation` and
:func:`retire_rules` record who and when in the store; the next run's reconcile turns
them into signal events (``explained``, ``explanation_revoked``, ``rule_retired``), so
:mod:`engine.reconcile` stays the only writer of events.

Errors are :class:`HistoryError` with a Dutch message that names the record and what to
do, never repeating a bad value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.casefile import EXPLANATION_REASONS, REASON_OTHER, format_reason
from regiesignaal.engine.language.catalogue import suggest
from regiesignaal.engine.language.freetext import ID_MAX, TEXT_MAX, text_message
from regiesignaal.engine.store import migrate
from regiesignaal.engine.store.db import engine_options, sqlite_file
from regiesignaal.engine.store.tables import explanations, known_rules, runs, signal_events, signals

STATES = ("open", "escalated", "explained", "closed")


class HistoryError(Exception):
    """An operator action or look-up could not be done; the message says why."""


def open_store(store_url: str) -> sa.Engine:
    """An engine on an existing, migrated store; never creates it (HistoryError)."""
    path = sqlite_file(store_url)
    if path is not None and not path.exists():
        raise HistoryError(
            f"de opslag {path} bestaat niet; draai eerst een run "
            "(of 'regiesignaal db upgrade') of controleer store_url"
        )
    if not migrate.is_up_to_date(store_url):
        raise HistoryError(
            "de opslag (store) heeft niet het juiste schema; voer eerst "
            "'regiesignaal db upgrade' uit"
        )
    return sa.create_engine(store_url, **engine_options(store_url))


def _check_text(value: str, label: str, max_length: int = ID_MAX) -> None:
    """HistoryError when ``value`` is empty, too long or holds control or invisible
    characters (the command line's own check, for callers of this API)."""
    message = text_message(value, label, max_length)
    if message is not None:
        raise HistoryError(message)


def reference_date(conn: sa.Connection, default: dt.date) -> dt.date:
    """The as-of date states are shown for: the latest successful run's, else ``default``."""
    latest = conn.execute(
        sa.select(sa.func.max(runs.c.as_of)).where(runs.c.status == "succeeded")
    ).scalar()
    return latest if isinstance(latest, dt.date) else default


def state_of(row: Any, today: dt.date) -> str:
    """``closed``, ``explained`` (explanation in force today), ``escalated`` or ``open``."""
    if row.closed_on is not None:
        return "closed"
    if row.explained_until is not None and row.explained_until >= today:
        return "explained"
    if row.escalated_on is not None:
        return "escalated"
    return "open"


def _record(row: Any, today: dt.date) -> dict[str, Any]:
    return {
        "id": row.id,
        "case_ref": row.case_ref,
        "rule_id": row.rule_id,
        "state": state_of(row, today),
        "severity": row.severity,
        "regievoerder": row.regievoerder,
        "team": row.team,
        "opened_on": row.opened_on,
        "last_seen_on": row.last_seen_on,
        "closed_on": row.closed_on,
        "close_reason": row.close_reason,
        "reopened": bool(row.reopened),
        "baseline": bool(row.baseline),
        "escalated_on": row.escalated_on,
        "explained_until": row.explained_until,
        "explanation_expired_on": row.explanation_expired_on,
        "gap_since": row.gap_since,
        "shadow": bool(row.shadow),  # of a rule in shadow mode: shown to nobody per person
    }


def list_signals(
    conn: sa.Connection,
    today: dt.date,
    *,
    regievoerder: str | None = None,
    team: str | None = None,
    rule: str | None = None,
    state: str | None = None,
    limit: int | None = None,
    shadow: bool = False,
) -> list[dict[str, Any]]:
    """Signal episodes as dicts (see :func:`_record`), ordered by case then rule then id.

    Without ``state`` only open episodes are listed; ``state='closed'`` lists closed ones.
    Episodes of a rule in shadow mode are left out (issue 18: they are shown to nobody per
    person); ``shadow`` lists only those instead.
    """
    c = signals.c
    query = sa.select(signals).where(c.shadow.is_(shadow)).order_by(c.case_ref, c.rule_id, c.id)
    if regievoerder:
        query = query.where(c.regievoerder == regievoerder)
    if team:
        query = query.where(c.team == team)
    if rule:
        query = query.where(c.rule_id == rule)
    if state == "closed":
        query = query.where(c.closed_on.is_not(None))
    else:
        query = query.where(c.closed_on.is_(None))
    out = []
    for row in conn.execute(query):
        record = _record(row, today)
        if state in (None, "closed") or record["state"] == state:
            out.append(record)
            if limit is not None and len(out) >= limit:
                break
    return out


@dataclass
class History:
    signal: dict[str, Any]
    events: list[dict[str, Any]]


def signal_histories(conn: sa.Connection, ref: str, today: dt.date) -> list[History]:
    """Every episode of signal id ``ref`` or of case ``ref``, each with its events in order."""
    c = signals.c
    query = sa.select(signals).order_by(c.rule_id, c.id)
    if ref.isascii() and ref.isdigit() and len(ref) <= 18:  # a signal id fits a BIGINT
        query = query.where(sa.or_(c.id == int(ref), c.case_ref == ref))
    else:
        query = query.where(c.case_ref == ref)
    rows = conn.execute(query).all()
    if not rows:
        return []
    e = signal_events.c
    events: dict[int, list[dict[str, Any]]] = {}
    ids = [row.id for row in rows]
    for ev in conn.execute(
        sa.select(signal_events).where(e.signal_id.in_(ids)).order_by(e.id)
    ).mappings():
        events.setdefault(ev["signal_id"], []).append(dict(ev))
    return [History(_record(row, today), events.get(row.id, [])) for row in rows]


# ------------------------------------------------------------------ explanations


@dataclass(frozen=True)
class SourceCheck:
    """What the source says about an explanation's case and author (issue 18, item 8).

    ``case_status`` is None when the source has no such case; ``staff_known`` whether the
    staff directory holds the ``--by`` id. The caller reads the source; the store only
    decides whether to accept the explanation.
    """

    case_status: str | None
    staff_known: bool


def check_subjects(check: SourceCheck) -> None:
    """Refuse an explanation for a case or by a staff member the source does not know.

    The messages never repeat the value given: it may be a name or a V-number typed in
    the wrong place.
    """
    if check.case_status is None:
        raise HistoryError(
            "de zaak staat niet in de brondatabase; controleer het zaaknummer (de "
            "pseudonieme zaakreferentie, zoals in uw signalenlijst) en probeer het opnieuw"
        )
    if check.case_status != "open":
        raise HistoryError(
            "de zaak is gesloten in de brondatabase: de nachtelijke run slaat haar over, "
            "een toelichting heeft geen effect"
        )
    if not check.staff_known:
        raise HistoryError(
            "het medewerker-id bij --by staat niet in het personeelsbestand; geef uw eigen "
            "medewerker-id op zoals het in het personeelsbestand staat"
        )


def add_explanation(
    conn: sa.Connection,
    case_ref: str,
    rule_id: str,
    until: dt.date,
    reason: str,
    by: str,
    today: dt.date,
    rule_ids: Collection[str],
    now: dt.datetime | None = None,
    text: str = "",
    source: SourceCheck | None = None,
) -> int:
    """Record an explanation; returns its id. The next run applies it to the signal.

    ``reason`` is a code of ``casefile.EXPLANATION_REASONS``; ``text`` a free text beside
    it, required for ``anders``. Stored as ``code`` or ``code: text``, at most ``TEXT_MAX``
    characters all told (the limit holds for what is stored). With ``source``
    (what the command line read from the source) an unknown or closed case and an unknown
    staff id are refused; without it (the demo, older callers) they are not checked.
    """
    if rule_id not in rule_ids:
        hint = suggest(rule_id.strip().upper(), rule_ids) or "zie 'regiesignaal rules fields'"
        raise HistoryError(f"De regel bestaat niet in de regelmap; {hint}")
    if until < today:
        raise HistoryError(
            f"De einddatum ligt voor vandaag ({today.isoformat()}); kies een datum vanaf vandaag"
        )
    code = reason.strip().lower()
    if code not in EXPLANATION_REASONS:
        raise HistoryError(
            "De reden is geen van de vaste redenen; kies met --reason een van: "
            + ", ".join(EXPLANATION_REASONS)
            + " (bij 'anders' een toelichting met --text)"
        )
    if code == REASON_OTHER and not text.strip():
        raise HistoryError("Bij reden 'anders' hoort een toelichting: geef die met --text")
    if not by.strip():
        raise HistoryError("Geef uw medewerker-id op met --by")
    _check_text(by, "Het medewerker-id (--by)")
    _check_text(case_ref, "Het zaaknummer")
    if text.strip():
        _check_text(text, "De toelichting (--text)", TEXT_MAX)
    stored = format_reason(code, text)
    if len(stored) > TEXT_MAX:
        raise HistoryError(
            f"De toelichting (--text) is te lang: met de reden ervoor wordt hooguit {TEXT_MAX} "
            f"tekens bewaard, dus bij reden '{code}' hooguit {TEXT_MAX - len(code) - 2} "
            "tekens; maak haar korter."
        )
    if source is not None:
        check_subjects(source)
    result = conn.execute(
        explanations.insert().values(
            case_ref=case_ref,
            rule_id=rule_id,
            until=until,
            reason=stored,
            created_by=by.strip(),
            created_at=now or dt.datetime.now(dt.UTC),
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def explanations_in_force(
    conn: sa.Connection, case_ref: str, rule_id: str, today: dt.date
) -> list[tuple[int, dt.date]]:
    """(id, until) of the command-line explanations of this case and rule that are not
    revoked and still hold on ``today``, by id. A new one is added beside them; the run
    uses the one that lasts longest (``episodes.load_stored_explanations``)."""
    c = explanations.c
    rows = conn.execute(
        sa.select(c.id, c.until)
        .where(
            c.case_ref == case_ref,
            c.rule_id == rule_id,
            c.revoked_at.is_(None),
            c.until >= today,
        )
        .order_by(c.id)
    )
    return [(int(r.id), r.until) for r in rows]


def list_explanations(conn: sa.Connection, include_revoked: bool = False) -> list[dict[str, Any]]:
    c = explanations.c
    query = sa.select(explanations).order_by(c.id)
    if not include_revoked:
        query = query.where(c.revoked_at.is_(None))
    return [dict(r) for r in conn.execute(query).mappings()]


def revoke_explanation(
    conn: sa.Connection, explanation_id: int, by: str, now: dt.datetime | None = None
) -> None:
    c = explanations.c
    row = conn.execute(sa.select(explanations).where(c.id == explanation_id)).first()
    if row is None:
        raise HistoryError(
            f"Toelichting {explanation_id} bestaat niet; zie 'regiesignaal explanations list'"
        )
    if row.revoked_at is not None:
        raise HistoryError(f"Toelichting {explanation_id} is al ingetrokken")
    if not by.strip():
        raise HistoryError("Geef uw medewerker-id op met --by")
    _check_text(by, "Het medewerker-id (--by)")
    conn.execute(
        explanations.update()
        .where(c.id == explanation_id)
        .values(revoked_at=now or dt.datetime.now(dt.UTC), revoked_by=by.strip())
    )


# ------------------------------------------------------------------ rules


def retire_rules(
    conn: sa.Connection,
    rule_ids: Collection[str],
    by: str,
    active_rule_ids: Collection[str],
    now: dt.datetime | None = None,
) -> list[str]:
    """Mark rules retired; the next run closes their open signals as ``rule_retired``.

    Refuses a rule that is active in the rule folder (switch it off or remove it first)
    and a rule the store does not know (no signals, never introduced). Returns the ids.
    """
    now = now or dt.datetime.now(dt.UTC)
    c = signals.c
    holding = set(conn.execute(sa.select(c.rule_id).distinct()).scalars())
    known = {
        r: at for r, at in conn.execute(sa.select(known_rules.c.rule_id, known_rules.c.retired_at))
    }
    for rule_id in rule_ids:
        if rule_id in active_rule_ids:
            raise HistoryError(
                f"regel {rule_id} staat nog aan in de regelmap; zet hem uit (enabled: false) "
                "of verwijder het bestand, en trek hem daarna in"
            )
    unknown = [r for r in rule_ids if r not in holding and r not in known]
    if unknown:
        # rule ids are no case data: naming them tells the operator which one to fix
        hints = [suggest(r.strip().upper(), holding | set(known)) for r in unknown]
        raise HistoryError(
            f"{'regel' if len(unknown) == 1 else 'regels'} "
            f"{', '.join(r[:60] for r in unknown)} onbekend in de opslag (geen signalen)"
            + "".join(f"; {hint}" for hint in hints if hint)
        )
    for rule_id in rule_ids:
        if rule_id in known:
            conn.execute(
                known_rules.update()
                .where(known_rules.c.rule_id == rule_id)
                .values(retired_at=now, retired_by=by)
            )
        else:
            conn.execute(
                known_rules.insert().values(rule_id=rule_id, retired_at=now, retired_by=by)
            )
    return list(rule_ids)


def note_promotion(conn: sa.Connection, rule_id: str, by: str, reason: str) -> bool:
    """Leave who promotes ``rule_id`` and why for the next run, which makes its signals
    live (``engine.reconcile.change_mode``); False when the store does not know the rule
    in shadow mode (it never ran: the next run introduces it live)."""
    _check_text(by, "Het medewerker-id (--by)")
    _check_text(reason, "De reden (--reason)", TEXT_MAX)
    c = known_rules.c
    done = conn.execute(
        known_rules.update()
        .where(c.rule_id == rule_id, c.mode == "shadow", c.retired_at.is_(None))
        .values(mode_by=by, mode_reason=reason)
    )
    return bool(done.rowcount)
