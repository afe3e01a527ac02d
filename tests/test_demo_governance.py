"""The multi-night demo tells the governance story of issue 18 with real runs: an
explanation given on the command line lapses when the case changes under it, a policy
owner's silence is recorded with who and why, and the rule report page is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from regiesignaal.engine.store.tables import (
    rule_events,
    runs,
    signal_events,
    signals,
    silence_events,
    silences,
)
from regiesignaal.jobs.demo.demo import run_demo
from regiesignaal.jobs.demo.nights import LAPSE_RULE, POLICY_OWNER, SHADOW_RULE, SILENCED_RULE


@pytest.mark.slow
def test_a_five_night_demo_shows_a_lapse_a_silence_and_the_rule_report(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    summary = run_demo(directory, cases=300, seed=42, nights=5)
    assert summary.status == "succeeded"
    engine = sa.create_engine(f"sqlite:///{directory / 'store.sqlite'}")
    try:
        with engine.connect() as conn:
            lapsed = conn.execute(
                sa.select(signals.c.case_ref, signals.c.rule_id, signals.c.closed_on)
                .join(signal_events, signal_events.c.signal_id == signals.c.id)
                .where(signal_events.c.kind == "explanation_lapsed")
            ).all()
            silence = conn.execute(sa.select(silences)).one()
            promoted = conn.execute(sa.select(rule_events)).all()
            last_night = conn.execute(sa.select(sa.func.max(runs.c.as_of))).scalar()
            shadow_rows = conn.execute(
                sa.select(signals.c.opened_on, signals.c.baseline, signals.c.shadow).where(
                    signals.c.rule_id == SHADOW_RULE
                )
            ).all()
            kinds = conn.execute(
                sa.select(silence_events.c.kind, silence_events.c.by).order_by(silence_events.c.id)
            ).all()
    finally:
        engine.dispose()
    # the explained signal lapsed on the changed case and is open again, not closed
    assert [(r.rule_id, r.closed_on) for r in lapsed] == [(LAPSE_RULE, None)]
    assert silence.rule_id == SILENCED_RULE and silence.team is not None
    assert silence.reason and silence.created_by == POLICY_OWNER
    assert kinds[0] == ("added", POLICY_OWNER)
    page = (directory / "regelrapport" / "regelrapport.html").read_text(encoding="utf-8")
    assert LAPSE_RULE in page and SILENCED_RULE in page
    config = (directory / "regiesignaal.toml").read_text(encoding="utf-8")
    assert "[report]" in config
    # the demo runs its own copy of the rules: following the guide never edits the pack
    assert str((directory / "regels").resolve()) in config
    # the rule rehearsed in shadow for four nights was promoted before the last one: one
    # change of mode with who and why, and none of its findings counts as new
    assert [(e.rule_id, e.from_mode, e.to_mode, e.by) for e in promoted] == [
        (SHADOW_RULE, "shadow", "live", POLICY_OWNER)
    ]
    assert promoted[0].as_of == last_night and promoted[0].open_signals > 0
    assert shadow_rows and all(r.baseline for r in shadow_rows)
    assert not any(r.shadow for r in shadow_rows if r.opened_on == last_night)
    assert "mode: shadow" not in (directory / "regels" / "contact-21d.yaml").read_text()
