"""Rule files beyond the documented limits are refused with a clear message: no traceback,
no engine hang, and a run with them is recorded as refused. Plus fuzzing of the loader."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.compiler import MAX_ENGINE_RULES, check_rule_dir
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.model import (
    MAX_ALTERNATIVES,
    MAX_CONDITION_DEPTH,
    MAX_FILE_BYTES,
    MAX_VALUES,
)
from regiesignaal.engine.store.tables import runs
from regiesignaal.jobs.cli import main

RULES = Path(__file__).resolve().parents[1] / "rules"
HEAD = "id: BIG\ntitle: t\nmail_title: t\ndescription: d\nseverity: low\nowner: x\n"
TAIL = "expected_action: a\n"


def rules_with(tmp_path: Path, body: str) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    (target / "big.yaml").write_text(HEAD + body + TAIL, encoding="utf-8")
    return target


def alternatives(n: int) -> str:
    return "when:\n  any:\n" + "".join(
        f"    - latest_contact_on: {{older_than: {i + 1}d}}\n" for i in range(n)
    )


def problems(rules: Path) -> str:
    return "\n".join(str(p) for p in check_rule_dir(rules).problems)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (alternatives(640), f"meer dan {MAX_ALTERNATIVES} voorwaarden in één lijst"),
        (
            "when:\n" + "".join("  " * i + "  not:\n" for i in range(300)),
            "te diep genest",
        ),
        ("when: " + "[" * 1000 + "]" * 1000 + "\n", "te diep genest"),
        (
            "when:\n"
            + "".join("  " * i + "  not:\n" for i in range(MAX_CONDITION_DEPTH + 1))
            + "  " * (MAX_CONDITION_DEPTH + 1)
            + "  opened_on: {older_than: 1d}\n",
            f"meer dan {MAX_CONDITION_DEPTH} niveaus all/any/not",
        ),
        ("# " + "x" * MAX_FILE_BYTES + "\n", "te groot"),
        (
            "when:\n  team: {in: [" + ", ".join(f"t{i}" for i in range(640)) + "]}\n",
            f"meer dan {MAX_VALUES} waarden",
        ),
    ],
    ids=[
        "640-alternatives",
        "300-deep-block",
        "1000-deep-flow",
        "depth-limit",
        "size",
        "640-values",
    ],
)
def test_limits_are_refused_by_rules_check(tmp_path: Path, body: str, expected: str) -> None:
    rules = rules_with(tmp_path, body)
    assert expected in problems(rules)
    result = CliRunner().invoke(main, ["rules", "check", str(rules)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert expected in result.output


def test_limits_hold_the_shipped_rules_and_the_total(tmp_path: Path) -> None:
    assert problems(RULES) == ""
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    per_rule = MAX_ALTERNATIVES
    for n in range(MAX_ENGINE_RULES // per_rule + 1):
        (target / f"many-{n}.yaml").write_text(
            HEAD.replace("BIG", f"MANY-{n}") + alternatives(per_rule) + TAIL, encoding="utf-8"
        )
    assert f"hoogstens {MAX_ENGINE_RULES}" in problems(target)


@pytest.mark.slow
def test_a_run_with_too_deep_rules_is_recorded_as_refused(tmp_path: Path) -> None:
    from regiesignaal.jobs.config import load_settings
    from regiesignaal.jobs.pipeline import RunOptions, RunRefused, run, upgrade_store

    rules = rules_with(tmp_path, "when: " + "[" * 1000 + "]" * 1000 + "\n")
    source = tmp_path / "src.sqlite"
    from regiesignaal.engine.source.tables import create_source_schema

    engine = sa.create_engine(f"sqlite:///{source}")
    create_source_schema(engine)
    engine.dispose()
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    s = dataclasses.replace(
        load_settings(env={}),
        source_url=f"sqlite:///{source}",
        store_url=store_url,
        rules_dir=rules,
        mail_enabled=False,
    )
    upgrade_store(s)
    with pytest.raises(RunRefused) as info:
        run(s, RunOptions(dt.date(2026, 3, 2)))
    assert any("te diep genest" in d for d in info.value.details)
    store = sa.create_engine(store_url)
    with store.connect() as conn:
        assert conn.execute(sa.select(runs.c.status)).scalar_one() == "refused"
    store.dispose()


# --- fuzzing the rule-file loader ---------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 50),
    st.sampled_from(["14d", "2026-02-30", "vbl", "opened_on", "any", "not", "!!python/x", "*a"]),
    st.text(max_size=8),
)
_conditions = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["any", "all", "not", "opened_on", "location_type", "older_than", "in", "eq"]
            ),
            inner,
            max_size=2,
        ),
    ),
    max_leaves=10,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(when=_conditions, raw=st.text(max_size=60))
def test_fuzzed_rule_files_load_or_name_the_line(tmp_path: Path, when: object, raw: str) -> None:
    """Any generated condition, or any text as a whole file: problems name the file and a
    line; never a traceback."""
    import json

    target = tmp_path / "fuzz"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    (target / "fuzz.yaml").write_text(
        HEAD.replace("BIG", "FUZZ") + "when: " + json.dumps(when) + "\n" + TAIL, encoding="utf-8"
    )
    (target / "raw.yaml").write_text(raw, encoding="utf-8", errors="surrogatepass")
    ruledir = check_rule_dir(target)
    for problem in ruledir.problems:
        assert problem.path.endswith((".yaml", ".yml")) and problem.line >= 1
    assert load_rule_dir(target).version
