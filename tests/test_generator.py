"""The synthetic-data generator: valid, deterministic, realistic, and it exercises every rule.

The rule predicates below are written here, independently of the rule engine, from the
definitions in DESIGN section 8 and the task brief, so that the generator is checked
against the intended meaning of each rule and not against its own code.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.casefile import parse_case, parse_staff
from regiesignaal.fixtures.generator import RULE_IDS, generate

AS_OF = dt.date(2026, 3, 2)
VG = "vertrekgesprek"
Case = dict[str, Any]


def _ago(as_of: dt.date, day: dt.date) -> int:
    """Days from ``day`` to ``as_of`` (positive when ``day`` is in the past)."""
    return (as_of - day).days


def _ahead(as_of: dt.date, day: dt.date) -> int:
    return (day - as_of).days


def _done(a: dt.date, day: dt.date | None) -> dt.date | None:
    """A recorded action counts only on or before the as-of date."""
    return day if day is not None and day <= a else None


def _after(start: dt.date | None, done: dt.date | None) -> bool:
    """``done`` happened on or after ``start`` (both known)."""
    return start is not None and done is not None and done >= start


def _checks(c: Case, a: dt.date) -> list[dict[str, Any]]:
    return [x for x in c["medical_checks"] if x.get("outcome") and x["on"] <= a]


def _bma_needed(c: Case, a: dt.date) -> dt.date | None:
    return max((x["on"] for x in _checks(c, a) if x["outcome"] == "bma_nodig"), default=None)


def _lko_decision(c: Case, a: dt.date) -> dt.date | None:
    decisions = ("zelfstandig", "gedwongen", "vbl", "bewaring")
    return max(
        (x["on"] for x in c["lko"] if x.get("decision") in decisions and x["on"] <= a),
        default=None,
    )


def _vg_first(c: Case, a: dt.date) -> bool:
    # handed over more than 14 days ago and no departure interview held yet
    # (the signal clears once the first interview is recorded)
    held = any(iv.get("kind") == VG for iv in c["interviews"])
    return _ago(a, c["opened_on"]) > 14 and not held


def _vg_min3(c: Case, a: dt.date) -> bool:
    # one or two interviews: none at all is VG-FIRST's signal (one gap, one signal)
    count = sum(1 for iv in c["interviews"] if iv.get("kind") == VG)
    return _ago(a, c["opened_on"]) > 84 and count in (1, 2)


def _days_since_contact(c: Case, a: dt.date) -> int:
    dates = [x["on"] for x in c["contacts"]] + [x["on"] for x in c["interviews"]]
    latest = max(dates) if dates else c["opened_on"]
    return _ago(a, latest)


def _contact_30d(c: Case, a: dt.date) -> bool:
    # stricter norms in VBL/gezinslocatie (CONTACT-14D) and detention (DETENTION-PACE)
    strict = c.get("location_type") in ("vbl", "gezinslocatie", "detentie")
    return _days_since_contact(c, a) > 30 and not strict


def _contact_14d(c: Case, a: dt.date) -> bool:
    return c.get("location_type") in ("vbl", "gezinslocatie") and _days_since_contact(c, a) > 14


def _bo_untested(c: Case, a: dt.date) -> bool:
    keys = ("medical", "hardship", "trafficking")
    return any(
        iv.get("kind") == VG and not all(iv["checked"].get(k) is True for k in keys)
        for iv in c["interviews"]
    )


def _med_check(c: Case, a: dt.date) -> bool:
    return not _checks(c, a) and _ago(a, c["opened_on"]) > 14


def _med_followup(c: Case, a: dt.date) -> bool:
    m = c["medical"]
    signal = _done(a, m.get("signal_on"))
    requested = _done(a, m.get("bma_requested_on"))
    no_action = _done(a, m.get("no_action_recorded_on"))
    needed = _bma_needed(c, a)
    by_signal = (
        signal is not None
        and _ago(a, signal) > 14
        and not _after(signal, requested)
        and not _after(signal, no_action)
    )
    by_check = needed is not None and _ago(a, needed) > 14 and not _after(needed, requested)
    return by_signal or by_check


def _med_conditions(c: Case, a: dt.date) -> bool:
    m = c["medical"]
    return m.get("travel_conditions") is True and m.get("conditions_in_plan") is not True


def _depart_med(c: Case, a: dt.date) -> bool:
    # a departure within 30 days, without a check of the last 30 days with an outcome, or
    # with a check saying BMA advice is needed and no advice received after it
    dep = c["booking"].get("departure_on")
    checks = _checks(c, a)
    recent = any(0 <= _ago(a, x["on"]) <= 30 for x in checks)
    needed = _bma_needed(c, a)
    advised = needed is None or _after(needed, _done(a, c["medical"].get("bma_advice_on")))
    return dep is not None and 0 <= _ahead(a, dep) <= 30 and not (recent and advised)


def _depart_art64(c: Case, a: dt.date) -> bool:
    dep = c["booking"].get("departure_on")
    until = c["medical"].get("art64_until")
    return dep is not None and until is not None and a <= dep <= until


def _art64_end(c: Case, a: dt.date) -> bool:
    # ends within 30 days or has ended (overdue), without a reassessment at most 60 days
    # before the end (or later)
    m = c["medical"]
    until = m.get("art64_until")
    re_on = _done(a, m.get("art64_reassessed_on"))
    reassessed = re_on is not None and until is not None and (until - re_on).days <= 60
    return until is not None and _ahead(a, until) <= 30 and not reassessed


def _wish_unexplored(c: Case, a: dt.date) -> bool:
    return any(
        _done(a, w.get("explored_on")) is None and _ago(a, w["recorded_on"]) > 21
        for w in c["departure_wishes"]
    )


def _strategy_stale(c: Case, a: dt.date) -> bool:
    p = c["vertrekplan"]
    updated = _done(a, p.get("strategy_updated_on"))
    if _ago(a, c["opened_on"]) <= 14 or p.get("strategy") is None:
        return False  # an empty strategy is PLAN-INCOMPLETE's signal
    return p["strategy"] == "onbekend" or updated is None or _ago(a, updated) > 90


def _plan_incomplete(c: Case, a: dt.date) -> bool:
    p = c["vertrekplan"]
    empty = not all(p.get(k) for k in ("strategy", "documents_status", "support"))
    return _ago(a, c["opened_on"]) > 14 and empty


def _amv_reception(c: Case, a: dt.date) -> bool:
    b = c["booking"]
    dep = b.get("departure_on")
    checked = _done(a, b.get("reception_checked_on"))
    current = dep is not None and checked is not None and (dep - checked).days <= 90
    return bool(c["person"].get("amv")) and dep is not None and not current


def _specialist(c: Case, a: dt.date) -> bool:
    medical = _done(a, c["medical"].get("signal_on")) is not None or _bma_needed(c, a) is not None
    needs = bool(c["person"].get("amv")) or medical
    return needs and c.get("specialist") is not True


def _term_ending(c: Case, a: dt.date) -> bool:
    # has ended (before the reference date), without an LKO decision at most 28 days before
    # the end (or later); the days before the end are a warning, not a signal
    end = c.get("departure_term_ends_on")
    decision = _lko_decision(c, a)
    decided = end is not None and decision is not None and (end - decision).days <= 28
    return end is not None and end < a and not decided


def _vbl_10w(c: Case, a: dt.date) -> bool:
    running = [
        m["from"]
        for m in c["measures"]
        if m["kind"] == "vbl" and m["from"] <= a and (m.get("until") is None or m["until"] >= a)
    ]
    since = max(running, default=None)
    decision = _lko_decision(c, a)
    reviewed = since is not None and decision is not None and (decision - since).days >= 28
    return (
        c.get("location_type") == "vbl"
        and since is not None
        and _ago(a, since) > 70
        and not reviewed
    )


def _detention_pace(c: Case, a: dt.date) -> bool:
    activity = [x["on"] for x in c["contacts"]] + [x["on"] for x in c["interviews"]]
    recent = any(0 <= _ago(a, day) <= 14 for day in activity)
    return c.get("location_type") == "detentie" and not recent


def _removability(c: Case, a: dt.date) -> bool:
    b = c["booking"]
    dep = b.get("departure_on")
    checked = b.get("removability_checked_on")
    recent = checked is not None and 0 <= _ago(a, checked) <= 7
    return dep is not None and 0 <= _ahead(a, dep) <= 7 and not recent


def _lko_challenge(c: Case, a: dt.date) -> bool:
    return any(
        x.get("decision") in ("gedwongen", "bewaring") and x.get("challenge_recorded") is not True
        for x in c["lko"]
    )


def _interpreter(c: Case, a: dt.date) -> bool:
    needed = c["person"].get("interpreter_needed") is True
    return any(
        not iv.get("language") or (needed and iv.get("interpreter") is not True)
        for iv in c["interviews"]
    )


RULES: dict[str, Callable[[Case, dt.date], bool]] = {
    "VG-FIRST": _vg_first,
    "VG-MIN3": _vg_min3,
    "CONTACT-30D": _contact_30d,
    "CONTACT-14D": _contact_14d,
    "BO-UNTESTED": _bo_untested,
    "MED-CHECK": _med_check,
    "MED-FOLLOWUP": _med_followup,
    "MED-CONDITIONS": _med_conditions,
    "DEPART-MED": _depart_med,
    "DEPART-ART64": _depart_art64,
    "ART64-END": _art64_end,
    "WISH-UNEXPLORED": _wish_unexplored,
    "STRATEGY-STALE": _strategy_stale,
    "PLAN-INCOMPLETE": _plan_incomplete,
    "AMV-RECEPTION": _amv_reception,
    "SPECIALIST": _specialist,
    "TERM-ENDING": _term_ending,
    "VBL-10W": _vbl_10w,
    "DETENTION-PACE": _detention_pace,
    "REMOVABILITY": _removability,
    "LKO-CHALLENGE": _lko_challenge,
    "INTERPRETER": _interpreter,
}

V_NUMBER = re.compile(r"\bV\d{6,}\b", re.IGNORECASE)
TEN_DIGITS = re.compile(r"\b\d{10}\b")
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
BIRTH_KEYS = re.compile(r"birth_?date|date_?of_?birth|geboorte_?datum|\bdob\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("gen")
    out, staff_out = d / "cases.jsonl", d / "staff.jsonl"
    report = generate(3000, seed=7, as_of=AS_OF, out=out, staff_out=staff_out)
    assert report.cases == 3000
    assert report.open_cases + report.closed_cases == 3000
    return out, staff_out


@pytest.fixture(scope="module")
def parsed(sample: tuple[Path, Path]) -> list[Case]:
    out, _ = sample
    with out.open(encoding="utf-8") as fh:
        return [parse_case(json.loads(line)) for line in fh]


def test_every_line_parses_and_has_the_contract_shape(
    sample: tuple[Path, Path], parsed: list[Case]
) -> None:
    _, staff_out = sample
    assert len(parsed) == 3000
    refs = [c["case_ref"] for c in parsed]
    assert len(set(refs)) == len(refs)
    assert all(re.fullmatch(r"Z-\d{6}", r) for r in refs)
    for line in staff_out.read_text(encoding="utf-8").splitlines():
        member = parse_staff(json.loads(line))
        assert member["email"].endswith("@dtv.example")


def test_every_rule_fires_for_a_plausible_share_of_open_cases(parsed: list[Case]) -> None:
    open_cases = [c for c in parsed if c["status"] == "open"]
    assert set(RULES) == set(RULE_IDS)
    shares = {
        rule: sum(1 for c in open_cases if pred(c, AS_OF)) / len(open_cases)
        for rule, pred in RULES.items()
    }
    wrong = {rule: round(s, 3) for rule, s in shares.items() if not 0.01 <= s <= 0.40}
    assert not wrong, f"rule shares outside [1%, 40%]: {wrong}"
    # most open cases are clean for most rules: the data is not one big alarm
    per_case = [sum(pred(c, AS_OF) for pred in RULES.values()) for c in open_cases]
    assert sum(1 for n in per_case if n == 0) / len(open_cases) > 0.05


def test_the_shipped_rule_pack_agrees_with_these_predicates(parsed: list[Case]) -> None:
    """The generator is judged by the real rules too: same firing set, case by case."""
    from regiesignaal.engine.language.compiler import compile_rules
    from regiesignaal.engine.language.evaluator import Evaluator
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir

    rules_dir = Path(__file__).resolve().parents[1] / "rules"
    evaluator = Evaluator(compile_rules(load_rule_dir(rules_dir), AS_OF), "python")
    open_cases = [c for c in parsed if c["status"] == "open"]
    for case in open_cases:
        expected = sorted(rule for rule, pred in RULES.items() if pred(case, AS_OF))
        assert evaluator.fired(case) == expected, case["case_ref"]


def test_closed_share_and_location_mix(parsed: list[Case]) -> None:
    closed = sum(1 for c in parsed if c["status"] == "closed") / len(parsed)
    assert 0.03 <= closed <= 0.07
    mix = Counter(c["location_type"] for c in parsed)
    order = [loc for loc, _ in mix.most_common()]
    assert order == ["azc", "vbl", "gezinslocatie", "detentie", "geen"]


def test_dates_are_plausible(parsed: list[Case]) -> None:
    earliest = AS_OF - dt.timedelta(days=549)
    for c in parsed:
        opened = c["opened_on"]
        assert earliest <= opened <= AS_OF
        recorded = [
            x["on"] for g in ("interviews", "contacts", "medical_checks", "lko") for x in c[g]
        ]
        recorded += [w["recorded_on"] for w in c["departure_wishes"]]
        recorded += [w["explored_on"] for w in c["departure_wishes"] if "explored_on" in w]
        recorded += [m["from"] for m in c["measures"]]
        recorded += [
            v for k, v in c["medical"].items() if k.endswith("_on") and isinstance(v, dt.date)
        ]
        for day in recorded:
            assert opened <= day <= AS_OF, (c["case_ref"], day)
        for g in ("interviews", "contacts", "medical_checks", "lko"):
            days = [x["on"] for x in c[g]]
            assert days == sorted(days)


def test_measures_match_location(parsed: list[Case]) -> None:
    for c in parsed:
        kinds = {m["kind"] for m in c["measures"]}
        if c["location_type"] == "vbl":
            assert "vbl" in kinds
        elif c["location_type"] == "detentie":
            assert "detentie" in kinds
        else:
            assert kinds <= {"meldplicht"}
        if c["person"].get("amv"):
            assert c["person"]["minor"] is True


def test_staff_volumes_and_assignments(sample: tuple[Path, Path], parsed: list[Case]) -> None:
    _, staff_out = sample
    staff = [json.loads(line) for line in staff_out.read_text(encoding="utf-8").splitlines()]
    by_id = {m["id"]: m for m in staff}
    assert len(by_id) == len(staff)
    roles = Counter(m["role"] for m in staff)
    assert roles["beleid"] >= 1
    teams = Counter(m["team"] for m in staff if m["role"] == "regievoerder")
    leads = Counter(m["team"] for m in staff if m["role"] == "teamleider")
    assert set(teams) == set(leads)
    assert all(n == 1 for n in leads.values())
    assert all(8 <= n <= 10 for n in teams.values()), teams
    loads = Counter(c["regievoerder"] for c in parsed)
    assert set(loads) == {m["id"] for m in staff if m["role"] == "regievoerder"}
    assert all(40 <= n <= 80 for n in loads.values()), loads
    for c in parsed:
        member = by_id[c["regievoerder"]]
        assert member["role"] == "regievoerder"
        assert member["team"] == c["team"]
    # specialists exist and carry most of the AMV cases
    amv = [c for c in parsed if c["person"].get("amv")]
    assert amv and sum(c["specialist"] for c in amv) / len(amv) > 0.5


def test_no_identifying_data(sample: tuple[Path, Path]) -> None:
    out, staff_out = sample
    earliest = AS_OF.replace(year=AS_OF.year - 2)
    for path in (out, staff_out):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not V_NUMBER.search(line), f"{path.name}:{n}"
            assert not TEN_DIGITS.search(line), f"{path.name}:{n}"
            assert not BIRTH_KEYS.search(line), f"{path.name}:{n}"
            for y, m, d in ISO_DATE.findall(line):
                # every full date is a recent event or plan, none could be a birth date
                assert dt.date(int(y), int(m), int(d)) >= earliest, f"{path.name}:{n}"
            assert "name" not in json.loads(line) or path == staff_out


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def run(seed: int, tag: str) -> tuple[bytes, bytes]:
        out, staff_out = tmp_path / f"{tag}.jsonl", tmp_path / f"{tag}.staff.jsonl"
        generate(400, seed=seed, as_of=AS_OF, out=out, staff_out=staff_out)
        return out.read_bytes(), staff_out.read_bytes()

    first, again, other = run(11, "a"), run(11, "b"), run(12, "c")
    assert first == again
    assert first[0] != other[0]
    assert first[1] != other[1]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cases=st.integers(min_value=0, max_value=150),
    seed=st.integers(min_value=0, max_value=2**32),
    as_of=st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2035, 12, 31)),
)
def test_any_size_seed_and_date_gives_valid_data(
    tmp_path: Path, cases: int, seed: int, as_of: dt.date
) -> None:
    out, staff_out = tmp_path / "c.jsonl", tmp_path / "s.jsonl"
    report = generate(cases, seed=seed, as_of=as_of, out=out, staff_out=staff_out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == cases == report.cases
    staff = {
        m["id"]: m for m in map(json.loads, staff_out.read_text(encoding="utf-8").splitlines())
    }
    for line in lines:
        c = parse_case(json.loads(line))
        assert c["opened_on"] <= as_of
        assert staff[c["regievoerder"]]["team"] == c["team"]
        for iv in c["interviews"]:
            assert c["opened_on"] <= iv["on"] <= as_of
