"""Input that must not stop a night: hostile keys, bad JSON lines, unknown choice values,
unusable addresses. Loader messages name the line and the field, never the value."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.addresses import AddressError, check_address, domain_allowed
from regiesignaal.engine.language.casefile import parse_case, shown_key
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Evaluator
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.load import MAX_DEPTH, load_cases, load_staff_file
from regiesignaal.engine.source.read import get_case

RULES = Path(__file__).resolve().parents[1] / "rules"
AS_OF = dt.date(2026, 3, 2)
HOSTILE = ['Z"1', "Z\\2", "Z\x013", "Z\n4", "Z'5", "Z\u20286"]


def case(ref: str, **extra: object) -> dict[str, object]:
    return {"case_ref": ref, "status": "open", "opened_on": "2026-01-05", **extra}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the rule engine: no case value reaches a session id ---------------------------


def test_hostile_case_refs_are_evaluated_like_any_other() -> None:
    """A case_ref with a quote, backslash or control character used to break
    durable-rules (error 309) for every case after it."""
    compiled = compile_rules(load_rule_dir(RULES), AS_OF)
    durable = Evaluator(compiled, "durable")
    python = Evaluator(compiled, "python")
    cases = [parse_case(case(ref)) for ref in [*HOSTILE, "Z-plain"]]
    skipped: dict[str, str] = {}
    hits = durable.hits(cases, skipped)
    assert skipped == {}
    assert {(h.case_ref, h.rule_id) for h in hits} == {
        (h.case_ref, h.rule_id) for h in python.hits(cases)
    }
    assert {h.case_ref for h in hits} >= set(HOSTILE)  # CONTACT-30D fires for each


def test_a_case_the_engine_cannot_evaluate_is_named_and_skipped() -> None:
    compiled = compile_rules(load_rule_dir(RULES), AS_OF)
    evaluator = Evaluator(compiled, "durable")
    broken = parse_case(case("Z-broken"))
    broken["opened_on"] = "not a date object"  # behind the parser's back
    skipped: dict[str, str] = {}
    hits = evaluator.hits([broken, parse_case(case("Z-ok"))], skipped)
    assert list(skipped) == ["Z-broken"] and "niet beoordelen" in skipped["Z-broken"]
    assert "not a date" not in skipped["Z-broken"]
    assert any(h.case_ref == "Z-ok" for h in hits)
    with pytest.raises(TypeError):  # without a place to report, it is raised
        evaluator.hits([broken])


def test_hostile_case_refs_in_the_source_do_not_stop_a_run(db_url: str, tmp_path: Path) -> None:
    """Written behind the loader's back (the source is someone else's database)."""
    import dataclasses

    from regiesignaal.engine.source.tables import case_values, cases, create_source_schema
    from regiesignaal.jobs.config import load_settings
    from regiesignaal.jobs.pipeline import RunOptions, run, upgrade_store

    source = sa.create_engine(db_url)
    create_source_schema(source)
    refs = [r for r in HOSTILE if "\x01" not in r or "postgresql" not in db_url] + ["Z-ok"]
    with source.begin() as conn:
        for ref in refs:
            conn.execute(cases.insert().values(case_values(parse_case(case(ref)))))
    source.dispose()
    settings = dataclasses.replace(
        load_settings(env={}),
        source_url=db_url,
        store_url=f"sqlite:///{tmp_path / 'store.sqlite'}",
        rules_dir=RULES,
        workers=1,
        mail_enabled=False,
    )
    upgrade_store(settings)
    summary = run(settings, RunOptions(AS_OF))
    assert summary.status == "succeeded" and summary.cases == len(refs)
    assert summary.signals_per_rule["CONTACT-30D"] == len(refs)


# --- the loader: every line on its own -----------------------------------------


def test_each_line_is_judged_on_its_own(db_url: str, tmp_path: Path) -> None:
    deep = "[" * 1000 + "]" * 1000
    nested = json.dumps(
        case("Z-deep", extra=json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)))
    )
    lines = [
        json.dumps(case("Z-1")),
        json.dumps(case("Z-2"))[:-1] + ', "x": "\\udcff"}',  # a lone surrogate escape
        deep,
        nested,
        json.dumps(case('Z"3')),
        json.dumps(case("Z-4", regievoerder="rv\n1")),
        json.dumps(case("Z-5")),
    ]
    engine = sa.create_engine(db_url)
    try:
        path = write_lines(tmp_path / "cases.jsonl", lines)
        report = load_cases(engine, path)
        assert (report.loaded, report.rejected) == (2, 5), report.problems
        text = "\n".join(report.problems)
        assert f"{path}:2: " in text and "surrogaat" in text
        assert f"{path}:3: te diep genest" in text and f"{path}:4: te diep genest" in text
        assert f"{path}:5: case_ref: bevat tekens die niet zijn toegestaan" in text
        assert f"{path}:6: zaak Z-4: regievoerder: bevat tekens" in text
        assert 'Z"3' not in text and "rv\n1" not in text
        assert get_case(engine, "Z-5") is not None
    finally:
        engine.dispose()


def test_a_bad_staff_line_never_stops_the_case_file(db_url: str, tmp_path: Path) -> None:
    staff = write_lines(
        tmp_path / "staff.jsonl",
        [
            json.dumps({"id": "rv-1", "name": "A", "role": "regievoerder", "team": "t1"})[:-1]
            + ', "email": "\\udcff@x"}',
            "[" * 1000,
            json.dumps({"id": "rv-2", "name": "B", "role": "regievoerder", "team": "t1"}),
        ],
    )
    cases = write_lines(tmp_path / "cases.jsonl", [json.dumps(case("Z-1"))])
    engine = sa.create_engine(db_url)
    try:
        s = load_staff_file(engine, staff)
        c = load_cases(engine, cases)
    finally:
        engine.dispose()
    assert (s.loaded, s.rejected) == (1, 2)
    assert (c.loaded, c.rejected) == (1, 0)


def test_unknown_choice_values_load_and_are_counted_per_field(db_url: str, tmp_path: Path) -> None:
    secret = "Geboren-1990-01-01"
    lines = [
        json.dumps(case("Z-1", contacts=[{"on": "2026-02-01", "channel": secret}])),
        json.dumps(
            case(
                "Z-2",
                contacts=[
                    {"on": "2026-02-01", "channel": "sms"},
                    {"on": "2026-02-02", "channel": "sms"},
                ],
            )
        ),
        json.dumps(case("Z-3", medical_checks=[{"on": "2026-02-01", "outcome": "nieuw"}])),
        json.dumps(case("Z-4", status="gepauzeerd")),  # the status stays strict
    ]
    engine = sa.create_engine(db_url)
    try:
        path = write_lines(tmp_path / "cases.jsonl", lines)
        report = load_cases(engine, path)
        loaded = get_case(engine, "Z-2")
    finally:
        engine.dispose()
    assert (report.loaded, report.rejected, report.warnings) == (3, 1, 2)
    text = "\n".join(report.problems)
    assert "veld contacts[].channel: 3 waarden buiten de keuzelijst" in text
    assert "veld medical_checks[].outcome: 1 waarde buiten de keuzelijst" in text
    assert f"{path}:4: zaak Z-4: status: onbekende waarde" in text
    assert secret not in text and "sms" not in text and "gepauzeerd" not in text
    assert loaded is not None and loaded["contacts"][0]["channel"] == "sms"
    # only rules comparing the field see it, as "another value"
    compiled = compile_rules(load_rule_dir(RULES), dt.date(2026, 2, 10))
    hits = Evaluator(compiled, "durable").hits([loaded])
    assert "CONTACT-30D" not in {h.rule_id for h in hits}  # the contact still counts


# --- addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "Jan Jansen <jan@dtv.example>",
        "a@dtv.example, b@dtv.example",
        "a@dtv.example;b@dtv.example",
        "a@dtv.example\r\nBcc: x@evil.example",
        "a@dtv.example\n",
        "geen-adres",
        '"jan"@dtv.example',
        "jän@dtv.example",
        "",
    ],
)
def test_unusable_addresses_are_refused_without_echo(bad: str) -> None:
    with pytest.raises(AddressError) as info:
        check_address(bad)
    assert bad.strip() == "" or bad.strip() not in str(info.value)


def test_good_addresses_and_the_domain_allow_list() -> None:
    assert check_address(" Jan.Jansen@DTV.example ") == "Jan.Jansen@dtv.example"
    assert domain_allowed("a@dtv.example", ())
    assert domain_allowed("a@dtv.example", ("dtv.example",))
    assert not domain_allowed("a@sub.dtv.example", ("dtv.example",))
    assert not domain_allowed("a@evil.example", ("dtv.example",))


def test_staff_addresses_are_validated_on_load(db_url: str, tmp_path: Path) -> None:
    def member(i: int, email: str) -> str:
        return json.dumps(
            {"id": f"rv-{i}", "name": "N", "role": "regievoerder", "team": "t", "email": email}
        )

    path = write_lines(
        tmp_path / "staff.jsonl",
        [
            member(1, "Jan Jansen <jan@dtv.example>"),
            member(2, "a@dtv.example, b@dtv.example"),
            member(3, "a@dtv.example\nBcc: x@evil.example"),
            member(4, "ok@dtv.example"),
        ],
    )
    engine = sa.create_engine(db_url)
    try:
        report = load_staff_file(engine, path)
        from regiesignaal.engine.source.read import load_staff

        staff = load_staff(engine)
    finally:
        engine.dispose()
    assert (report.loaded, report.rejected, report.warnings) == (4, 0, 3)
    text = "\n".join(report.problems)
    for line in (1, 2, 3):
        assert f"{path}:{line}: waarschuwing: medewerker rv-{line} email: geen bruikbaar" in text
    assert "Jan Jansen" not in text and "evil" not in text
    assert staff["rv-4"]["email"] == "ok@dtv.example"
    assert not staff["rv-1"].get("email")


def test_a_sender_with_a_line_break_is_refused_by_the_configuration(tmp_path: Path) -> None:
    from regiesignaal.jobs.config import ConfigError, load_settings

    config = tmp_path / "regiesignaal.toml"
    config.write_text('[smtp]\nsender = "Regie <x@dtv.example>"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert "regel 2" in str(info.value) and "Regie" not in str(info.value)
    with pytest.raises(ConfigError):
        load_settings(None, env={"REGIESIGNAAL_SMTP_SENDER": "x@dtv.example\nBcc: y@z.example"})
    config.write_text('[mail]\nallowed_domains = ["dtv.example"]\n', encoding="utf-8")
    assert load_settings(config, env={}).smtp.allowed_domains == ("dtv.example",)


# --- fuzzing the case loader ----------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_field_values = st.one_of(
    _json_values,
    st.sampled_from(["2026-01-05", "2026-13-45", "open", "closed", "\udcff", "Z\x00", 2**40]),
)
_cases = st.fixed_dictionaries(
    {"case_ref": st.one_of(st.text(max_size=70), st.integers()), "opened_on": _field_values},
    optional={
        "status": st.sampled_from(["open", "closed", "x"]),
        "regievoerder": _field_values,
        "contacts": st.lists(
            st.fixed_dictionaries({"on": _field_values}, optional={"channel": _field_values}),
            max_size=3,
        ),
        "person": st.one_of(
            _json_values, st.fixed_dictionaries({}, optional={"amv": _field_values})
        ),
        "extra": _json_values,
    },
)
_lines = st.lists(
    st.one_of(
        _cases.map(lambda c: json.dumps(c, ensure_ascii=True)),
        st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t),
    ),
    max_size=6,
)

_EVALUATOR: list[Evaluator] = []


def _evaluator() -> Evaluator:
    """One durable-rules evaluator for all examples (ruleset names cost memory)."""
    if not _EVALUATOR:
        _EVALUATOR.append(Evaluator(compile_rules(load_rule_dir(RULES), AS_OF), "durable"))
    return _EVALUATOR[0]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=_lines)
def test_fuzzed_case_files_load_or_name_the_line(tmp_path: Path, lines: list[str]) -> None:
    """Every line either loads or is rejected with a message naming its line; never a
    traceback, and the source stays readable afterwards."""
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    db = tmp_path / "fuzz.sqlite"
    db.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        report = load_cases(engine, path)
        non_blank = sum(1 for line in lines if line.strip())
        assert report.loaded + report.rejected == non_blank
        for problem in report.problems:
            assert problem.startswith(f"{path}:")
        from regiesignaal.engine.source.read import case_index, read_case_range

        index = case_index(engine, status=None)
        if index:
            read = read_case_range(engine, index[0][0], index[-1][0], None)
            assert len(read.cases) + len(read.unreadable) == len(index)
            skipped: dict[str, str] = {}
            _evaluator().hits(read.cases, skipped)  # the run's evaluation: never raises
    finally:
        engine.dispose()


@pytest.mark.postgres
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=_lines)
def test_fuzzed_case_files_on_postgres(pg_url: str, tmp_path: Path, lines: list[str]) -> None:
    """PostgreSQL is stricter than SQLite (lengths, NUL, encodings): still line by line."""
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    engine = sa.create_engine(pg_url)
    try:
        report = load_cases(engine, path)
    finally:
        engine.dispose()
    assert report.loaded + report.rejected == sum(1 for line in lines if line.strip())


def test_an_unknown_choice_value_too_long_for_its_column_is_refused(
    db_url: str, tmp_path: Path
) -> None:
    long_value = "x" * 70
    path = write_lines(
        tmp_path / "cases.jsonl",
        [
            json.dumps(case("Z-1", contacts=[{"on": "2026-02-01", "channel": long_value}])),
            json.dumps(case("Z-2")),
        ],
    )
    engine = sa.create_engine(db_url)
    try:
        report = load_cases(engine, path)
    finally:
        engine.dispose()
    assert (report.loaded, report.rejected) == (1, 1)
    assert f"{path}:1: zaak Z-1: een waarde buiten de keuzelijst is langer" in report.problems[0]
    assert long_value not in "\n".join(report.problems)


def test_address_lists_name_the_position_not_the_value() -> None:
    from regiesignaal.engine.language.addresses import check_addresses

    assert check_addresses(["a@dtv.example", "b@dtv.example"], ("dtv.example",)) == (
        "a@dtv.example",
        "b@dtv.example",
    )
    with pytest.raises(AddressError, match="adres 2: ") as info:
        check_addresses(["a@dtv.example", "Beheer <b@dtv.example>"])
    assert "Beheer" not in str(info.value)
    with pytest.raises(AddressError, match="adres 1: buiten"):
        check_addresses(["a@elders.example"], ("dtv.example",))


def test_an_engine_failing_on_most_cases_stops_the_run_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One case the engine cannot evaluate is that case's problem; most of them is the
    engine's (fault injected here): the run fails instead of keeping every signal as it was."""
    import dataclasses

    from regiesignaal.engine.language import durable_backend
    from regiesignaal.engine.source.tables import case_values, cases, create_source_schema
    from regiesignaal.jobs.config import load_settings
    from regiesignaal.jobs.pipeline import RunOptions, run, upgrade_store

    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    source = sa.create_engine(source_url)
    create_source_schema(source)
    with source.begin() as conn:
        for n in range(12):
            conn.execute(cases.insert().values(case_values(parse_case(case(f"Z-{n:02d}")))))
    source.dispose()
    settings = dataclasses.replace(
        load_settings(env={}),
        source_url=source_url,
        store_url=f"sqlite:///{tmp_path / 'store.sqlite'}",
        rules_dir=RULES,
        workers=1,
        mail_enabled=False,
    )
    upgrade_store(settings)

    def broken(self: object, fact: object) -> list[str]:
        raise durable_backend.DurableError("Could not delete state, error code: 309")

    monkeypatch.setattr(durable_backend.DurableEvaluator, "fired", broken)
    with pytest.raises(RuntimeError, match="12 van 12 zaken"):
        run(settings, RunOptions(AS_OF))
    store = sa.create_engine(settings.store_url)
    from regiesignaal.engine.store.tables import runs, signals

    with store.connect() as conn:
        assert conn.execute(sa.select(runs.c.status)).scalar_one() == "failed"
        assert conn.execute(sa.select(sa.func.count()).select_from(signals)).scalar_one() == 0
    store.dispose()


def test_a_run_reports_unknown_choice_values_in_the_source_per_field(tmp_path: Path) -> None:
    import dataclasses

    from regiesignaal.jobs.config import load_settings
    from regiesignaal.jobs.pipeline import RunOptions, run, upgrade_store

    source_url = f"sqlite:///{tmp_path / 'src.sqlite'}"
    path = write_lines(
        tmp_path / "cases.jsonl",
        [
            json.dumps(case("Z-1", contacts=[{"on": "2026-02-20", "channel": "Geheim-7"}])),
            json.dumps(case("Z-2", contacts=[{"on": "2026-02-20", "channel": "telefonisch"}])),
        ],
    )
    source = sa.create_engine(source_url)
    assert load_cases(source, path).loaded == 2
    source.dispose()
    settings = dataclasses.replace(
        load_settings(env={}),
        source_url=source_url,
        store_url=f"sqlite:///{tmp_path / 'store.sqlite'}",
        rules_dir=RULES,
        workers=1,
        mail_enabled=False,
    )
    upgrade_store(settings)
    summary = run(settings, RunOptions(AS_OF))
    assert summary.status == "succeeded" and summary.cases == 2
    assert any(p.startswith("veld contacts[].channel: 1 waarde buiten") for p in summary.problems)
    assert not any("Geheim" in p for p in summary.problems)
    # the unknown channel is another value: the contact still counts for CONTACT-30D
    assert summary.signals_per_rule["CONTACT-30D"] == 0


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u2066", "\ufeff", "\u2028"])
def test_invisible_and_direction_characters_in_keys_are_refused(tmp_path: Path, char: str) -> None:
    """U+202E would make 'Z-1\u202e2-Z' display reversed in every mail and log line."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'src.sqlite'}")
    try:
        path = write_lines(
            tmp_path / "cases.jsonl",
            [json.dumps(case(f"Z-1{char}9")), json.dumps(case("Z-2", regievoerder=f"rv{char}1"))],
        )
        report = load_cases(engine, path)
        assert (report.loaded, report.rejected) == (0, 2), report.problems
        text = "\n".join(report.problems)
        assert f"{path}:1: case_ref: bevat tekens die niet zijn toegestaan" in text
        assert f"{path}:2: zaak Z-2: regievoerder: bevat tekens" in text
        assert char not in text
    finally:
        engine.dispose()
    assert char not in shown_key(f"Z-1{char}9")
