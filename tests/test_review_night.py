"""Review fixes: nightly exit codes, re-running a night with a drop folder, run ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from ops_support import AS_OF, make_settings, make_source, run_rows

from regiesignaal.engine.store.tables import outbox
from regiesignaal.jobs.mail_status import mail_needs_look
from regiesignaal.jobs.ops import intake
from regiesignaal.jobs.ops.nightly import nightly
from regiesignaal.notifications.delivery.smtp import DeliveryReport

OPERATOR = "beheer@dtv.example"


def _alerts(url: str) -> list[sa.Row[tuple[object, ...]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(outbox).where(outbox.c.kind == "operator")))
    finally:
        engine.dispose()


def _export(drop: Path, name: str, case_file: Path, staff_file: Path) -> Path:
    folder = drop / name
    folder.mkdir(parents=True)
    shutil.copy(case_file, folder / "cases.jsonl")
    shutil.copy(staff_file, folder / "staff.jsonl")
    intake.write_manifest(folder)
    return folder


def test_nightly_exits_3_when_no_mail_could_be_tried(tmp_path: Path) -> None:
    source_url, _, _ = make_source(tmp_path, cases=60)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    # mail on, nothing listens on port 1: every message stays in the queue
    settings = make_settings(source_url, store_url, mail_enabled=True)
    result = nightly(settings, trigger="manual", as_of=AS_OF)
    assert result.status == "succeeded"
    assert result.exit_code == 3, result.messages


def test_one_definition_of_mail_needing_a_look() -> None:
    assert not mail_needs_look(None)
    assert not mail_needs_look(DeliveryReport())
    assert mail_needs_look(DeliveryReport(untried=2))
    assert mail_needs_look(DeliveryReport(uncertain=1))
    assert mail_needs_look(None, ["3 berichten blijven hangen in verzending"])
    assert mail_needs_look(None, (), {"pending": 1})
    assert not mail_needs_look(DeliveryReport(sent=5), (), {"sent": 5})


def test_a_refused_night_is_rerun_with_the_export_it_accepted(tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    _, case_file, staff_file = make_source(gen, cases=80)
    drop = tmp_path / "drop"
    source_url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    rules = tmp_path / "rules"
    shutil.copytree(make_settings(source_url, "sqlite://").rules_dir, rules)
    good = (rules / "med-check.yaml").read_text()
    (rules / "med-check.yaml").write_text("id: [kapot\n")
    settings = make_settings(
        source_url, store_url, drop_dir=drop, rules_dir=rules, operators=(OPERATOR,)
    )
    _export(drop, "2026-03-02T0300", case_file, staff_file)

    first = nightly(settings, trigger="manual", as_of=AS_OF)
    assert (first.status, first.exit_code) == ("refused", 1)
    assert (drop / "archive" / "2026-03-02T0300").is_dir(), "the export was taken"
    # the result names the run the history shows, and so does the alert
    last = run_rows(store_url)[-1]
    assert last.status == "refused" and first.run_id == last.id
    (alert,) = _alerts(store_url)
    assert alert.run_id == last.id and "regels" in str(alert.subject)

    (rules / "med-check.yaml").write_text(good)
    second = nightly(settings, trigger="scheduler", as_of=AS_OF)
    assert (second.status, second.exit_code) == ("succeeded", 0), second.messages
    assert len(_alerts(store_url)) == 1, "no new alert for the re-run"

    for trigger in ("manual", "scheduler"):
        again = nightly(settings, trigger=trigger, as_of=AS_OF)
        assert (again.status, again.exit_code) == ("skipped", 0), again.messages
        assert again.run_id == run_rows(store_url)[-1].id
    assert len(_alerts(store_url)) == 1

    # the next night without a new export: the source would be stale -> refused
    stale = nightly(settings, trigger="manual", as_of=AS_OF.replace(day=3))
    assert (stale.status, stale.exit_code) == ("refused", 1)
    assert any("levering" in str(a.subject) for a in _alerts(store_url))
