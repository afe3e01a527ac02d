"""The JSONL loader and the ``fixtures`` command line, on SQLite and PostgreSQL.

Round trip: generate -> load -> iter_case_batches gives exactly parse_case of the file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.casefile import parse_case, parse_staff, to_json
from regiesignaal.engine.source.load import LoadReport, load_cases, load_staff_file
from regiesignaal.engine.source.read import count_cases, get_case, iter_case_batches, load_staff
from regiesignaal.engine.source.tables import CHILD_TABLES
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.cli.fixtures import fixtures_group

AS_OF = dt.date(2026, 3, 2)
PROBLEM = re.compile(r"^(?P<file>.+):(?P<line>\d+): (?P<message>.+)$")


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("data")
    out, staff_out = d / "cases.jsonl", d / "staff.jsonl"
    generate(300, seed=3, as_of=AS_OF, out=out, staff_out=staff_out)
    return out, staff_out


def _parsed_file(path: Path) -> list[dict[str, Any]]:
    return [parse_case(json.loads(line)) for line in path.read_text("utf-8").splitlines()]


def _write(path: Path, lines: list[Any]) -> Path:
    """Write lines: dicts as JSON, strings as they are."""
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def _case(ref: str, **extra: Any) -> dict[str, Any]:
    return {"case_ref": ref, "status": "open", "opened_on": "2026-01-10", **extra}


def _child_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            c.group: conn.execute(sa.select(sa.func.count()).select_from(c.table)).scalar_one()
            for c in CHILD_TABLES
        }


def _all_cases(engine: sa.Engine, status: str | None = None) -> list[dict[str, Any]]:
    return [c for b in iter_case_batches(engine, batch_size=37, status=status) for c in b]


# --- round trip ---------------------------------------------------------------------


def test_generate_load_extract_round_trip(engine: sa.Engine, generated: tuple[Path, Path]) -> None:
    out, staff_out = generated
    staff_report = load_staff_file(engine, staff_out)
    report = load_cases(engine, out)
    assert (report.loaded, report.rejected, report.problems) == (300, 0, [])
    assert staff_report.rejected == 0 and staff_report.problems == []

    expected = {c["case_ref"]: c for c in _parsed_file(out)}
    open_refs = sorted(r for r, c in expected.items() if c["status"] == "open")
    batches = list(iter_case_batches(engine, batch_size=37))
    refs = [c["case_ref"] for b in batches for c in b]
    assert refs == open_refs  # every open case exactly once, in order
    assert all(len(b) <= 37 for b in batches)
    for case in (c for b in batches for c in b):
        assert to_json(case) == to_json(expected[case["case_ref"]])
    closed = next(r for r, c in expected.items() if c["status"] == "closed")
    assert get_case(engine, closed) == expected[closed]
    assert count_cases(engine) == len(open_refs)
    assert count_cases(engine, status=None) == 300

    staff_expected = {
        m["id"]: m for m in map(parse_staff, map(json.loads, staff_out.read_text().splitlines()))
    }
    assert load_staff(engine) == staff_expected


def test_loading_twice_leaves_the_same_data(
    engine: sa.Engine, generated: tuple[Path, Path]
) -> None:
    out, _ = generated
    load_cases(engine, out)
    first = _all_cases(engine)
    counts = _child_counts(engine)
    again = load_cases(engine, out)
    assert again.loaded == 300 and again.rejected == 0
    assert _all_cases(engine) == first
    assert _child_counts(engine) == counts


def test_reload_replaces_a_case_and_its_child_rows(engine: sa.Engine, tmp_path: Path) -> None:
    iv = {"on": "2026-01-12", "kind": "vertrekgesprek"}
    first = _write(
        tmp_path / "a.jsonl",
        [
            _case("Z-1", interviews=[iv, iv, iv], contacts=[{"on": "2026-01-11"}]),
            _case("Z-2", interviews=[iv]),
        ],
    )
    load_cases(engine, first)
    second = _write(
        tmp_path / "b.jsonl",
        [_case("Z-1", status="closed", interviews=[{"on": "2026-02-01", "kind": "intake"}])],
    )
    report = load_cases(engine, second)
    assert report.loaded == 1
    z1 = get_case(engine, "Z-1")
    assert z1 is not None
    assert z1["status"] == "closed"
    assert z1["interviews"] == [{"on": dt.date(2026, 2, 1), "kind": "intake", "checked": {}}]
    assert z1["contacts"] == []  # no leftovers of the old version
    z2 = get_case(engine, "Z-2")
    assert z2 is not None and len(z2["interviews"]) == 1  # untouched
    assert _child_counts(engine)["interviews"] == 2


def test_no_replace_rejects_cases_already_loaded(engine: sa.Engine, tmp_path: Path) -> None:
    load_cases(engine, _write(tmp_path / "a.jsonl", [_case("Z-1", source="IND")]))
    path = _write(tmp_path / "b.jsonl", [_case("Z-1", source="KMar"), _case("Z-3")])
    report = load_cases(engine, path, replace=False)
    assert (report.loaded, report.rejected) == (1, 1)
    assert report.problems[0].startswith(f"{path}:1: zaak Z-1 staat al in de database")
    z1 = get_case(engine, "Z-1")
    assert z1 is not None and z1["source"] == "IND"
    assert get_case(engine, "Z-3") is not None


def test_extra_fields_and_any_text_survive_the_fast_path(engine: sa.Engine, tmp_path: Path) -> None:
    raw = _case(
        "Z-é",
        note={"a": [1, 2, None], "b": "x"},
        person={"language": "ti\u00e8 'quoted' \"double\" \\ %s ;"},
        explanations=[{"rule": "MED-CHECK", "reason": "a\tb\nc", "until": "2026-04-01"}],
    )
    load_cases(engine, _write(tmp_path / "x.jsonl", [raw]))
    assert get_case(engine, "Z-é") == parse_case(raw)


# --- bad input ----------------------------------------------------------------------


def test_bad_lines_are_reported_and_the_rest_is_loaded(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps(_case("Z-1")),  # 1 ok
        '{"case_ref": "Z-2", "status": "open", ',  # 2 invalid JSON
        json.dumps(_case("Z-3", opened_on="03-01-2026")),  # 3 bad date
        "",  # 4 blank: skipped silently
        json.dumps(_case("Z-1")),  # 5 duplicate of line 1
        "[1, 2]",  # 6 not an object
        json.dumps(_case("Z-6", status="gesloten")),  # 7 unknown enum value
        json.dumps(_case("Z" * 65)),  # 8 case_ref too long
        json.dumps({"status": "open", "opened_on": "2026-01-01"}),  # 9 no case_ref
        json.dumps(_case("Z-9", interviews=[{"kind": "intake"}])),  # 10 interview without date
        json.dumps(_case("Z-10")),  # 11 ok
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"case_ref": "\xff"}\n')  # 12
    report = load_cases(engine, path)
    assert (report.loaded, report.rejected) == (2, 9)
    by_line = {}
    for problem in report.problems:
        m = PROBLEM.match(problem)
        assert m, problem
        assert m["file"] == str(path)
        by_line[int(m["line"])] = m["message"]
    assert sorted(by_line) == [2, 3, 5, 6, 7, 8, 9, 10, 12]
    assert "geen geldige JSON" in by_line[2]
    assert "opened_on" in by_line[3] and "JJJJ-MM-DD" in by_line[3]
    assert "regel 1" in by_line[5]
    assert "JSON-object" in by_line[6]
    assert "status" in by_line[7] and "open, closed" in by_line[7]
    assert "64" in by_line[8]
    assert "case_ref" in by_line[9]
    assert "interviews[0].on" in by_line[10]
    assert "UTF-8" in by_line[12]
    assert {c["case_ref"] for c in _all_cases(engine)} == {"Z-1", "Z-10"}
    assert str(report).startswith("2 geladen, 9 afgewezen")
    assert len(report.problems) == 9  # one problem per bad line, none for the blank line


def test_values_the_database_cannot_hold_are_rejected(engine: sa.Engine, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "big.jsonl",
        [
            _case("Z-1", person={"birth_year": 2**40}),
            _case("Z-2", person={"language": "a\u0000b"}),
            _case("Z-3", person={"birth_year": 2**31 - 1, "household_minors": -(2**31)}),
        ],
    )
    report = load_cases(engine, path)
    assert (report.loaded, report.rejected) == (1, 2)
    assert report.problems[0] == (
        f"{path}:1: zaak Z-1: person.birth_year: getal is te groot (controleer de waarde)"
    )
    assert report.problems[1].startswith(f"{path}:2: bevat een NUL-teken")
    z3 = get_case(engine, "Z-3")
    assert z3 is not None and z3["person"]["birth_year"] == 2**31 - 1


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(
        st.one_of(
            st.builds(
                lambda n, s: json.dumps(_case(f"P-{n}", status=s)),
                st.integers(0, 30),
                st.sampled_from(["open", "closed", "??"]),
            ),
            st.text(st.characters(codec="utf-8", exclude_characters="\n")),
        ),
        max_size=25,
    )
)
def test_any_file_is_counted_line_by_line(
    engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    path = tmp_path_factory.mktemp("prop") / "f.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = load_cases(engine, path)
    non_blank = sum(1 for line in lines if line.strip())
    assert report.loaded + report.rejected == non_blank
    assert len(report.problems) == report.rejected
    lines_reported = [int(PROBLEM.match(p)["line"]) for p in report.problems]  # type: ignore[index]
    assert len(set(lines_reported)) == len(lines_reported)


# --- staff --------------------------------------------------------------------------


def test_staff_problems_and_warnings(engine: sa.Engine, tmp_path: Path) -> None:
    path = _write(
        tmp_path / "staff.jsonl",
        [
            {
                "id": "rv-1",
                "name": "A",
                "email": "rv-1@x.example",
                "role": "regievoerder",
                "team": "t1",
            },
            {"id": "rv-2", "name": "B", "role": "regievoerder", "team": "t1"},  # no email
            {"id": "rv-3", "name": "C", "email": "c@x", "role": "directeur", "team": "t1"},
            {"id": "rv-1", "name": "D", "email": "d@x", "role": "beleid"},  # duplicate
            {"id": "tl-1", "name": "E", "email": "tl-1@x.example", "role": "teamleider"},  # no team
            "not json",
        ],
    )
    report = load_staff_file(engine, path)
    assert (report.loaded, report.rejected, report.warnings) == (3, 3, 2)
    text = "\n".join(report.problems)
    assert f"{path}:2: waarschuwing: medewerker rv-2 heeft geen e-mailadres" in text
    assert f"{path}:3: medewerker rv-3: role: onbekende waarde (tekst van 9 tekens)" in text
    assert "directeur" not in text  # never echoed
    assert "kies uit regievoerder, teamleider, beleid" in text
    assert f"{path}:4: medewerker rv-1 staat al op regel 1" in text
    assert f"{path}:5: waarschuwing: medewerker tl-1 (teamleider) heeft geen team" in text
    assert f"{path}:6: geen geldige JSON" in text
    loaded = load_staff(engine)
    assert set(loaded) == {"rv-1", "rv-2", "tl-1"}
    assert "email" not in loaded["rv-2"]
    assert loaded["rv-1"]["name"] == "A"  # the first line wins, the duplicate is rejected


def test_staff_reload_replaces(engine: sa.Engine, tmp_path: Path) -> None:
    member = {
        "id": "rv-1",
        "name": "A",
        "email": "a@x.example",
        "role": "regievoerder",
        "team": "t1",
    }
    load_staff_file(engine, _write(tmp_path / "a.jsonl", [member]))
    moved = {**member, "team": "t2"}
    report = load_staff_file(engine, _write(tmp_path / "b.jsonl", [moved]))
    assert report.loaded == 1 and report.problems == []
    assert load_staff(engine) == {"rv-1": moved}


# --- command line -------------------------------------------------------------------


def test_cli_generate_writes_both_files(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "demo.jsonl"
    result = CliRunner().invoke(
        fixtures_group,
        ["generate", "--cases", "120", "--seed", "5", "--out", str(out), "--as-of", "2026-03-02"],
    )
    assert result.exit_code == 0, result.output
    staff_file = tmp_path / "sub" / "demo.staff.jsonl"
    assert len(out.read_text().splitlines()) == 120
    assert staff_file.exists() and staff_file.stat().st_size > 0
    assert "120 zaken" in result.output


def test_cli_generate_rejects_a_bad_date(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        fixtures_group,
        ["generate", "--cases", "1", "--seed", "1", "--out", str(tmp_path / "x.jsonl"),
         "--as-of", "2-3-2026"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "JJJJ-MM-DD" in result.output


def test_cli_load_reports_the_bad_line_and_loads_the_rest(tmp_path: Path) -> None:
    cases_file = _write(
        tmp_path / "cases.jsonl",
        [_case("Z-1"), _case("Z-2"), '{"case_ref": "Z-3", oops}', _case("Z-4")],
    )
    staff_file = _write(
        tmp_path / "staff.jsonl",
        [{"id": "rv-1", "name": "A", "email": "a@x.example", "role": "regievoerder", "team": "t"}],
    )
    db = tmp_path / "nested" / "dir" / "source.sqlite"  # parent folders are created
    url = f"sqlite:///{db}"
    result = CliRunner().invoke(
        fixtures_group,
        ["load", str(cases_file), "--staff", str(staff_file), "--source-url", url],
    )
    assert result.exit_code == 1
    assert f"{cases_file}:3: geen geldige JSON" in result.output
    assert "3 geladen, 1 afgewezen" in result.output
    engine = sa.create_engine(url)
    try:
        assert [c["case_ref"] for c in _all_cases(engine)] == ["Z-1", "Z-2", "Z-4"]
        assert set(load_staff(engine)) == {"rv-1"}
    finally:
        engine.dispose()


def test_cli_load_clean_file_exits_zero_and_uses_the_env_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'env.sqlite'}"
    monkeypatch.setenv("REGIESIGNAAL_SOURCE_URL", url)
    path = _write(tmp_path / "c.jsonl", [_case("Z-1")])
    result = CliRunner().invoke(fixtures_group, ["load", str(path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.sqlite").exists()


def test_cli_shows_at_most_50_problems(tmp_path: Path) -> None:
    path = _write(tmp_path / "junk.jsonl", [f"junk {i}" for i in range(70)])
    url = f"sqlite:///{tmp_path / 'j.sqlite'}"
    result = CliRunner().invoke(fixtures_group, ["load", str(path), "--source-url", url])
    assert result.exit_code == 1
    assert result.output.count("geen geldige JSON") == 50
    assert "... en 20 meer" in result.output


def test_cli_load_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        fixtures_group,
        ["load", str(tmp_path / "nope.jsonl"), "--source-url", f"sqlite:///{tmp_path / 'n.db'}"],
    )
    assert result.exit_code == 1
    assert "bestaat niet" in result.output


def test_load_report_summary() -> None:
    report = LoadReport(loaded=3, rejected=1, warnings=1, problems=["f:1: x", "f:2: y"])
    assert report.summary() == "3 geladen, 1 afgewezen, 1 waarschuwing"
    assert str(report).splitlines() == [
        "3 geladen, 1 afgewezen, 1 waarschuwing",
        "f:1: x",
        "f:2: y",
    ]
