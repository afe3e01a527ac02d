"""`regiesignaal demo --nights N`: the demo's source data evolving over N working days.

Between two nights (deterministic for a seed): some case managers record a contact, an
interview or a medical check (signals resolve), some cases close, one case is missing
from the delivery for one night (its signals continue after a gap), some cases get a
short explanation in the case file (it expires a few days later: "toelichting verlopen"),
a case moves to another case manager, and on the second night an operator adds an
explanation on the command line. Time passing makes new signals fire and old ones
escalate.

The governance story (issue 18), when there are enough nights: the operator's explanation
(night 2) is given on an unexplored departure wish; on night 3 a policy owner silences one
rule for one team for three working days (a source-system incident); on night 4 a second,
late-recorded departure wish lands in the explained case, so the rule's inputs change and
the explanation lapses ("toelichting vervallen: gegevens gewijzigd"). From five nights on
the demo runs a copy of the rule folder with one extra rule in shadow (``SHADOW_RULE``, a
stricter contact norm being rehearsed): it runs from the first night, is mailed to nobody,
and the rule report shows what it would do; before the last night the policy owner
promotes it, and its findings that night are "bestaand", not new.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.dates import add_working_days
from regiesignaal.engine.source.load import load_cases
from regiesignaal.engine.store import history, silences
from regiesignaal.engine.store.tables import signals

#: Share of open cases that change in each way per night.
CONTACT_SHARE = 0.06
CLOSE_SHARE = 0.01
EXPLAIN_SHARE = 0.02


def nights(last: dt.date, n: int) -> list[dt.date]:
    """``n`` consecutive working days ending on ``last`` (itself moved back to a working
    day when it is not one)."""
    end = add_working_days(add_working_days(last, 1), -1)
    return [add_working_days(end, -(n - 1 - i)) for i in range(n)]


class Evolution:
    """The demo's case file (JSON lines) and how it changes from night to night."""

    def __init__(self, case_file: Path, seed: int):
        self.cases = [json.loads(line) for line in case_file.read_text().splitlines() if line]
        self.rnd = random.Random(seed)
        self.glitched: dict[str, Any] | None = None
        self.explained_case: str | None = None  # the operator's explanation (lapse story)

    def evolve(self, source: sa.Engine, day: dt.date, work: Path) -> int:
        """Change the cases for night ``day`` and load the changed ones; returns how many."""
        rnd = self.rnd
        changed: dict[str, dict[str, Any]] = {}
        if self.glitched is not None:  # back after one night away
            self.glitched["status"] = "open"
            changed[self.glitched["case_ref"]] = self.glitched
            self.glitched = None
        open_cases = [c for c in self.cases if c.get("status", "open") == "open"]
        lapse = self.explained_case
        self.explained_case = None
        for case in open_cases:
            if case["case_ref"] == lapse:  # a second wish, recorded late: the inputs change
                case.setdefault("departure_wishes", []).append(
                    {"recorded_on": (day - dt.timedelta(days=30)).isoformat()}
                )
                changed[case["case_ref"]] = case
                continue
            roll = rnd.random()
            if roll < CONTACT_SHARE:
                case.setdefault("contacts", []).append(
                    {"on": day.isoformat(), "channel": "telefonisch", "by": case["regievoerder"]}
                )
                case.setdefault("interviews", []).append(
                    {"on": day.isoformat(), "kind": "vertrekgesprek", "interpreter": False}
                )
            elif roll < CONTACT_SHARE + CLOSE_SHARE:
                case["status"] = "closed"
            elif roll < CONTACT_SHARE + CLOSE_SHARE + EXPLAIN_SHARE:
                from regiesignaal.fixtures.generator import RULE_IDS

                case.setdefault("explanations", []).append(
                    {
                        "rule": rnd.choice(RULE_IDS),
                        "reason": "Afgestemd met de teamleider",
                        "until": add_working_days(day, rnd.randint(1, 3)).isoformat(),
                        "by": case["regievoerder"],
                    }
                )
            else:
                continue
            changed[case["case_ref"]] = case
        if open_cases:
            glitch = rnd.choice(open_cases)
            if glitch["case_ref"] not in changed:
                glitch["status"] = "closed"  # delivered as closed for one night
                self.glitched = glitch
                changed[glitch["case_ref"]] = glitch
            mover, other = rnd.sample(open_cases, 2) if len(open_cases) > 1 else (None, None)
            if mover is not None and other is not None and mover["case_ref"] not in changed:
                mover["regievoerder"], mover["team"] = other["regievoerder"], other.get("team")
                changed[mover["case_ref"]] = mover
        delta = work / f"changes-{day.isoformat()}.jsonl"
        delta.write_text("".join(json.dumps(c) + "\n" for c in changed.values()))
        load_cases(source, delta)
        delta.unlink()
        return len(changed)


LAPSE_RULE = "WISH-UNEXPLORED"
"""The rule of the operator's explanation in the lapse story: a second unexplored wish
changes the count it reads without resolving it."""


def operator_explanation(store_url: str, day: dt.date) -> str | None:
    """On one open signal (one of ``LAPSE_RULE`` when there is one): an explanation on the
    command line, as an operator would. Returns the explained case's reference."""
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as conn:
            row = conn.execute(
                sa.select(signals.c.case_ref, signals.c.rule_id, signals.c.regievoerder)
                .where(signals.c.closed_on.is_(None))
                .order_by((signals.c.rule_id != LAPSE_RULE), signals.c.id)
                .limit(1)
            ).first()
            if row is not None:
                history.add_explanation(
                    conn,
                    row.case_ref,
                    row.rule_id,
                    add_working_days(day, 10),
                    "elders_geregeld",
                    row.regievoerder or "demo",
                    day,
                    {row.rule_id},
                    text="Vertrek staat gepland; afgestemd met teamleider",
                )
                return str(row.case_ref)
            return None
    finally:
        engine.dispose()


POLICY_OWNER = "bl-001"
"""The generated policy officer (role ``beleid``) who silences and promotes in the demo."""

SILENCED_RULE = "CONTACT-14D"
"""The rule the policy owner silences for one team in the demo."""


def policy_silence(store_url: str, day: dt.date, rule_ids: set[str]) -> int | None:
    """A silence of ``SILENCED_RULE`` for the team with most of its open signals, for three
    working days from ``day``, as a policy owner would add with ``silences add``. Returns
    its id (None: the rule is not in the set or has no open signals)."""
    if SILENCED_RULE not in rule_ids:
        return None
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as conn:
            team = conn.execute(
                sa.select(signals.c.team)
                .where(
                    signals.c.closed_on.is_(None),
                    signals.c.rule_id == SILENCED_RULE,
                    signals.c.team.is_not(None),
                )
                .group_by(signals.c.team)
                .order_by(sa.func.count().desc(), signals.c.team)
                .limit(1)
            ).scalar()
            if team is None:
                return None
            return silences.add_silence(
                conn,
                SILENCED_RULE,
                add_working_days(day, 2),
                "Storing in de contactregistratie van de bron; contacten ontbreken tijdelijk",
                POLICY_OWNER,
                day,
                rule_ids,
                team=str(team),
            )
    finally:
        engine.dispose()


SHADOW_RULE = "CONTACT-21D"
"""The rule the demo's policy owner rehearses in shadow and promotes before the last night."""

SHADOW_RULE_FILE = """\
# Een proef van de beleidseigenaar in de demo: eerst in schaduw, dan live.
id: CONTACT-21D
title: Geen contact in 21 dagen (proef in schaduw)
mail_title: Contactmoment langer dan 21 dagen geleden
mail_code: R23
description: >
  Proef van de beleidseigenaar: een strengere norm dan CONTACT-30D, voor alle locaties. De
  laatste datum van contacten en gesprekken (of de overdrachtsdatum als er geen zijn) ligt
  meer dan 21 dagen voor de peildatum. De regel draait eerst in schaduw: het regelrapport
  laat zien wat hij zou doen, per team, per dag en naast welke regels, voordat hij live gaat.
severity: medium
owner: team-kwaliteit
basis: "R2 (Inspectie JenV, Verantwoord Vertrek, 2022)"
mode: shadow
when:
  latest_contact_on: {older_than: 21d}
expected_action: Neem contact op met de vreemdeling en leg het contact vast.
kind: actie
escalate_after: 10wd
tests:
  - name: contact 22 dagen geleden gaat af
    as_of: 2026-03-02
    case: {opened_on: 2026-01-01, contacts: [{on: 2026-02-08}]}
    expect: fires
  - name: contact 21 dagen geleden gaat niet af
    as_of: 2026-03-02
    case: {opened_on: 2026-01-01, contacts: [{on: 2026-02-09}]}
    expect: does_not_fire
"""


def copy_rules(rules_dir: Path, target: Path, *, with_shadow_rule: bool = False) -> Path:
    """A copy of ``rules_dir`` in ``target`` (the demo's own rules: a policy owner who tries
    the guide edits this copy, never the installed pack), with ``SHADOW_RULE`` added in
    shadow mode when ``with_shadow_rule``; returns ``target``."""
    shutil.copytree(rules_dir, target)
    if with_shadow_rule:
        (target / "contact-21d.yaml").write_text(SHADOW_RULE_FILE, encoding="utf-8")
    return target


def promote_shadow_rule(rules_dir: Path, store_url: str) -> bool:
    """Promote ``SHADOW_RULE`` as ``regiesignaal rules promote`` does: remove its
    ``mode: shadow`` line and leave who and why for the next run. False: not in shadow."""
    from regiesignaal.engine.language.rulefile.mode import make_live

    make_live(rules_dir / "contact-21d.yaml")
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as conn:
            return history.note_promotion(
                conn,
                SHADOW_RULE,
                POLICY_OWNER,
                "Vier nachten in schaduw bekeken: weinig overlap, werkbaar aantal per team",
            )
    finally:
        engine.dispose()
