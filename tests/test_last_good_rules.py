"""The last good rule set (issue 17): a broken rule folder no longer stops every list.

Two real nights over a real rule folder that breaks in between: the second runs with the
rule set the first one succeeded with (kept in the store by version), and the operators
and policy owners are told; ``[rules] on_broken = "refuse"`` and a store without an
earlier good set refuse the night as before.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from ops_support import AS_OF, RULES, make_settings, make_source, run_rows

from regiesignaal.engine.language.compiler import check_rule_dir
from regiesignaal.engine.store import rulesets
from regiesignaal.engine.store.tables import outbox, rule_sets
from regiesignaal.jobs.config import ConfigError, load_settings
from regiesignaal.jobs.ops.nightly import nightly
from regiesignaal.jobs.pipeline import RunOptions, RunRefused, run

OPERATOR = "beheer@dtv.example"
TUESDAY = AS_OF + dt.timedelta(days=1)


def _rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    return rules


def _break(rules: Path) -> None:
    (rules / "med-check.yaml").write_text("id: [kapot\n")


def _alerts(url: str) -> list[sa.Row[tuple[object, ...]]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(outbox).where(outbox.c.kind == "operator").order_by(outbox.c.id)
                )
            )
    finally:
        engine.dispose()


def _stored_versions(url: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(sa.select(rule_sets.c.version)).scalars())
    finally:
        engine.dispose()


def test_a_broken_rule_folder_runs_the_next_night_with_the_last_good_set(
    tmp_path: Path, db_url: str
) -> None:
    source_url, _, staff_file = make_source(tmp_path, cases=60)
    rules = _rules(tmp_path)
    settings = make_settings(source_url, db_url, rules_dir=rules, operators=(OPERATOR,))
    good_version = check_rule_dir(rules).version

    first = nightly(settings, trigger="manual", as_of=AS_OF)
    assert first.status == "succeeded"
    assert _stored_versions(db_url) == [good_version]

    _break(rules)
    broken_version = check_rule_dir(rules).version
    assert broken_version != good_version
    second = nightly(settings, trigger="manual", as_of=TUESDAY)
    assert (second.status, second.exit_code) == ("succeeded", 0), second.messages
    row = run_rows(db_url)[-1]
    assert row.id == second.run_id and row.ruleset_version == good_version
    assert row.counts["rules_fallback"] == 1  # type: ignore[index]
    assert any("laatste goede regelset" in e for e in row.errors)  # type: ignore[union-attr]
    assert row.counts["signals_per_rule"]["MED-CHECK"] >= 0  # type: ignore[index]

    # operators and policy owners told, once, with counts and commands only
    told = [a for a in _alerts(db_url) if "vorige regelset" in str(a.subject)]
    owners = {
        line.split('"email": "')[1].split('"')[0]
        for line in staff_file.read_text().splitlines()
        if '"role": "beleid"' in line
    }
    assert owners and {a.recipient_email for a in told} == {OPERATOR, *owners}
    for alert in told:
        assert alert.run_id == second.run_id
        body = str(alert.body_text)
        assert "1 fout(en)" in body and "regiesignaal rules check" in body
        assert "MED-CHECK" not in body and "med-check" not in body and "Z-" not in body

    # the folder mended (and changed): its own version is used and kept from then on
    (rules / "med-check.yaml").write_text((RULES / "med-check.yaml").read_text() + "\n# ok\n")
    mended_version = check_rule_dir(rules).version
    third = nightly(settings, trigger="manual", as_of=TUESDAY + dt.timedelta(days=1))
    assert third.status == "succeeded"
    assert run_rows(db_url)[-1].ruleset_version == mended_version
    assert _stored_versions(db_url) == sorted([good_version, mended_version])
    # and the newest stored set is now the mended one
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    good = rulesets.last_good(engine)
    engine.dispose()
    assert good is not None and good.version == mended_version


def test_on_broken_refuse_refuses_as_before(tmp_path: Path) -> None:
    source_url, _, _ = make_source(tmp_path, cases=60)
    rules = _rules(tmp_path)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, rules_dir=rules, operators=(OPERATOR,))
    assert nightly(settings, trigger="manual", as_of=AS_OF).status == "succeeded"
    _break(rules)
    refusing = dataclasses.replace(settings, rules_on_broken="refuse")
    result = nightly(refusing, trigger="manual", as_of=TUESDAY)
    assert (result.status, result.exit_code) == ("refused", 1)
    assert [str(a.subject) for a in _alerts(store_url) if "regels" in str(a.subject)] == [
        f"[regiesignaal] de regels bevatten fouten ({dt.datetime.now(settings.tz).date()})"
    ]


def test_without_an_earlier_good_set_the_run_is_refused(tmp_path: Path) -> None:
    source_url, _, _ = make_source(tmp_path, cases=60)
    rules = _rules(tmp_path)
    _break(rules)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, rules_dir=rules)
    with pytest.raises(RunRefused) as refused:
        run(settings, RunOptions(AS_OF, deliver=False))
    assert "geen eerdere goede regelset" in str(refused.value)
    assert refused.value.run_id is not None
    assert run_rows(store_url)[-1].status == "refused"
    assert _stored_versions(store_url) == []


def test_a_refused_or_failed_run_does_not_make_a_set_good(tmp_path: Path) -> None:
    source_url, _, _ = make_source(tmp_path, cases=60)
    rules = _rules(tmp_path)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, rules_dir=rules)
    # a future date is refused by a guard after the rules checked: nothing is kept
    with pytest.raises(RunRefused):
        run(settings, RunOptions(dt.date.today() + dt.timedelta(days=30), deliver=False))
    assert _stored_versions(store_url) == []


def test_a_damaged_stored_set_is_never_written_outside_its_folder(tmp_path: Path) -> None:
    source_url, _, _ = make_source(tmp_path, cases=60)
    rules = _rules(tmp_path)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, rules_dir=rules)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            rule_sets.insert().values(
                version="abc", files={"../../ontsnapt.yaml": "x: 1\n"},
                checked_at=dt.datetime.now(dt.UTC),
            )
        )  # fmt: skip
    engine.dispose()
    _break(rules)
    with pytest.raises(RunRefused):
        run(settings, RunOptions(AS_OF, deliver=False))
    assert not list(tmp_path.rglob("ontsnapt.yaml"))
    assert not (Path("/tmp") / "ontsnapt.yaml").exists()


def test_remember_keeps_the_newest_versions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    make_settings("sqlite://", url)
    engine = sa.create_engine(url)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    try:
        for i in range(rulesets.KEEP + 5):
            assert rulesets.remember(
                engine, f"v{i:02d}", {"a.yaml": str(i)}, start + dt.timedelta(hours=i)
            )
        assert not rulesets.remember(engine, "v10", {"a.yaml": "10"}, start + dt.timedelta(days=9))
        good = rulesets.last_good(engine)
        assert good is not None and good.version == "v10" and good.files == {"a.yaml": "10"}
    finally:
        engine.dispose()
    kept = _stored_versions(url)
    assert len(kept) == rulesets.KEEP and "v04" not in kept and "v05" in kept


def test_a_stored_set_comes_back_with_its_own_version(tmp_path: Path) -> None:
    files = rulesets.read_files(RULES)
    assert files and all(not name.startswith("/") for name in files)
    copy = rulesets.write_files(files, tmp_path / "copy")
    assert check_rule_dir(copy).version == check_rule_dir(RULES).version


def test_on_broken_setting(tmp_path: Path) -> None:
    path = tmp_path / "regiesignaal.toml"
    assert load_settings(env={}).rules_on_broken == "last_good"
    path.write_text('[rules]\non_broken = "refuse"\n')
    assert load_settings(path, env={}).rules_on_broken == "refuse"
    path.write_text('[rules]\non_broken = "ignore"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "last_good" in str(caught.value) and "rules.on_broken" in str(caught.value)


@pytest.mark.slow
def test_the_last_good_set_reaches_the_worker_processes(tmp_path: Path) -> None:
    source_url, _, _ = make_source(tmp_path, cases=80)
    rules = _rules(tmp_path)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, rules_dir=rules, workers=2)
    first = run(settings, RunOptions(AS_OF, deliver=False))
    _break(rules)
    second = run(settings, RunOptions(TUESDAY, deliver=False))
    assert second.status == "succeeded" and second.rules_fallback == 1
    assert second.ruleset_version == first.ruleset_version
    assert second.signals_per_rule == first.signals_per_rule or second.signals_per_rule.keys() == (
        first.signals_per_rule.keys()
    )
    assert not [p for p in Path(tempfile.gettempdir()).glob("rs-*") if (p / "regels").exists()]
