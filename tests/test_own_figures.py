"""'Jouw cijfers' (issue 18): each case manager sees their own figures beside the team's
median in their own list, weekly; never anybody else's figures or name, never a ranking."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import sqlalchemy as sa

from regiesignaal.engine.store.tables import signals
from regiesignaal.notifications.case_manager import OWN_MIN_CASES, own_figures
from regiesignaal.notifications.compose.case_manager import (
    Figures,
    OwnFigures,
    compose_case_manager,
)
from regiesignaal.notifications.compose.model import Recipient, SignalLine
from regiesignaal.notifications.compose.overrides import check_template_overrides
from regiesignaal.notifications.compose.render import MailOptions
from regiesignaal.notifications.shared import RuleMeta

AS_OF = dt.date(2026, 11, 30)  # a Monday
RULES = {"R": RuleMeta("Titel", None, "actie")}
STAFF = {
    "rv-1": {"role": "regievoerder", "team": "T1", "name": "Ada Eerste"},
    "rv-2": {"role": "regievoerder", "team": "T1", "name": "Bram Tweede"},
    "rv-3": {"role": "regievoerder", "team": "T1", "name": "Cees Derde"},
    "rv-4": {"role": "regievoerder", "team": "T1", "name": "Dirk Vierde"},  # few cases
    "rv-9": {"role": "regievoerder", "team": "T2", "name": "Eva Alleen"},  # a team of one
    "tl-1": {"role": "teamleider", "team": "T1", "name": "Fien Leider"},
}
OPEN_CASES = {"rv-1": 10, "rv-2": 5, "rv-3": 20, "rv-4": OWN_MIN_CASES - 1, "rv-9": 8}


def add(engine: sa.Engine, rv: str, n: int = 1, **kw: object) -> None:
    opened = kw.get("opened", AS_OF - dt.timedelta(days=20))
    with engine.begin() as conn:
        for i in range(n):
            conn.execute(
                signals.insert().values(
                    case_ref=f"Z-{rv}-{i}-{kw.get('tag', '')}",
                    rule_id=kw.get("rule_id", "R"),
                    severity="high",
                    regievoerder=rv,
                    team=STAFF[rv]["team"],
                    opened_on=opened,
                    last_seen_on=AS_OF,
                    closed_on=kw.get("closed"),
                    close_reason="resolved" if kw.get("closed") else None,
                    outcome="resolved" if kw.get("closed") else None,
                    escalated_on=AS_OF if kw.get("escalated") else None,
                    explained_until=kw.get("explained_until"),
                    covered_by=kw.get("covered_by"),
                )
            )


def test_own_figures_beside_the_median_of_the_team(store: sa.Engine) -> None:
    add(store, "rv-1", 3)
    add(store, "rv-1", 1, escalated=True, tag="e")
    add(store, "rv-1", 2, explained_until=AS_OF, tag="x")  # explained: not in the list
    add(store, "rv-1", 1, covered_by="R", tag="c")  # covered: not on its own
    add(store, "rv-1", 1, rule_id="OLD", tag="o")  # a rule no longer active
    add(store, "rv-2", 1)
    add(store, "rv-3", 3)
    add(store, "rv-3", 3, escalated=True, tag="e")
    add(store, "rv-4", 4)  # 10 per 10 cases, but too few cases for the median
    # resolved by a change: rv-1 in 5 working days (Mon 02-11 to Mon 09-11); rv-3 in 2, 4
    add(store, "rv-1", 1, opened=dt.date(2026, 11, 2), closed=dt.date(2026, 11, 9), tag="r")
    add(store, "rv-3", 1, opened=dt.date(2026, 11, 16), closed=dt.date(2026, 11, 18), tag="r")
    add(store, "rv-3", 1, opened=dt.date(2026, 11, 16), closed=dt.date(2026, 11, 20), tag="s")
    add(store, "rv-3", 1, opened=dt.date(2026, 8, 3), closed=dt.date(2026, 8, 5), tag="t")
    add(store, "rv-9", 2)
    with store.connect() as conn:
        found = own_figures(conn, AS_OF, RULES, STAFF, OPEN_CASES)
    assert set(found) == {"rv-1", "rv-2", "rv-3", "rv-4", "rv-9"}  # case managers only
    one = found["rv-1"]
    assert one.own == Figures(4.0, 0.25, 5.0)
    assert found["rv-3"].own == Figures(3.0, 0.5, 3.0)  # the August one is too old
    assert found["rv-4"].own.per_10_cases == 10.0
    # the team median over rv-1, rv-2 and rv-3 (rv-4 has too few cases); a figure that
    # fewer than three of them have (the resolution time) has no median
    assert one.team == Figures(3.0, 0.25, None) and one.colleagues == 3
    assert found["rv-4"].team == one.team  # rv-4 sees the team median too
    assert found["rv-9"].team is None  # a team of one shows no median


def test_the_block_names_nobody_and_ranks_nobody() -> None:
    own = OwnFigures(Figures(4.0, 0.25, 5.0), Figures(3.0, 0.25, None), 3, 5, 8)
    line = SignalLine(
        "Z-1", "R", "Titel", "high", AS_OF, 3, True, False, False, None, "Doe iets.",
        "https://zaak.example/Z-1", 1.0,
    )  # fmt: skip
    mail = compose_case_manager(Recipient("rv-1", "rv-1@x.invalid"), AS_OF, [line], own=own)
    text = " ".join(mail.text.split())
    assert "== Jouw cijfers ==" in mail.text and "Jouw cijfers" in mail.html
    assert "Open signalen per 10 zaken: 4 (teammediaan 3)" in text
    assert "Geëscaleerd: 25% (teammediaan 25%)" in text
    assert "Werkdagen tot oplossing (mediaan, 8 weken): 5 (teammediaan –)" in text
    assert "middelste cijfer van de 3 regievoerders van je team met minstens 5 open zaken" in text
    assert "ter vergelijking" in text.lower() and "geen beoordeling" in text
    for word in ("rangorde", "plaats", "achter", "slechter", "beter", "te laag", "te hoog"):
        assert word not in text.split("== Jouw cijfers ==")[1].split("--")[0].lower()
    for other in ("rv-2", "rv-3", "Bram", "Cees"):
        assert other not in mail.text and other not in mail.html
    alone = compose_case_manager(
        Recipient("rv-9", "rv-9@x.invalid"),
        AS_OF,
        [line],
        own=OwnFigures(Figures(2.5, 0.0, None), None, 0, 5, 8),
    )
    assert ">teammediaan<" not in alone.html and "(teammediaan" not in alone.text
    assert "te weinig regievoerders" in alone.text
    without = compose_case_manager(Recipient("rv-1", "rv-1@x.invalid"), AS_OF, [line])
    assert "Jouw cijfers" not in without.text and "Jouw cijfers" not in without.html


def test_the_block_follows_the_template_overrides(tmp_path: Path) -> None:
    """The block lives in the templates: an override may move, reword or drop it, and an
    override that uses its values is checked with sample figures before a run."""
    (tmp_path / "case_manager.txt").write_text(
        "{% if own %}Eigen: {{ own.rows[0].own }} / {{ own.rows[0].team }}{% endif %}\n"
        "{{ subject }}\n",
        encoding="utf-8",
    )
    assert check_template_overrides(tmp_path) == []
    options = MailOptions(templates_dir=tmp_path)
    own = OwnFigures(Figures(4.0, 0.25, 5.0), Figures(3.0, 0.25, None), 3, 5, 8)
    mail = compose_case_manager(Recipient("rv-1", "x@x.invalid"), AS_OF, [], options, own=own)
    assert mail.text.startswith("Eigen: 4 / 3Regiesignaal")  # trim_blocks ate the newline
    assert "Jouw cijfers" in mail.html  # the product's HTML template where not overridden
    (tmp_path / "case_manager.txt").write_text("{{ own.rows[9].own }}\n", encoding="utf-8")
    problems = check_template_overrides(tmp_path)
    assert problems and re.search(r"case_manager\.txt:1", problems[0])
