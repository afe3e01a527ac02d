"""Issue 18, shadow rules: ``mode: shadow`` in a rule file. A shadow rule is evaluated every
night by both evaluators with its full history, but is in no mail, digest, escalation or
agenda; the rule report shows what it would have done; ``rules promote`` (or removing the
line by hand) makes it live with its open hits as existing ("bestaand"), never new; every
change of mode is an event."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from ops_support import make_source, received_texts

from regiesignaal.engine.language.casefile import parse_case
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.dates import Duration, add_working_days
from regiesignaal.engine.language.evaluator import Evaluator
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.mode import (
    ModeEditError,
    make_live,
    without_shadow_line,
    write_text,
)
from regiesignaal.engine.reconcile import Fired, RuleInfo, reconcile
from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.store import history, migrate
from regiesignaal.engine.store.tables import known_rules, rule_events, signal_events, signals
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.config import Settings, load_settings
from regiesignaal.jobs.mail_preview import compose_preview
from regiesignaal.jobs.pipeline import RunOptions, run, upgrade_store
from regiesignaal.notifications.case_manager import iter_case_manager_lists
from regiesignaal.notifications.delivery.mailserver import MailCatcher
from regiesignaal.notifications.delivery.settings import SmtpSettings
from regiesignaal.notifications.rule_report import shadow_report
from regiesignaal.notifications.shared import RuleMeta

AS_OF = dt.date(2026, 3, 2)  # a Monday
RULES = Path(__file__).resolve().parents[1] / "rules"
SHADOW = "CONTACT-30D"

BASE = """\
id: X-A
title: Test
mail_title: Contact nodig
description: Ernst low.
severity: low
owner: team-kwaliteit
when:
  latest_contact_on: {older_than: 5d}
expected_action: Neem contact op.
"""


# --- the rule file ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["schaduw", "[shadow]", "1", "Shadow", "geheim_woord"])
def test_a_bad_mode_is_named_where_it_stands_without_its_value(tmp_path: Path, bad: str) -> None:
    (tmp_path / "derived.yaml").write_text((RULES / "derived.yaml").read_text("utf-8"), "utf-8")
    (tmp_path / "x-a.yaml").write_text(BASE + f"mode: {bad}\n", encoding="utf-8")
    rd = load_rule_dir(tmp_path)
    (problem,) = rd.problems
    assert problem.line == 10 and problem.path.endswith("x-a.yaml")
    assert "'mode' zegt hoe de regel draait" in problem.message
    assert "geheim_woord" not in str(problem) and "schaduw" not in problem.hint


@pytest.mark.parametrize(("extra", "mode"), [("", "live"), ("mode: live\n", "live"),
                                             ("mode: shadow\n", "shadow")])  # fmt: skip
def test_mode_is_optional_and_live_by_default(tmp_path: Path, extra: str, mode: str) -> None:
    (tmp_path / "derived.yaml").write_text((RULES / "derived.yaml").read_text("utf-8"), "utf-8")
    (tmp_path / "x-a.yaml").write_text(BASE + extra, encoding="utf-8")
    rd = load_rule_dir(tmp_path)
    assert rd.ok, rd.problems
    assert rd.rules[0].mode == mode and rd.rules[0].shadow == (mode == "shadow")


def test_the_json_schema_knows_mode() -> None:
    schema = json.loads((RULES.parent / "schema" / "rule.schema.json").read_text("utf-8"))
    assert schema["$defs"]["rule"]["properties"]["mode"]["enum"] == ["live", "shadow"]


def test_promote_removes_only_the_shadow_line() -> None:
    text = BASE.replace("owner:", "mode: 'shadow'  # proef tot mei\nowner:") + "# slot\n"
    assert without_shadow_line(text) == BASE + "# slot\n"
    with pytest.raises(ModeEditError):
        without_shadow_line(BASE)
    with pytest.raises(ModeEditError):  # nested, not the rule's own key
        without_shadow_line(BASE + "tests:\n  - mode: shadow\n")


def test_promote_edits_the_file_in_place_byte_for_byte(tmp_path: Path) -> None:
    """Line endings (CRLF), a BOM and the file's permissions stay as they were; only the
    ``mode: shadow`` line goes."""
    text = BASE.replace("owner:", "mode: shadow\nowner:").replace("\n", "\r\n")
    path = tmp_path / "x-a.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    path.chmod(0o444)
    before = make_live(path)
    assert path.read_bytes() == b"\xef\xbb\xbf" + BASE.replace("\n", "\r\n").encode("utf-8")
    assert path.stat().st_mode & 0o777 == 0o444
    write_text(path, before)  # the way back (a folder that no longer checks) is exact too
    assert path.read_bytes() == b"\xef\xbb\xbf" + text.encode("utf-8")
    assert path.stat().st_mode & 0o777 == 0o444


def test_promote_refuses_a_linked_rule_file_and_says_which_file_to_edit(tmp_path: Path) -> None:
    real = tmp_path / "elders" / "real.yaml"
    real.parent.mkdir()
    real.write_text(BASE + "mode: shadow\n", encoding="utf-8")
    link = tmp_path / "contact-21d.yaml"
    link.symlink_to(real)
    with pytest.raises(ModeEditError) as exc:
        make_live(link)
    assert link.is_symlink() and real.read_text("utf-8").endswith("mode: shadow\n")
    assert str(real) in str(exc.value) and "koppeling" in str(exc.value)
    hard = tmp_path / "hard.yaml"
    hard.hardlink_to(real)
    with pytest.raises(ModeEditError, match="koppeling"):
        make_live(hard)
    assert real.read_text("utf-8").endswith("mode: shadow\n")


def test_the_message_says_what_the_file_must_look_like() -> None:
    with pytest.raises(ModeEditError) as exc:
        without_shadow_line(BASE + "tests:\n  - mode: shadow\n")
    message = str(exc.value)
    assert message[0].isupper() and "'mode: shadow'" in message
    assert "aan het begin van een eigen regel" in message and "zelf" in message


def test_both_evaluators_fire_a_shadow_rule_alike(tmp_path: Path) -> None:
    rules = _rules_with_shadow(tmp_path)
    rd = load_rule_dir(rules)
    assert rd.ok and next(r for r in rd.rules if r.id == SHADOW).shadow
    compiled = compile_rules(rd, AS_OF)
    folder = tmp_path / "cases"
    folder.mkdir()
    generate(200, 3, AS_OF, folder / "cases.jsonl", folder / "staff.jsonl")
    cases = [parse_case(json.loads(x)) for x in (folder / "cases.jsonl").open(encoding="utf-8")]
    python, durable = Evaluator(compiled, "python"), Evaluator(compiled, "durable")
    fired = 0
    for case in cases:
        if case.get("status", "open") != "open":
            continue
        a, b = python.fired(case), durable.fired(case)
        assert a == b, case["case_ref"]
        fired += SHADOW in a
    assert fired > 5


# --- the state machine --------------------------------------------------------------------


def _fired(*keys: str) -> dict[tuple[str, str], Fired]:
    return {(k, "S"): Fired("high", "rv-1", "T1") for k in keys}


def test_promotion_makes_open_hits_baseline_with_a_fresh_clock(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    shadow = {"S": RuleInfo("high", escalate_after=Duration(2, "wd"), shadow=True)}
    live = {"S": RuleInfo("high", escalate_after=Duration(2, "wd"))}
    days = [add_working_days(AS_OF, n) for n in range(8)]
    try:
        with engine.begin() as conn:
            reconcile(conn, _fired("Z-1"), {"Z-1", "Z-2"}, shadow, days[0], 1, baseline=True)
            reconcile(conn, _fired("Z-1", "Z-2"), {"Z-1", "Z-2"}, shadow, days[1], 2, baseline=True)
            counts = reconcile(conn, _fired("Z-1", "Z-2"), {"Z-1", "Z-2"}, shadow, days[4], 3,
                               baseline=True)  # fmt: skip
            rows = {r.case_ref: r for r in conn.execute(sa.select(signals))}
            assert all(r.shadow for r in rows.values())
            assert rows["Z-1"].baseline and not rows["Z-2"].baseline  # first night: baseline
            assert rows["Z-2"].escalated_on is not None, "the clock runs in shadow too"
            assert counts.still_open == 2
            # the file edited by hand: the next night notices it
            reconcile(conn, _fired("Z-1", "Z-2"), {"Z-1", "Z-2"}, live, days[5], 4, baseline=True)
            rows = {r.case_ref: r for r in conn.execute(sa.select(signals))}
            assert not any(r.shadow for r in rows.values())
            assert all(r.baseline for r in rows.values()), "promoted hits are bestaand"
            assert all(r.escalated_on is None for r in rows.values()), "escalation starts again"
            assert all(r.clock_start >= days[5] for r in rows.values())
            events = conn.execute(
                sa.select(signal_events.c.case_ref, signal_events.c.details).where(
                    signal_events.c.kind == "mode_changed"
                )
            ).all()
            assert sorted(e.case_ref for e in events) == ["Z-1", "Z-2"]
            assert all(e.details["from"] == "shadow" and e.details["to"] == "live" for e in events)
            (ev,) = conn.execute(sa.select(rule_events)).all()
            assert (ev.from_mode, ev.to_mode, ev.by, ev.open_signals) == ("shadow", "live", None, 2)
            # the same night again changes nothing
            again = reconcile(conn, _fired("Z-1", "Z-2"), {"Z-1", "Z-2"}, live, days[5], 4,
                              baseline=True)  # fmt: skip
            assert again.new == 0
            assert conn.execute(sa.select(sa.func.count()).select_from(rule_events)).scalar() == 1
            # live -> shadow: kept, history kept, marked again
            reconcile(conn, _fired("Z-1"), {"Z-1", "Z-2"}, shadow, days[6], 5, baseline=True)
            rows = {r.case_ref: r for r in conn.execute(sa.select(signals))}
            assert rows["Z-1"].shadow and rows["Z-1"].closed_on is None
            kinds = [k for (k,) in conn.execute(sa.select(rule_events.c.to_mode).order_by("id"))]
            assert kinds == ["live", "shadow"]
            assert (
                conn.execute(
                    sa.select(known_rules.c.mode).where(known_rules.c.rule_id == "S")
                ).scalar()
                == "shadow"
            )
    finally:
        engine.dispose()


def test_a_shadow_rule_covers_nothing(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    rules = {"W": RuleInfo("high", covers=("N",), shadow=True), "N": RuleInfo("high")}
    fired = {("Z-1", "W"): Fired("high", "rv-1", "T1"), ("Z-1", "N"): Fired("high", "rv-1", "T1")}
    try:
        with engine.begin() as conn:
            counts = reconcile(conn, fired, {"Z-1"}, rules, AS_OF, 1)
            assert counts.covered == 0
    finally:
        engine.dispose()


def test_promote_records_who_and_why(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    shadow = {"S": RuleInfo("high", shadow=True)}
    try:
        with engine.begin() as conn:
            reconcile(conn, _fired("Z-1"), {"Z-1"}, shadow, AS_OF, 1, baseline=True)
            assert history.note_promotion(conn, "S", "bo-1", "proef geslaagd")
            reconcile(conn, _fired("Z-1", "Z-2"), {"Z-1", "Z-2"}, {"S": RuleInfo("high")},
                      add_working_days(AS_OF, 1), 2, baseline=True)  # fmt: skip
            rows = {r.case_ref: r for r in conn.execute(sa.select(signals))}
            (ev,) = conn.execute(sa.select(rule_events)).all()
            details = conn.execute(
                sa.select(signal_events.c.details).where(signal_events.c.kind == "mode_changed")
            ).scalar_one()
    finally:
        engine.dispose()
    assert rows["Z-1"].baseline and not rows["Z-1"].shadow
    assert rows["Z-2"].baseline, "what it finds on the night it goes live is bestaand too"
    assert (ev.by, ev.reason) == ("bo-1", "proef geslaagd")
    assert details["by"] == "bo-1" and "reason" not in details  # free text stays on the rule


def test_a_promotion_note_is_credited_to_that_promotion_only(sqlite_url: str) -> None:
    """A note left by rules promote is used once: a later hand edit (back to shadow, or
    live again after the promotion was undone before its night) is nobody's."""
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    shadow, live = {"S": RuleInfo("high", shadow=True)}, {"S": RuleInfo("high")}
    days = [add_working_days(AS_OF, n) for n in range(5)]
    try:
        with engine.begin() as conn:
            reconcile(conn, _fired("Z-1"), {"Z-1"}, shadow, days[0], 1, baseline=True)
            # promoted, then put back in shadow by hand before the night
            assert history.note_promotion(conn, "S", "bo-1", "proef geslaagd")
            reconcile(conn, _fired("Z-1"), {"Z-1"}, shadow, days[1], 2, baseline=True)
            assert conn.execute(sa.select(sa.func.count()).select_from(rule_events)).scalar() == 0
            # a later promotion by hand: not bo-1's
            reconcile(conn, _fired("Z-1"), {"Z-1"}, live, days[2], 3, baseline=True)
            # promoted by bo-2 the right way, then demoted by hand: the demotion is nobody's
            reconcile(conn, _fired("Z-1"), {"Z-1"}, shadow, days[3], 4, baseline=True)
            assert history.note_promotion(conn, "S", "bo-2", "tweede proef")
            reconcile(conn, _fired("Z-1"), {"Z-1"}, live, days[4], 5, baseline=True)
            reconcile(conn, _fired("Z-1"), {"Z-1"}, shadow, add_working_days(days[4], 1), 6,
                      baseline=True)  # fmt: skip
            events = conn.execute(
                sa.select(rule_events.c.to_mode, rule_events.c.by, rule_events.c.reason).order_by(
                    rule_events.c.id
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(e) for e in events] == [
        ("live", None, None),
        ("shadow", None, None),
        ("live", "bo-2", "tweede proef"),
        ("shadow", None, None),
    ]


# --- through real runs ----------------------------------------------------------------------


def _rules_with_shadow(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    path = rules / f"{SHADOW.lower()}.yaml"
    text = path.read_text("utf-8")
    path.write_text(text.replace("\nowner:", "\nmode: shadow\nowner:", 1), "utf-8")
    return rules


def _settings(source_url: str, store_url: str, port: int, rules: Path, report: Path) -> Settings:
    return dataclasses.replace(
        load_settings(env={}),
        source_url=source_url,
        store_url=store_url,
        rules_dir=rules,
        workers=1,
        grace_days=0,
        rule_report_dir=report,
        smtp=SmtpSettings(host="127.0.0.1", port=port, tls="none", timeout_seconds=10),
    )


@pytest.mark.slow
def test_a_shadow_rule_through_real_runs(db_url: str, tmp_path: Path) -> None:
    source_url, _, staff = make_source(tmp_path, cases=300, seed=5)
    rules = _rules_with_shadow(tmp_path)
    pack = {r.id: r for r in load_rule_dir(rules).rules}
    title = pack[SHADOW].mail_title
    assert not any(title in r.mail_title for rid, r in pack.items() if rid != SHADOW)
    days = [add_working_days(AS_OF, n) for n in range(4)]
    store = sa.create_engine(db_url)
    report = tmp_path / "report"
    mails: list[dict[str, str]] = []
    with MailCatcher(tmp_path / "mail") as catcher:
        settings = _settings(source_url, db_url, catcher.port, rules, report)
        upgrade_store(settings)
        seen: set[Path] = set()
        run(settings, RunOptions(days[0]))
        mails.append(received_texts(tmp_path / "mail", seen))
        run(settings, RunOptions(days[1]))
        mails.append(received_texts(tmp_path / "mail", seen))
        page = (report / "regelrapport.html").read_text("utf-8")
        officer = next(
            s["id"]
            for s in map(json.loads, staff.read_text().splitlines())
            if s["role"] == "beleid"
        )
        preview = compose_preview(settings, officer, days[1]).message.text
        assert "REGELS IN SCHADUW" in preview and title in preview, "mail preview as a run"
        with store.connect() as conn:
            in_shadow = conn.execute(
                sa.select(signals.c.id, signals.c.case_ref).where(
                    signals.c.rule_id == SHADOW, signals.c.closed_on.is_(None)
                )
            ).all()
            assert (
                conn.execute(
                    sa.select(sa.func.count()).where(signals.c.rule_id == SHADOW, ~signals.c.shadow)
                ).scalar()
                == 0
            )
            meta = {rid: RuleMeta.of(r) for rid, r in pack.items()}
            lists = list(iter_case_manager_lists(conn, days[1], meta, lambda c: c, {}))
            assert not [ln for _, found in lists for ln in found.lines if ln.rule_id == SHADOW]
        # monitoring counts them apart; the case's history marks them
        from regiesignaal.jobs.ops.health import metrics_text

        metrics = metrics_text(settings, store)
        assert f"regiesignaal_shadow_signals_open {len(in_shadow)}" in metrics
        live_open = sum(
            int(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("regiesignaal_signals_open{")
        )
        with store.connect() as conn:
            all_open = conn.execute(
                sa.select(sa.func.count()).where(signals.c.closed_on.is_(None))
            ).scalar()
            shown_case = history.signal_histories(conn, in_shadow[0].case_ref, days[1])
        assert live_open == all_open - len(in_shadow)
        assert [h.signal["shadow"] for h in shown_case if h.signal["rule_id"] == SHADOW] == [True]
        # the policy owner removes the line by hand: the next night makes the rule live
        path = rules / f"{SHADOW.lower()}.yaml"
        path.write_text(without_shadow_line(path.read_text("utf-8")), "utf-8")
        run(settings, RunOptions(days[2]))
        mails.append(received_texts(tmp_path / "mail", seen))
    with store.connect() as conn:
        after = {
            r.id: r
            for r in conn.execute(
                sa.select(signals).where(signals.c.id.in_([r.id for r in in_shadow]))
            )
        }
        promoted = conn.execute(
            sa.select(sa.func.count()).where(
                signal_events.c.kind == "mode_changed", signal_events.c.rule_id == SHADOW
            )
        ).scalar()
        lists = list(
            iter_case_manager_lists(
                conn, days[2], {rid: RuleMeta.of(r) for rid, r in pack.items()}, lambda c: c, {}
            )
        )
    store.dispose()

    assert len(in_shadow) >= 10
    roles = {s["email"]: s["role"] for s in map(json.loads, staff.read_text().splitlines())}
    for night in mails[:2]:
        assert night, "the other rules are mailed"
        for to, text in night.items():
            assert SHADOW not in text
            if roles.get(to) == "beleid":  # the rule report: what it would have done
                assert "REGELS IN SCHADUW" in text and title in text
            else:
                assert title not in text
    assert "Regels in schaduw" in page and SHADOW in page
    assert [t for t in mails[2].values() if title in t], "live: mailed"
    assert all(not r.shadow and r.baseline for r in after.values() if r.closed_on is None)
    assert promoted >= len([r for r in after.values() if r.closed_on is None])
    shown = [ln for _, found in lists for ln in found.lines if ln.rule_id == SHADOW]
    before = {r.case_ref for r in in_shadow}
    assert [ln for ln in shown if ln.case_ref in before]
    assert not [ln for ln in shown if ln.is_new or not ln.baseline], "no new on that night"
    for text in mails[2].values():
        assert SHADOW not in text


def test_shadow_report_per_team_per_day_and_overlap(sqlite_url: str) -> None:
    from regiesignaal.notifications.compose.rule_report import RuleInfo as Info
    from regiesignaal.notifications.compose.rule_report import RuleReport, compose_rule_report

    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    rules = {"S": RuleInfo("high", shadow=True), "L": RuleInfo("high")}
    day2 = add_working_days(AS_OF, 1)
    f1 = {(c, "S"): Fired("high", "rv-1", "T1" if c < "Z-3" else "T2") for c in ("Z-1", "Z-3")}
    f2 = dict(f1) | {("Z-2", "S"): Fired("high", "rv-1", "T1"),
                     ("Z-1", "L"): Fired("high", "rv-1", "T1")}  # fmt: skip
    try:
        with engine.begin() as conn:
            reconcile(conn, f1, {"Z-1", "Z-2", "Z-3"}, rules, AS_OF, 1, baseline=True)
            reconcile(conn, f2, {"Z-1", "Z-2", "Z-3"}, rules, day2, 2, baseline=True)
            shadow = {"S": Info("S", "Schaduwtitel", "R90")}
            live = {"L": Info("L", "Live titel", "R01")}
            rep = shadow_report(conn, day2, shadow, live, days=3)
    finally:
        engine.dispose()
    (s,) = rep.rules
    assert s.open_now == 3 and s.since == AS_OF
    assert s.per_team == (("T1", 2), ("T2", 1))
    assert [(d.day, d.fired, d.opened) for d in s.per_day] == [
        (AS_OF - dt.timedelta(days=1), 0, 0), (AS_OF, 2, 0), (day2, 3, 1)
    ]  # fmt: skip
    assert s.overlap_cases == 1 and s.overlap == ((live["L"], 1),)
    mail = compose_rule_report(RuleReport(day2, []), show_rule_ids=False, shadow=rep)
    assert "regels in schaduw" in mail.text.lower() and "R90 Schaduwtitel" in mail.html
    assert "R01 Live titel (1)" in mail.text


def test_the_shadow_section_shows_working_days_since_the_first_night_and_the_top_overlap() -> None:
    """A weekend or a day before the rule existed is no run, not a zero; the overlap names
    the five live rules sharing most cases and counts the rest."""
    from regiesignaal.notifications.compose.rule_report import (
        RuleInfo as Info,
    )
    from regiesignaal.notifications.compose.rule_report import (
        RuleReport,
        ShadowDay,
        ShadowReport,
        ShadowStats,
        compose_rule_report,
        shadow_context,
    )

    friday = dt.date(2026, 3, 6)  # the rule's first night
    week = [friday + dt.timedelta(days=n) for n in range(-2, 5)]  # wed .. tue
    live = [(Info(f"L{n}", f"Live {n}", f"R{n:02d}"), 10 - n) for n in range(8)]
    stats = ShadowStats(
        rule=Info("S", "Schaduw", "R90"),
        since=friday,
        open_now=12,
        new_in_window=3,
        escalated_now=0,
        per_team=(("T1", 12),),
        per_day=tuple(ShadowDay(d, 0 if d < friday else 12, 1) for d in week),
        overlap_cases=9,
        overlap=tuple(live),
    )
    (row,) = shadow_context(ShadowReport(week[-1], 7, [stats]), show_rule_ids=False)
    assert [d["day"] for d in row["per_day"]] == ["vr 06-03", "ma 09-03", "di 10-03"]
    assert row["overlap"] == [f"R0{n} Live {n} ({10 - n})" for n in range(5)]
    assert row["overlap_more"] == 3
    report = compose_rule_report(
        RuleReport(week[-1], []), show_rule_ids=False, shadow=ShadowReport(week[-1], 7, [stats])
    )
    assert "en 3 andere regels" in report.text and "en 3 andere regels" in report.html
    assert "R05 Live 5" not in report.text and "za 07-03" not in report.html


def test_a_rule_put_back_in_shadow_reports_from_that_night(sqlite_url: str) -> None:
    """After live -> shadow the section counts from the night it went back, not what it
    did while live."""
    from regiesignaal.notifications.compose.rule_report import RuleInfo as Info
    from regiesignaal.notifications.rule_report import shadow_report

    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    shadow, live = {"S": RuleInfo("high", shadow=True)}, {"S": RuleInfo("high")}
    days = [add_working_days(AS_OF, n) for n in range(4)]
    try:
        with engine.begin() as conn:
            reconcile(conn, _fired("Z-1"), {"Z-1", "Z-2"}, live, days[0], 1, baseline=True)
            reconcile(conn, _fired("Z-1", "Z-2"), {"Z-1", "Z-2"}, live, days[1], 2,
                      baseline=True)  # fmt: skip
            reconcile(conn, _fired("Z-1", "Z-2"), {"Z-1", "Z-2"}, shadow, days[2], 3,
                      baseline=True)  # fmt: skip
            reconcile(conn, _fired("Z-1", "Z-2"), {"Z-1", "Z-2"}, shadow, days[3], 4,
                      baseline=True)  # fmt: skip
            rep = shadow_report(conn, days[3], {"S": Info("S", "Schaduw", "R90")}, {}, days=7)
    finally:
        engine.dispose()
    (s,) = rep.rules
    assert s.since == days[2] and s.open_now == 2
    assert s.new_in_window == 0, "Z-2 opened while the rule was live"


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(40, 3, AS_OF, cases, staff)
    source = f"sqlite:///{tmp_path / 'src.sqlite'}"
    engine = sa.create_engine(source)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    rules = _rules_with_shadow(tmp_path)
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", source)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(rules))
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_rules_promote_list_and_check_on_the_command_line(env: Path) -> None:
    assert _cli("db", "upgrade").exit_code == 0
    staff = [json.loads(x) for x in (env / "staff.jsonl").read_text().splitlines()]
    owner = staff[0]["id"]
    listed = [json.loads(x) for x in _cli("rules", "list", "--format", "json").output.splitlines()]
    assert {r["id"]: r["mode"] for r in listed}[SHADOW] == "shadow"
    checked = _cli("rules", "check")
    assert checked.exit_code == 0 and f"In schaduw (mode: shadow; nergens gemaild): {SHADOW}" in (
        checked.output
    )
    night = _cli("run", "--as-of", AS_OF.isoformat(), "--no-mail")
    assert night.exit_code == 0, night.output
    assert f"{SHADOW} (schaduw: niet gemaild)" in night.output
    assert "vervallen (gegevens gewijzigd): 0" in " ".join(night.output.split())
    unknown = _cli("rules", "promote", "CONTACT-30X", "--by", owner, "--reason", "x")
    assert unknown.exit_code == 1 and "CONTACT-30D" in unknown.output
    assert "CONTACT-30X" not in unknown.output
    live = _cli("rules", "promote", "VG-FIRST", "--by", owner, "--reason", "x")
    assert live.exit_code == 1 and "al live" in live.output
    stranger = _cli("rules", "promote", SHADOW, "--by", "j.jansen", "--reason", "x")
    assert stranger.exit_code == 1 and "j.jansen" not in stranger.output
    assert "mode: shadow" in (env / "rules" / "contact-30d.yaml").read_text("utf-8")
    before = (RULES / "contact-30d.yaml").read_text("utf-8")
    done = _cli("rules", "promote", SHADOW, "--by", owner, "--reason", "proef geslaagd")
    assert done.exit_code == 0, done.output
    assert (env / "rules" / "contact-30d.yaml").read_text("utf-8") == before
    again = _cli("rules", "promote", SHADOW, "--by", owner, "--reason", "x")
    assert again.exit_code == 1


def test_every_event_kind_in_the_store_reads_in_dutch(db_url: str, tmp_path: Path) -> None:
    """signals show names each event the runs wrote in Dutch, a change of mode with from,
    to and who (a tester saw a bare 'mode_changed')."""
    from regiesignaal.jobs.cli.signals import EVENT_NL, describe_event

    migrate.upgrade(db_url)
    engine = sa.create_engine(db_url)
    shadow, live = {"S": RuleInfo("high", shadow=True)}, {"S": RuleInfo("high")}
    try:
        with engine.begin() as conn:
            reconcile(conn, _fired("Z-1"), {"Z-1"}, shadow, AS_OF, 1, baseline=True)
            assert history.note_promotion(conn, "S", "bo-1", "proef geslaagd")
            reconcile(conn, _fired("Z-1"), {"Z-1"}, live, add_working_days(AS_OF, 1), 2,
                      baseline=True)  # fmt: skip
            events = [dict(e) for e in conn.execute(sa.select(signal_events)).mappings()]
    finally:
        engine.dispose()
    promoted = [describe_event(e) for e in events if e["kind"] == "mode_changed"]
    assert promoted == [
        "regel van modus gewisseld (in schaduw -> live: vanaf nu gemaild, als bestaand; "
        f"door bo-1; escalatieklok vanaf {events[-1]['details']['clock_start']})"
    ]
    assert {"opened", "mode_changed", "covered", "uncovered"} <= EVENT_NL.keys()
