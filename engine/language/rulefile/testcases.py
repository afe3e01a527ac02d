"""Parsing the tests of a rule (``tests:`` in the rule, or ``<name>.tests.yaml`` beside it).

A test case is an as-of date, a (partial) case plan checked against the case-file contract,
and whether the rule fires on it (optionally with which severity).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap

from regiesignaal.engine.language.casefile import CaseFileError, parse_case, to_date, unknown_fields
from regiesignaal.engine.language.catalogue import (
    suggest,
)
from regiesignaal.engine.language.conditions import Pos
from regiesignaal.engine.language.rulefile.common import Context, check_keys, plain, pos_of
from regiesignaal.engine.language.rulefile.model import (
    EXPECT_VALUES,
    SEVERITIES,
    TEST_KEYS,
    RuleTest,
)


def parse_tests(node: Any, pos: Pos, ctx: Context, rule_name: str) -> tuple[RuleTest, ...]:
    if not isinstance(node, list):
        ctx.add(pos, "'tests' verwacht een lijst van testgevallen")
        return ()
    out = []
    for i, item in enumerate(node):
        ipos = pos_of(node, i)
        if not isinstance(item, CommentedMap):
            ctx.add(ipos, "een testgeval is een blok met as_of, case en expect")
            continue
        if not check_keys(item, TEST_KEYS, ctx, "een testgeval"):
            continue
        as_of = to_date(item["as_of"])
        if as_of is None:
            ctx.add(pos_of(item, "as_of", value=True), "'as_of' moet een datum zijn (JJJJ-MM-DD)")
            continue
        expect = item["expect"]
        if expect not in EXPECT_VALUES:
            ctx.add(
                pos_of(item, "expect", value=True),
                f"'expect' moet {' of '.join(EXPECT_VALUES)} zijn",
                suggest(str(expect), EXPECT_VALUES),
            )
            continue
        want_severity = item.get("severity")
        if want_severity is not None and (want_severity not in SEVERITIES or expect != "fires"):
            ctx.add(
                pos_of(item, "severity", value=True),
                f"'severity' in een test hoort bij 'expect: fires' en is {' / '.join(SEVERITIES)}",
                "laat 'severity' weg of zet expect op fires",
            )
            continue
        raw_case = item["case"]
        if not isinstance(raw_case, Mapping):
            ctx.add(pos_of(item, "case", value=True), "'case' moet een blok met zaakvelden zijn")
            continue
        merged: dict[str, Any] = {"case_ref": "TEST-1", "status": "open", "opened_on": as_of}
        merged.update(plain(raw_case))
        unknown = unknown_fields(merged)
        if unknown:
            path, known = unknown[0]
            ctx.add(
                pos_of(item, "case", value=True),
                f"onbekend veld '{path}' in de testzaak: geen regel kan het lezen",
                suggest(path.rsplit(".", 1)[-1], known) or "zie 'regiesignaal rules fields'",
            )
            continue
        try:
            case = parse_case(merged)
        except CaseFileError as exc:
            ctx.add(pos_of(item, "case", value=True), f"ongeldige testzaak: {exc}")
            continue
        name = str(item.get("name") or f"{rule_name} test {i + 1}")
        out.append(
            RuleTest(
                name,
                as_of,
                case,
                expect == "fires",
                ctx.path,
                ipos.line,
                str(want_severity) if want_severity is not None else None,
            )
        )
    return tuple(out)
