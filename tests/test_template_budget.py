"""Template overrides under hostile hands (issue 17, item 12): a render has a budget of steps,
time and output size inside the sandbox; any exception refuses the run with the file and
line; the refusal has its run row."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.store.tables import outbox, runs
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.pipeline import RunOptions, RunRefused, run, upgrade_store
from regiesignaal.notifications.compose import budget
from regiesignaal.notifications.compose.case_manager import compose_case_manager
from regiesignaal.notifications.compose.model import Recipient, SignalLine
from regiesignaal.notifications.compose.overrides import check_template_overrides
from regiesignaal.notifications.compose.render import MailOptions

AS_OF = dt.date(2026, 11, 30)
LINE = SignalLine(
    "Z-1", "R", "Titel", "high", AS_OF, 0, True, False, False, None, "Actie.",
    "https://zaaksysteem.example/zaken/Z-1", 1.0,
)  # fmt: skip
RECIPIENT = Recipient("rv-1", "rv-1@dtv.example")

HOSTILE = {
    "nested-loops": (
        "x\n{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}\n",
        2,
        "stappen",
    ),
    "loops-over-text": (
        "x\n{% for a in 'ab' * 50000 %}{% for b in 'ab' * 50000 %}{% endfor %}{% endfor %}\n",
        2,
        "stappen",
    ),
    "100-mb-text": ("x\n\n{{ 'x' * 100000000 }}\n", 3, "groter dan"),
    "huge-filter-width": ("{{ 'x'|center(100000000) }}\n", 1, "groter dan"),
    "huge-output": ("{% for a in range(100000) %}{{ 'x' * 4000 }}{% endfor %}\n", 1, "groter"),
    "doubling-join": (
        "{% set ns = namespace(x='ab') %}\n{% for i in range(60) %}"
        "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}\n",
        2,
        "groter dan",
    ),
    "power": ("{{ 10 ** 100000000 }}\n", 1, "macht"),
    "division-by-zero": ("a\nb\n{{ 1 / 0 }}\n", 3, "ZeroDivisionError"),
    "python-type-error": ("a\n{{ '%d'|format('x') }}\n", 2, "TypeError"),
    "deep-recursion": (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}\n",
        1,
        "Error",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_override_is_refused_with_file_and_line_within_the_budget(
    tmp_path: Path, name: str
) -> None:
    content, line, gist = HOSTILE[name]
    (tmp_path / "case_manager.txt").write_text(content, encoding="utf-8")
    started = time.monotonic()
    problems = check_template_overrides(tmp_path)
    assert time.monotonic() - started < budget.MAX_SECONDS + 10
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'case_manager.txt'}:{line}:"), problems
    assert gist in problems[0]
    assert "Traceback" not in problems[0] and len(problems[0]) < 600


def test_the_time_budget_stops_a_slow_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "MAX_SECONDS", 0.2)
    (tmp_path / "case_manager.txt").write_text(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    problems = check_template_overrides(tmp_path)
    assert time.monotonic() - started < 5
    assert "seconden" in problems[0]


def test_the_product_templates_and_a_good_override_render_within_the_budget(
    tmp_path: Path,
) -> None:
    lines = [dataclasses.replace(LINE, case_ref=f"Z-{i}") for i in range(2000)]
    msg = compose_case_manager(RECIPIENT, AS_OF, lines, MailOptions())
    assert "Z-1999" in msg.text or "2000" in msg.text
    (tmp_path / "case_manager.txt").write_text(
        "{% for i in range(3) %}{{ i ~ '-' }}{% endfor %} {{ counts.total }}\n", encoding="utf-8"
    )
    assert check_template_overrides(tmp_path) == []
    own = compose_case_manager(RECIPIENT, AS_OF, lines, MailOptions(templates_dir=tmp_path))
    assert own.text == "0-1-2- 2000\n"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["python-type-error", "nested-loops"])
def test_every_refusal_has_its_run_row(tmp_path: Path, name: str) -> None:
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(30, 3, AS_OF, cases, staff)
    source_url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    engine = sa.create_engine(source_url)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    overrides = tmp_path / "sjablonen"
    overrides.mkdir()
    (overrides / "case_manager.txt").write_text(HOSTILE[name][0], encoding="utf-8")
    settings = dataclasses.replace(
        load_settings(env={}),
        source_url=source_url,
        store_url=store_url,
        workers=1,
        mail_enabled=False,
        mail_templates_dir=overrides,
    )
    upgrade_store(settings)
    with pytest.raises(RunRefused) as refused:
        run(settings, RunOptions(AS_OF, force=True))
    assert refused.value.details[0].startswith(f"{overrides / 'case_manager.txt'}:")
    store = sa.create_engine(store_url)
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 0
        assert conn.execute(sa.select(runs.c.status)).scalars().all() == ["refused"]
    store.dispose()


@pytest.mark.parametrize("full_list", ["attachment", "both"])
def test_the_product_templates_give_the_same_bytes_with_and_without_the_budget(
    tmp_path: Path, full_list: str
) -> None:
    """The product's own templates render without counting steps (issue 19); in the
    budgeted sandbox (an override directory without overrides) they give the same bytes."""
    lines = [
        dataclasses.replace(LINE, case_ref=f"Z-{i}", severity=("high", "low")[i % 2])
        for i in range(60)
    ]
    options = MailOptions(full_list=full_list, full_list_weekday=AS_OF.weekday())
    plain = compose_case_manager(RECIPIENT, AS_OF, lines, options)
    budgeted = compose_case_manager(
        RECIPIENT, AS_OF, lines, dataclasses.replace(options, templates_dir=tmp_path)
    )
    assert plain == budgeted
    assert "Z-59" in (plain.attachment_html or plain.html)


def test_the_product_templates_read_no_dictionary_method_by_attribute() -> None:
    """The product's sandbox looks a view dictionary's key up before its attributes
    (issue 19); that gives what Jinja's own order gives only while no product template
    reads a name of a ``dict`` method (``items``, ``get``, ...) by attribute. Every
    attribute read in every product template is checked here."""
    from jinja2 import nodes as jnodes

    from regiesignaal.notifications.compose.render import TEMPLATE_DIR, environment

    env = environment(None)
    methods = {name for name in dir(dict) if not name.startswith("_")}
    read: set[str] = set()
    files = sorted(Path(TEMPLATE_DIR).glob("*.*"))
    assert len(files) >= 10
    for path in files:
        tree = env.parse(path.read_text(encoding="utf-8"))
        read |= {node.attr for node in tree.find_all(jnodes.Getattr)}
    assert {"case_ref", "lines", "count"} <= read  # the walk sees the templates' reads
    assert not read & methods, sorted(read & methods)


def test_the_product_sandbox_gives_a_view_key_as_jinja_does() -> None:
    """Keys, attributes of other objects, and a missing key: the same as Jinja's order."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    ours = budget.ProductSandbox(undefined=jinja2.StrictUndefined)
    theirs = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    source = "{{ v.a }}|{{ v.count }}|{{ d.year }}|{{ s.upper() }}|{{ v.get('a') }}"
    context = {"v": {"a": "<x>", "count": 3}, "d": AS_OF, "s": "ab"}
    assert ours.from_string(source).render(context) == (theirs.from_string(source).render(context))
    for env in (ours, theirs):
        with pytest.raises(jinja2.UndefinedError):
            env.from_string("{{ v.missing }}").render(context)
        with pytest.raises(jinja2.exceptions.SecurityError):
            env.from_string("{{ s.__class__.__mro__ }}").render(context)
