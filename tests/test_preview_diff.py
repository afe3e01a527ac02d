"""`preview --diff` is a true before/after comparison (issue 18, item 1): the current and the
candidate rules evaluated on the same source as of the same date, apart from the store."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.preview import Diff

RULES = Path(__file__).resolve().parents[1] / "rules"
AS_OF = dt.date(2026, 3, 2)  # a Monday
NIGHT2 = dt.date(2026, 3, 3)


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def copy_rules(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(RULES, target)
    for p in target.glob("*.tests.yaml"):
        p.unlink()  # a changed threshold would fail its own tests; the diff ignores tests
    return target


def with_contact_days(rules: Path, days: int) -> Path:
    path = rules / "contact-30d.yaml"
    text = path.read_text()
    assert "{older_than: 30d}" in text
    path.write_text(text.replace("{older_than: 30d}", f"{{older_than: {days}d}}"))
    return rules


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(300, 5, AS_OF, cases, staff)
    source = f"sqlite:///{tmp_path / 'src.sqlite'}"
    engine = sa.create_engine(source)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", source)
    monkeypatch.setenv("REGIESIGNAAL_STORE_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(RULES))
    monkeypatch.delenv("REGIESIGNAAL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    cli("db", "upgrade")
    return tmp_path


def hits_of(rules: Path, day: dt.date) -> set[tuple[str, str]]:
    out = cli("preview", "--rules", str(rules), "--as-of", str(day), "--format", "json")
    return {(h["case_ref"], h["rule"]) for h in map(json.loads, out.output.splitlines())}


@pytest.fixture
def store_with_gaps(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two nights; the second with CONTACT-30D at 60 days, so that the signals of cases
    last contacted 30-60 days ago sit in their grace gap: open in the store, not firing."""
    cli("run", "--as-of", str(AS_OF), "--no-mail")
    current = with_contact_days(copy_rules(env, "huidig"), 60)
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(current))
    cli("run", "--as-of", str(NIGHT2), "--no-mail")
    store = sa.create_engine(f"sqlite:///{env / 'store.sqlite'}")
    with store.connect() as conn:
        in_gap = conn.execute(
            sa.text(
                "SELECT count(*) FROM signals WHERE closed_on IS NULL AND gap_since IS NOT NULL"
            )
        ).scalar_one()
    store.dispose()
    assert in_gap > 0, "the store must hold signals in a grace gap for this test to mean anything"
    return current


def test_unchanged_rules_give_nothing_without_as_of(store_with_gaps: Path) -> None:
    """Reported: "+92 openen, -199 sluiten" without --as-of (the date moved on) and
    "-192 sluiten" for signals in their grace gap; the diff now uses the store's last as-of
    date and does not compare with the store's signals at all."""
    out = cli("preview", "--diff", "--rules", str(store_with_gaps))
    assert "Totaal: +0 openen, -0 sluiten." in out.output
    assert f"per {NIGHT2}" in out.output, "the default date is the store's last as-of date"
    assert "Per gewijzigde regel" not in out.output


NOTHING = "Zonder --rules wordt niets vergeleken"


def test_without_rules_and_unchanged_it_says_nothing_is_compared(store_with_gaps: Path) -> None:
    out = cli("preview", "--diff")
    assert NOTHING in out.output and "dezelfde als die van de laatste run" in out.output
    assert "--rules KOPIE" in out.output, "says how to compare"
    assert "Totaal" not in out.output, "never '+0 / -0' as if a change did nothing"
    js = cli("preview", "--diff", "--format", "json")
    assert js.stdout == "" and NOTHING in js.stderr


def test_a_folder_edited_in_place_is_compared_with_the_last_runs_rules(
    store_with_gaps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a tester: after editing the configured folder in place, ``preview --diff``
    said "de regels ... zijn gewijzigd" and then "+0 openen, -0 sluiten": it compared the
    folder with itself. The store keeps the rule set the last run used: compare with that."""
    unedited = with_contact_days(copy_rules(tmp_path, "onbewerkt"), 60)
    path = store_with_gaps / "contact-30d.yaml"
    path.write_text(path.read_text().replace("{older_than: 60d}", "{older_than: 20d}"))
    out = cli("preview", "--diff").output
    assert "zijn gewijzigd sinds de laatste run" in out and "uit de opslag" in out
    assert NOTHING not in out
    assert "CONTACT-30D (gewijzigd): +" in out
    total = next(line for line in out.splitlines() if line.startswith("Totaal:"))
    assert total != "Totaal: +0 openen, -0 sluiten."
    # the same as comparing a copy of the last run's folder with the edited one
    monkeypatch.setenv("REGIESIGNAAL_RULES_DIR", str(unedited))
    same = cli("preview", "--diff", "--rules", str(store_with_gaps)).output
    assert total in same


def test_an_edited_folder_whose_last_rules_are_not_kept_says_so(
    store_with_gaps: Path, env: Path
) -> None:
    store = sa.create_engine(f"sqlite:///{env / 'store.sqlite'}")
    with store.begin() as conn:
        conn.execute(sa.text("DELETE FROM rule_sets"))
    store.dispose()
    path = store_with_gaps / "contact-30d.yaml"
    path.write_text(path.read_text().replace("{older_than: 60d}", "{older_than: 20d}"))
    out = cli("preview", "--diff").output
    assert NOTHING in out and "bewaart de regels van die run niet meer" in out
    assert "--rules KOPIE" in out and "Totaal" not in out


def test_unchanged_rules_give_nothing_with_as_of_and_a_copied_folder(
    store_with_gaps: Path, tmp_path: Path
) -> None:
    same = with_contact_days(copy_rules(tmp_path, "kopie"), 60)
    for args in (["--as-of", str(NIGHT2)], ["--as-of", str(AS_OF)], []):
        out = cli("preview", "--diff", "--rules", str(same), *args)
        assert "Totaal: +0 openen, -0 sluiten." in out.output, args
        js = cli("preview", "--diff", "--rules", str(same), "--format", "json", *args)
        assert js.output == "", args


def test_a_changed_threshold_opens_exactly_the_difference(env: Path, tmp_path: Path) -> None:
    cli("run", "--as-of", str(AS_OF), "--no-mail")
    candidate = with_contact_days(copy_rules(tmp_path, "kandidaat"), 20)
    (candidate / "wish-unexplored.yaml").unlink()
    before, after = hits_of(RULES, AS_OF), hits_of(candidate, AS_OF)
    assert after - before and before - after, "the change must open and close something"

    js = cli("preview", "--diff", "--rules", str(candidate), "--format", "json")
    lines = [json.loads(x) for x in js.output.splitlines()]
    opened = {(c["case_ref"], c["rule"]) for c in lines if c.get("change") == "open"}
    closed = {(c["case_ref"], c["rule"]) for c in lines if c.get("change") == "close"}
    assert opened == after - before and closed == before - after
    assert {r for _, r in opened} == {"CONTACT-30D"}
    assert {r for _, r in closed} == {"WISH-UNEXPLORED"}
    assert all(c["team"] for c in lines if "change" in c)
    assert [(o["overlap"], o["status"]) for o in lines if "overlap" in o] == [
        ("CONTACT-30D", "gewijzigd")
    ]

    out = cli("preview", "--diff", "--rules", str(candidate)).output
    assert f"Totaal: +{len(opened)} openen, -{len(closed)} sluiten." in out
    section = out.split("Per gewijzigde regel:", 1)[1]
    assert f"CONTACT-30D (gewijzigd): +{len(opened)} openen, -0 sluiten" in section
    assert f"WISH-UNEXPLORED (verwijderd): +0 openen, -{len(closed)} sluiten" in section
    first = sorted(opened)[0][0]
    assert f"bijvoorbeeld nieuw: {first}" in section
    teams = {c["team"] for c in lines if c.get("rule") == "CONTACT-30D"}
    for team in teams:
        assert f"  team {team}: +" in section
    assert "geen andere regel" in section, "the overlap of the changed rule"
    removed = section.split("WISH-UNEXPLORED (verwijderd)", 1)[1]
    assert "regiesignaal rules retire WISH-UNEXPLORED" in removed, "the next run refuses"


def _shadow_copy(rules: Path, rule_file: str, new_id: str, days: int) -> None:
    """A new rule in shadow: a copy of ``rule_file`` without its tests, at ``days``."""
    text = (rules / rule_file).read_text().split("\ntests:", 1)[0] + "\n"
    text = text.replace("id: CONTACT-30D", f"id: {new_id}").replace("mail_code: R04\n", "")
    text = text.replace("{older_than: 30d}", f"{{older_than: {days}d}}")
    text = text.replace("severity: medium\n", "severity: medium\nmode: shadow\n")
    (rules / f"{new_id.lower()}.yaml").write_text(text)


def test_overlap_of_a_live_rule_ignores_rules_in_shadow(env: Path, tmp_path: Path) -> None:
    """Found by a tester: "elke zaak van CONTACT-30D heeft al CONTACT-21D" while CONTACT-21D
    was in shadow and mailed nothing."""
    candidate = with_contact_days(copy_rules(tmp_path, "kandidaat"), 35)
    _shadow_copy(candidate, "contact-30d.yaml", "CONTACT-21D", 21)
    args = ("preview", "--diff", "--rules", str(candidate), "--as-of", str(AS_OF))
    lines = [json.loads(x) for x in cli(*args, "--format", "json").output.splitlines()]
    found = {o["overlap"]: o for o in lines if "overlap" in o}
    assert set(found) == {"CONTACT-30D", "CONTACT-21D"}
    assert "CONTACT-21D" not in found["CONTACT-30D"]["also"], "live against live only"
    assert found["CONTACT-21D"]["also"].get("CONTACT-30D"), "a shadow rule against live ones"
    out = cli(*args).output
    assert "heeft al CONTACT-21D" not in out and "ook door CONTACT-21D" not in out


def test_a_rule_put_in_shadow_closes_nothing(env: Path, tmp_path: Path) -> None:
    """Found by a tester: "-272 sluiten ... bijvoorbeeld gesloten" for a rule put in shadow,
    whose signals stay open in shadow."""
    candidate = copy_rules(tmp_path, "kandidaat")
    path = candidate / "contact-30d.yaml"
    path.write_text(
        path.read_text().replace("severity: medium\n", "severity: medium\nmode: shadow\n")
    )
    args = ("preview", "--diff", "--rules", str(candidate), "--as-of", str(AS_OF))
    lines = [json.loads(x) for x in cli(*args, "--format", "json").output.splitlines()]
    kinds = {c["change"] for c in lines if "change" in c}
    assert kinds == {"shadow"}, kinds
    n = len(lines) - sum("overlap" in c for c in lines)
    out = cli(*args).output
    assert "Totaal: +0 openen, -0 sluiten. Niet meer gemaild: " + str(n) in out
    assert f"niet meer gemaild: {n} (blijven open in schaduw)" in out
    assert "bijvoorbeeld gesloten" not in out and "bijvoorbeeld niet meer gemaild" in out


keys = st.dictionaries(
    st.tuples(st.sampled_from("ABCDEF"), st.sampled_from(["R1", "R2", "R3"])),
    st.one_of(st.none(), st.sampled_from(["t1", "t2"])),
    max_size=18,
)


@given(keys, keys)
def test_every_difference_is_counted_once_per_team(
    before: dict[tuple[str, str], str | None], after: dict[tuple[str, str], str | None]
) -> None:
    d = Diff(before, after)
    changes = d.changes()
    assert sum(len(c.opened) for c in changes) == len(set(after) - set(before))
    assert sum(len(c.closed) for c in changes) == len(set(before) - set(after))
    for c in changes:
        assert sum(o for o, _ in c.per_team.values()) == len(c.opened)
        assert sum(k for _, k in c.per_team.values()) == len(c.closed)
        assert c.after - c.before == len(c.opened) - len(c.closed)
    assert Diff(before, dict(before)).changes() == []


@pytest.mark.slow
def test_preview_in_worker_processes_gives_the_same_output(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From enough batches of open cases on, ``preview`` evaluates in the worker processes
    (issue 19): the same lines, in the same order, as in one process."""
    from regiesignaal.jobs import preview as preview_module

    args = ("preview", "--rules", str(RULES), "--as-of", str(AS_OF), "--format", "json")
    monkeypatch.setenv("REGIESIGNAAL_BATCH_SIZE", "40")
    monkeypatch.setenv("REGIESIGNAAL_WORKERS", "1")
    alone = cli(*args).output
    monkeypatch.setenv("REGIESIGNAAL_WORKERS", "2")
    monkeypatch.setattr(preview_module, "POOL_FROM_BATCHES", 2)
    started: list[int] = []
    real_start = preview_module.start_pool
    monkeypatch.setattr(
        preview_module,
        "start_pool",
        lambda workers, *a: started.append(workers) or real_start(workers, *a),
    )
    assert cli(*args).output == alone
    assert started == [2] and alone.count("\n") > 50
