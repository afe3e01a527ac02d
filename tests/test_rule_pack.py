"""The default rule pack (DESIGN section 8): every test in rules/ passes on both evaluators."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.casefile import parse_case
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Backend, Evaluator
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.model import MAIL_FORBIDDEN, Rule, RuleDir, RuleTest
from regiesignaal.engine.language.ruletests import (
    TestResult,
    explain_test,
    format_result,
    format_summary,
    run_rule_tests,
)

RULES = Path(__file__).resolve().parent.parent / "rules"

DESIGN_IDS = {
    "VG-FIRST", "VG-MIN3", "CONTACT-30D", "BO-UNTESTED", "MED-CHECK", "MED-FOLLOWUP",
    "MED-CONDITIONS", "DEPART-MED", "ART64-END", "WISH-UNEXPLORED", "STRATEGY-STALE",
    "PLAN-INCOMPLETE", "AMV-RECEPTION", "SPECIALIST", "TERM-ENDING", "VBL-10W",
    "DETENTION-PACE", "REMOVABILITY", "LKO-CHALLENGE", "INTERPRETER",
}  # fmt: skip
# Rules added to the pack beyond DESIGN section 8 (issue 10).
PACK_IDS = DESIGN_IDS | {"DEPART-ART64", "CONTACT-14D"}

# Words that must never reach an email: the checker's own list (rules check enforces it on
# mail_title and expected_action); the tests below check the shipped rules against it.
FORBIDDEN_IN_MAIL = MAIL_FORBIDDEN


@pytest.fixture(scope="module")
def ruledir() -> RuleDir:
    rd = load_rule_dir(RULES)
    assert rd.problems == [], "\n".join(str(p) for p in rd.problems)
    return rd


def _all_tests() -> list[tuple[Rule, RuleTest]]:
    rd = load_rule_dir(RULES)
    return [(rule, test) for rule in rd.rules for test in rule.tests]


ALL_TESTS = _all_tests()


@pytest.fixture(scope="module", params=["durable", "python"])
def results(
    request: pytest.FixtureRequest, ruledir: RuleDir
) -> dict[tuple[str, str, int], TestResult]:
    """All rule tests, run once per backend by the runner under test."""
    backend: Backend = request.param
    return {(r.rule_id, r.path, r.line): r for r in run_rule_tests(ruledir, backend=backend)}


@pytest.mark.parametrize(
    ("rule", "test"),
    ALL_TESTS,
    ids=[f"{rule.id}:{test.line}:{test.name}" for rule, test in ALL_TESTS],
)
def test_rule_test_passes(
    rule: Rule, test: RuleTest, results: dict[tuple[str, str, int], TestResult]
) -> None:
    result = results[(rule.id, test.path, test.line)]
    assert result.expected is test.expect_fires
    assert result.passed, format_result(result)


@pytest.mark.parametrize("backend", ["durable", "python"])
def test_runner_agrees_with_a_direct_evaluation(ruledir: RuleDir, backend: Backend) -> None:
    """The runner's 'got' is what an Evaluator on the whole rule set says for that rule."""
    for rule, test in ALL_TESTS[::7]:
        compiled = compile_rules(ruledir, test.as_of)
        fired = Evaluator(compiled, "python").fired(test.case)
        [result] = [
            r
            for r in run_rule_tests(ruledir, backend=backend, only={rule.id})
            if r.line == test.line and r.path == test.path
        ]
        assert result.got is (rule.id in fired), (rule.id, test.name)


def test_all_design_rules_are_present(ruledir: RuleDir) -> None:
    ids = {r.id for r in ruledir.rules}
    assert ids >= DESIGN_IDS, f"ontbreekt: {sorted(DESIGN_IDS - ids)}"
    assert len(DESIGN_IDS) == 20


def test_every_rule_has_tests_that_fire_and_that_do_not(ruledir: RuleDir) -> None:
    for rule in ruledir.rules:
        outcomes = {t.expect_fires for t in rule.tests}
        assert outcomes == {True, False}, f"{rule.id}: tests die afgaan en niet afgaan nodig"
        assert len(rule.tests) >= 3, f"{rule.id}: te weinig tests"


def test_every_rule_is_documented_for_policy_owners(ruledir: RuleDir) -> None:
    for rule in ruledir.rules:
        assert rule.description.strip(), rule.id
        assert re.search(r"\b[FR][1-4]\b", rule.description), (
            f"{rule.id}: de beschrijving noemt geen bevinding of aanbeveling (F1-F4, R1-R4)"
        )
        assert rule.expected_action.strip(), rule.id
        assert rule.escalate_after is not None, rule.id
        assert Path(rule.path).name == f"{rule.id.lower()}.yaml"


def test_mail_texts_hold_no_personal_or_medical_detail(ruledir: RuleDir) -> None:
    from regiesignaal.engine.language.mailtext import possible_names, sensitive_words, word_lists

    lists = word_lists(ruledir.root)
    assert set(FORBIDDEN_IN_MAIL) <= set(lists.forbidden)
    for rule in ruledir.rules:
        for text in (rule.mail_title, rule.expected_action, rule.mail_code):
            assert sensitive_words(text, lists.forbidden) == [], rule.id
            assert possible_names(text, lists.allowed_capitalised) == [], rule.id


def test_every_rule_has_its_own_neutral_mail_code(ruledir: RuleDir) -> None:
    codes = [r.mail_code for r in ruledir.rules]
    assert all(codes) and len(set(codes)) == len(codes)
    assert not {r.id for r in ruledir.rules} & set(codes)


def test_mail_titles_are_short_and_distinct(ruledir: RuleDir) -> None:
    titles = [r.mail_title for r in ruledir.rules]
    assert len(set(titles)) == len(titles)
    assert all(len(t) <= 60 for t in titles), [t for t in titles if len(t) > 60]


def test_mail_titles_name_no_norm_and_hold_in_the_overdue_state(ruledir: RuleDir) -> None:
    """A number of days in a title gives the norm away (14 days of contact is the norm of
    a restricted-freedom location or detention, next to 30 elsewhere); a rule with an
    overdue state fires after its deadline too, so its texts may not say the deadline is
    still ahead."""
    for rule in ruledir.rules:
        assert not re.search(r"\d", rule.mail_title), rule.id
        if rule.overdue is not None:
            for text in (rule.mail_title, rule.expected_action):
                assert not re.search(r"binnenkort|eindigt|dreigt|v[oó]{1,2}r het einde", text), (
                    rule.id
                )
    assert sum(rule.overdue is not None for rule in ruledir.rules) >= 3


def test_forbidden_word_check_can_fail() -> None:
    """The scan above is not vacuous: a title with medical detail is caught."""
    title = " Diagnose psychische klachten niet vastgelegd ".lower()
    assert any(word in title for word in FORBIDDEN_IN_MAIL)


def test_a_wrong_expectation_fails_with_a_dutch_trace(tmp_path: Path) -> None:
    for path in RULES.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "vg-first.tests.yaml").write_text(
        "rule: VG-FIRST\n"
        "tests:\n"
        "  - name: verkeerd verwacht\n"
        "    as_of: 2026-03-16\n"
        "    case: {opened_on: 2026-03-01}\n"
        "    expect: does_not_fire\n",
        encoding="utf-8",
    )
    results = run_rule_tests(tmp_path, backend="durable", only={"VG-FIRST"})
    [failed] = [r for r in results if not r.passed]
    assert failed.name == "verkeerd verwacht"
    assert failed.path.endswith("vg-first.tests.yaml") and failed.line == 3
    assert failed.expected is False and failed.got is True
    text = format_result(failed)
    assert text.startswith("FOUT VG-FIRST: verkeerd verwacht")
    assert "verwacht 'gaat niet af', uitkomst 'gaat af'" in text
    # each condition with its outcome, the value seen and the date it was compared with
    assert "ja   opened_on: {older_than: 14d}  (datum vóór 2026-03-02; gezien: 2026-03-01)" in text
    assert "ja   vertrekgesprek_count: {eq: 0}  (gezien: 0)" in text
    assert "1 mislukt" in format_summary(results)


def test_a_rule_not_active_on_the_test_date_never_fires(tmp_path: Path) -> None:
    (tmp_path / "late-rule.yaml").write_text(
        "id: LATE-RULE\n"
        "title: Later van kracht\n"
        "mail_title: Later van kracht\n"
        "severity: low\n"
        "owner: team-kwaliteit\n"
        "effective: {from: 2026-06-01}\n"
        "when:\n"
        "  opened_on: {older_than: 1d}\n"
        "expected_action: Niets.\n"
        "tests:\n"
        "  - name: voor de ingangsdatum\n"
        "    as_of: 2026-05-31\n"
        "    case: {opened_on: 2026-01-01}\n"
        "    expect: fires\n"
        "  - name: op de ingangsdatum\n"
        "    as_of: 2026-06-01\n"
        "    case: {opened_on: 2026-01-01}\n"
        "    expect: fires\n",
        encoding="utf-8",
    )
    before, on = run_rule_tests(tmp_path, backend="durable")
    assert (before.got, before.passed) == (False, False)
    assert "niet actief op 2026-05-31" in before.explanation
    assert "2026-06-01" in before.explanation
    assert (on.got, on.passed) == (True, True)
    assert on.explanation == ""


def test_missing_field_is_explained(tmp_path: Path) -> None:
    for path in RULES.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "specialist.tests.yaml").write_text(
        "rule: SPECIALIST\n"
        "tests:\n"
        "  - name: specialist niet ingevuld\n"
        "    as_of: 2026-03-02\n"
        "    case: {person: {amv: true}}\n"
        "    expect: does_not_fire\n",
        encoding="utf-8",
    )
    [failed] = [r for r in run_rule_tests(tmp_path, "python", {"SPECIALIST"}) if not r.passed]
    assert (
        "ja   specialist: {ne: true, if_missing: true}  (gezien: ontbreekt; "
        "een ontbrekend veld telt als waar (if_missing: true))" in failed.explanation
    )
    assert "medical.signal_on: present  (gezien: ontbreekt)" in failed.explanation


def test_a_closed_case_never_fires(tmp_path: Path) -> None:
    for path in RULES.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "vg-first.tests.yaml").write_text(
        "rule: VG-FIRST\n"
        "tests:\n"
        "  - as_of: 2026-03-16\n"
        "    case: {opened_on: 2026-03-01, status: closed}\n"
        "    expect: fires\n",
        encoding="utf-8",
    )
    [failed] = [r for r in run_rule_tests(tmp_path, "durable", {"VG-FIRST"}) if not r.passed]
    assert failed.name == "VG-FIRST test 1"
    assert "status 'closed'" in failed.explanation


def test_broken_rule_dir_is_refused(tmp_path: Path) -> None:
    from regiesignaal.engine.language.compiler import RuleSetError

    (tmp_path / "x.yaml").write_text("id: X\n", encoding="utf-8")
    with pytest.raises(RuleSetError) as info:
        run_rule_tests(tmp_path)
    assert info.value.problems


def test_boundary_dates_in_the_pack_are_real_boundaries(ruledir: RuleDir) -> None:
    """For each threshold test named 'precies ...', moving as_of one day later flips it."""
    flipped = 0
    for rule, test in ALL_TESTS:
        if "precies" not in test.name:
            continue
        later = test.as_of + dt.timedelta(days=1)
        if "over precies" in test.name:  # future thresholds flip when as_of moves earlier
            later = test.as_of - dt.timedelta(days=1)
        compiled = compile_rules(ruledir, later, only={rule.id})
        fires_later = rule.id in Evaluator(compiled, "python").fired(test.case)
        assert fires_later is not test.expect_fires, (rule.id, test.name)
        flipped += 1
    assert flipped >= 15


# ---------------------------------------------------------------- the pack against its spec
#
# Reference predicates written straight from the semantics the pack implements (the brief of
# the default rule pack), compared with the compiled rules on generated cases. Recorded
# events (interviews, contacts, checks, meetings, measures) lie on or before the as-of date,
# planned dates (departure, term end, art. 64 end) around it, all close to the thresholds.

Case = dict[str, Any]
VG = "vertrekgesprek"


def _ago(as_of: dt.date, day: dt.date) -> int:
    return (as_of - day).days


def _recent(as_of: dt.date, days: list[dt.date], limit: int) -> bool:
    return any(0 <= _ago(as_of, d) <= limit for d in days)


def _done(as_of: dt.date, day: dt.date | None) -> dt.date | None:
    """A recorded action counts only when it lies on or before the as-of date."""
    return day if day is not None and day <= as_of else None


def _days(start: dt.date | None, end: dt.date | None) -> int | None:
    return (end - start).days if start is not None and end is not None else None


def _reference(c: Case, a: dt.date) -> set[str]:
    iv, med, book, plan = c["interviews"], c["medical"], c["booking"], c["vertrekplan"]
    person = c["person"]
    location = c.get("location_type")
    vg = [i for i in iv if i.get("kind") == VG]
    activity = [x["on"] for x in c["contacts"]] + [x["on"] for x in iv]
    decisions = ("zelfstandig", "gedwongen", "vbl", "bewaring")
    lko_decision = max((x["on"] for x in c["lko"] if x.get("decision") in decisions), default=None)
    age = _ago(a, c["opened_on"])
    dep = book.get("departure_on")
    end = c.get("departure_term_ends_on")
    until = med.get("art64_until")
    reassessed = _done(a, med.get("art64_reassessed_on"))
    updated = _done(a, plan.get("strategy_updated_on"))
    removability = _done(a, book.get("removability_checked_on"))
    reception = _done(a, book.get("reception_checked_on"))
    signal = _done(a, med.get("signal_on"))
    requested = _done(a, med.get("bma_requested_on"))
    no_action = _done(a, med.get("no_action_recorded_on"))
    advice = _done(a, med.get("bma_advice_on"))
    checks = [x for x in c["medical_checks"] if x.get("outcome")]
    last_check = max((x["on"] for x in checks), default=None)
    bma_needed = max((x["on"] for x in checks if x["outcome"] == "bma_nodig"), default=None)
    running_vbl = [
        m["from"]
        for m in c["measures"]
        if m["kind"] == "vbl" and (m.get("until") is None or m["until"] >= a)
    ]
    vbl_from = max(running_vbl, default=None)
    keys = ("medical", "hardship", "trafficking")
    latest_contact = _ago(a, max(activity, default=c["opened_on"]))

    def after(start: dt.date | None, done: dt.date | None) -> bool:
        days = _days(start, done)
        return days is not None and days >= 0

    depart_ok = (
        last_check is not None
        and 0 <= _ago(a, last_check) <= 30
        and (bma_needed is None or after(bma_needed, advice))
    )
    art64_gap = not (reassessed is not None and (until - reassessed).days <= 60) if until else False
    lko_days = _days(lko_decision, end)
    review = _days(vbl_from, lko_decision)
    in_vbl = location == "vbl" and vbl_from is not None
    out = {
        "VG-FIRST": age > 14 and not vg,
        "VG-MIN3": age > 84 and len(vg) in (1, 2),
        "CONTACT-30D": latest_contact > 30 and location not in ("vbl", "gezinslocatie", "detentie"),
        "CONTACT-14D": location in ("vbl", "gezinslocatie") and latest_contact > 14,
        "BO-UNTESTED": any(not all(i.get("checked", {}).get(k) is True for k in keys) for i in vg),
        "MED-CHECK": not checks and age > 14,
        "MED-FOLLOWUP": (
            signal is not None
            and _ago(a, signal) > 14
            and not after(signal, requested)
            and not after(signal, no_action)
        )
        or (
            bma_needed is not None and _ago(a, bma_needed) > 14 and not after(bma_needed, requested)
        ),
        "MED-CONDITIONS": med.get("travel_conditions") is True
        and med.get("conditions_in_plan") is not True,
        "DEPART-MED": dep is not None and 0 <= (dep - a).days <= 30 and not depart_ok,
        "DEPART-ART64": dep is not None and dep >= a and until is not None and dep <= until,
        "ART64-END": until is not None and (until - a).days <= 30 and art64_gap,
        "WISH-UNEXPLORED": any(
            "explored_on" not in w and _ago(a, w["recorded_on"]) > 21 for w in c["departure_wishes"]
        ),
        "STRATEGY-STALE": age > 14
        and plan.get("strategy") is not None
        and (plan["strategy"] == "onbekend" or updated is None or _ago(a, updated) > 90),
        "PLAN-INCOMPLETE": age > 14
        and any(plan.get(k) is None for k in ("strategy", "documents_status", "support")),
        "AMV-RECEPTION": person.get("amv") is True
        and dep is not None
        and not (reception is not None and (dep - reception).days <= 90),
        "SPECIALIST": (person.get("amv") is True or signal is not None or bma_needed is not None)
        and c.get("specialist") is not True,
        "TERM-ENDING": end is not None
        and end < a
        and not (lko_days is not None and lko_days <= 28),
        "VBL-10W": in_vbl
        and vbl_from is not None
        and _ago(a, vbl_from) > 70
        and not (review is not None and review >= 28),
        "DETENTION-PACE": location == "detentie" and not _recent(a, activity, 14),
        "REMOVABILITY": dep is not None
        and 0 <= (dep - a).days <= 7
        and not (removability is not None and _ago(a, removability) <= 7),
        "LKO-CHALLENGE": any(
            x.get("decision") in ("gedwongen", "bewaring")
            and x.get("challenge_recorded") is not True
            for x in c["lko"]
        ),
        "INTERPRETER": any(not i.get("language") for i in iv)
        or (
            person.get("interpreter_needed") is True
            and any(i.get("interpreter") is not True for i in iv)
        ),
    }
    assert set(out) == PACK_IDS
    return {rule for rule, fires in out.items() if fires}


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def cases(draw: st.DrawFn, as_of: dt.date) -> Case:
    def past(most: int) -> st.SearchStrategy[dt.date]:
        return st.sampled_from(range(most + 1)).map(lambda n: as_of - dt.timedelta(days=n))

    def around(span: int) -> st.SearchStrategy[dt.date]:
        return st.sampled_from(range(-span, span + 1)).map(lambda n: as_of + dt.timedelta(days=n))

    flag = _opt(st.booleans())
    enum = lambda *values: st.sampled_from((None, *values))  # noqa: E731
    raw: Case = {
        "case_ref": "Z-1",
        "status": "open",
        "opened_on": draw(past(120)),
        "location_type": draw(enum("vbl", "detentie", "azc", "gezinslocatie", "geen")),
        "specialist": draw(flag),
        "departure_term_ends_on": draw(_opt(around(40))),
        "person": {"amv": draw(flag), "interpreter_needed": draw(flag)},
        "vertrekplan": {
            "strategy": draw(enum("zelfstandig", "iom", "gedwongen", "onbekend")),
            "strategy_updated_on": draw(_opt(past(120))),
            "documents_status": draw(enum("aanwezig", "ontbreekt", "onbekend")),
            "support": draw(enum("geen", "iom", "reintegratie")),
        },
        "interviews": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "on": past(100),
                        "kind": enum(VG, "intake", "overig"),
                        "language": _opt(st.sampled_from(["", "ar", "ti"])),
                        "interpreter": flag,
                        "checked": st.fixed_dictionaries(
                            {"medical": flag, "hardship": flag, "trafficking": flag}
                        ),
                    }
                ),
                max_size=4,
            )
        ),
        "contacts": draw(st.lists(st.fixed_dictionaries({"on": past(60)}), max_size=3)),
        "medical_checks": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "on": past(60),
                        "outcome": enum("geen_bijzonderheden", "aandachtspunt", "bma_nodig"),
                    }
                ),
                max_size=2,
            )
        ),
        "medical": {
            "signal_on": draw(_opt(past(30))),
            "bma_requested_on": draw(_opt(around(30))),
            "bma_advice_on": draw(_opt(around(30))),
            "no_action_recorded_on": draw(_opt(around(30))),
            "travel_conditions": draw(flag),
            "conditions_in_plan": draw(flag),
            "art64_until": draw(_opt(around(40))),
            "art64_reassessed_on": draw(_opt(around(90))),
        },
        "departure_wishes": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"recorded_on": past(40)}, optional={"explored_on": past(10)}
                ),
                max_size=2,
            )
        ),
        "measures": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "kind": st.sampled_from(["vbl", "vbl", "detentie", "meldplicht"]),
                        "from": past(120),
                        "until": _opt(around(20)),
                    }
                ),
                max_size=2,
            )
        ),
        "lko": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "on": past(120),
                        "decision": enum("zelfstandig", "gedwongen", "bewaring", "aanhouden"),
                        "challenge_recorded": flag,
                    }
                ),
                max_size=2,
            )
        ),
        "booking": {
            "departure_on": draw(_opt(around(40))),
            "removability_checked_on": draw(_opt(around(12))),
            "reception_checked_on": draw(
                _opt(st.sampled_from(range(-120, 5)).map(lambda n: as_of + dt.timedelta(days=n)))
            ),
        },
    }
    if raw["location_type"] == "vbl" and draw(st.booleans()):  # a stay near 10 weeks
        start = as_of - dt.timedelta(days=draw(st.sampled_from(range(64, 78))))
        raw["measures"].append({"kind": "vbl", "from": start})
    return parse_case(_drop_none(raw))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


@given(
    data=st.data(),
    as_of=st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2027, 12, 31)),
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pack_matches_its_specification_python(data: st.DataObject, as_of: dt.date) -> None:
    rd = _PACK
    case = data.draw(cases(as_of))
    fired = set(Evaluator(compile_rules(rd, as_of), "python").fired(case))
    assert fired == _reference(case, as_of)


_PACK = load_rule_dir(RULES)
_DURABLE_AS_OF = dt.date(2026, 3, 2)
_DURABLE: list[Evaluator] = []


@given(data=st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pack_matches_its_specification_durable(data: st.DataObject) -> None:
    if not _DURABLE:  # one durable-rules ruleset for all examples
        _DURABLE.append(Evaluator(compile_rules(_PACK, _DURABLE_AS_OF), "durable"))
    case = data.draw(cases(_DURABLE_AS_OF))
    fired = set(_DURABLE[0].fired(case))
    assert fired == _reference(case, _DURABLE_AS_OF)


def test_explain_test_traces_a_passing_test_too(ruledir: RuleDir) -> None:
    rule = next(r for r in ruledir.rules if r.id == "TERM-ENDING")
    test = next(t for t in rule.tests if t.name.startswith("LKO-besluit 28 dagen (de grens)"))
    text = explain_test(ruledir, rule, test)
    assert "verwacht 'gaat niet af', uitkomst 'gaat niet af'" in text
    assert (
        "departure_term_ends_on: {older_than: 0d}  (datum vóór 2026-03-02; gezien: 2026-02-25)"
        in text
    )
    assert "tenzij (unless): waar" in text
    assert "termijn verstreken (overdue.when), alle van: waar" in text
    assert (
        "departure_term_ends_on: {within_last: 14d}  "
        "(datum van 2026-02-16 t/m 2026-03-02; gezien: 2026-02-25)" in text
    )
    assert "lko_decision_days_before_term_end: {le: 28}  (gezien: 28)" in text


def test_overdue_severity_is_checked_by_the_runner(tmp_path: Path) -> None:
    """A test naming a severity fails when the signal has another one, on both evaluators."""
    text = (RULES / "term-ending.yaml").read_text(encoding="utf-8")
    text = text.replace("    severity: critical\n", "    severity: high\n", 1)
    (tmp_path / "term-ending.yaml").write_text(text, encoding="utf-8")
    for name in ("derived.yaml", "lko-challenge.yaml"):  # what it reads and what it covers
        (tmp_path / name).write_text((RULES / name).read_text(encoding="utf-8"), encoding="utf-8")
    for backend in ("durable", "python"):
        results = run_rule_tests(tmp_path, backend=backend, only=["TERM-ENDING"])  # type: ignore[arg-type]
        failed = [r for r in results if not r.passed]
        assert [r.name for r in failed] == [
            "termijn gisteren verstreken zonder besluit is critical"
        ]
        assert failed[0].got_severity == "critical"
        assert "verwacht ernst high, kreeg critical" in format_result(failed[0])


def test_summary_counts_in_dutch() -> None:
    one = TestResult("A", "t", "p", 1, dt.date(2026, 1, 1), True, True, True)
    bad = TestResult("B", "t", "p", 2, dt.date(2026, 1, 1), True, False, False, "x")
    assert format_summary([one]) == "1 test van 1 regel: 1 geslaagd, 0 mislukt"
    assert format_summary([one, bad]) == "2 tests van 2 regels: 1 geslaagd, 1 mislukt"
    assert format_result(one) == "OK   A: t (p:1)"
    assert format_result(bad) == "FOUT B: t (p:2)\n     x"


def test_the_reference_example_is_a_shipped_rule(ruledir: RuleDir) -> None:
    """The rule language reference's example rule agrees with the shipped rule of that id."""
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir as load
    from regiesignaal.engine.overlap import rule_signature

    readme = (RULES.parent / "docs" / "rule-language.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(id: [A-Z0-9-]+.*?)```", readme, re.S)
    assert block is not None
    rule_id = re.match(r"id: ([A-Z0-9-]+)", block.group(1)).group(1)  # type: ignore[union-attr]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "derived.yaml").write_text(
            (RULES / "derived.yaml").read_text(encoding="utf-8"), encoding="utf-8"
        )
        Path(tmp, f"{rule_id.lower()}.yaml").write_text(block.group(1), encoding="utf-8")
        shipped = next(r for r in ruledir.rules if r.id == rule_id)
        for covered in shipped.covers:  # the rules it covers must be in the folder
            name = f"{covered.lower()}.yaml"
            Path(tmp, name).write_text((RULES / name).read_text(encoding="utf-8"), "utf-8")
        example_dir = load(Path(tmp))
    assert example_dir.ok, example_dir.problems
    example = next(r for r in example_dir.rules if r.id == rule_id)
    assert rule_signature(example) == rule_signature(shipped)
    attrs = ("title", "mail_title", "expected_action", "escalate_after", "owner", "kind")
    for attr in (*attrs, "covers", "warn_before", "since", "challenge"):
        assert getattr(example, attr) == getattr(shipped, attr), attr
    shipped_tests = {(t.name, t.as_of, t.expect_fires, t.severity) for t in shipped.tests}
    assert {(t.name, t.as_of, t.expect_fires, t.severity) for t in example.tests} <= shipped_tests


def test_every_description_justifies_severity_and_escalation(ruledir: RuleDir) -> None:
    """Policy owners see why a rule is as loud as it is (issue 10)."""
    for rule in ruledir.rules:
        text = " ".join(rule.description.split())
        assert f"Ernst {rule.severity}" in text, rule.id
        if rule.escalate_after is not None:
            assert "escalatie na" in text, rule.id
