"""Operator template overrides: used when good, refused with file and line when broken,
always in the same sandbox, and a broken override stops the run before any mail."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.store.tables import outbox, runs
from regiesignaal.fixtures.generator import generate
from regiesignaal.jobs.config import load_settings
from regiesignaal.jobs.pipeline import RunOptions, RunRefused, run, upgrade_store
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


def test_a_good_override_is_used(tmp_path: Path) -> None:
    (tmp_path / "case_manager.txt").write_text(
        "Eigen tekst {{ as_of }}: {{ counts.total }} open.\n", encoding="utf-8"
    )
    assert check_template_overrides(tmp_path) == []
    msg = compose_case_manager(RECIPIENT, AS_OF, [LINE], MailOptions(templates_dir=tmp_path))
    assert msg.text == "Eigen tekst 30-11-2026: 1 open.\n"
    assert "Titel" in msg.html  # the HTML template was not overridden


@pytest.mark.parametrize(
    ("name", "content", "line", "gist"),
    [
        ("case_manager.html", "<p>\n{% for x in %}\n</p>\n", 2, "TemplateSyntaxError"),
        ("team_digest.txt", "a\nb\n{{ nergens.veld }}\n", 3, "UndefinedError"),
        ("case_manager.txt", "x\n{{ as_of.__class__.__mro__ }}\n", 2, "SecurityError"),
        ("case_manger.html", "<p>typo</p>", 1, "onbekend sjabloon"),
    ],
)
def test_a_broken_override_is_named_with_file_and_line(
    tmp_path: Path, name: str, content: str, line: int, gist: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    problems = check_template_overrides(tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / name}:{line}:"), problems
    if gist != "TemplateSyntaxError":
        assert gist in problems[0]


@pytest.mark.slow
def test_a_broken_override_refuses_the_run_before_any_mail(tmp_path: Path) -> None:
    cases, staff = tmp_path / "cases.jsonl", tmp_path / "staff.jsonl"
    generate(60, 3, AS_OF, cases, staff)
    source_url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    engine = sa.create_engine(source_url)
    load_staff_file(engine, staff)
    load_cases(engine, cases)
    engine.dispose()
    overrides = tmp_path / "sjablonen"
    overrides.mkdir()
    (overrides / "team_digest.html").write_text("{% if %}\n", encoding="utf-8")
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
    assert "sjablonen" in str(refused.value)
    assert refused.value.details[0].startswith(f"{overrides / 'team_digest.html'}:1:")
    store = sa.create_engine(store_url)
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 0
        assert conn.execute(sa.select(runs.c.status)).scalars().all() == ["refused"]
    store.dispose()


def test_every_broken_override_is_named_at_once(tmp_path: Path) -> None:
    """An unknown file name does not hide a syntax error in another override."""
    (tmp_path / "casemanager.txt").write_text("x\n", encoding="utf-8")
    (tmp_path / "case_manager.html").write_text("<p>{{ intro }</p>\n", encoding="utf-8")
    problems = check_template_overrides(tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        str(tmp_path / "casemanager.txt"),
        str(tmp_path / "case_manager.html"),
    ]


def test_mail_preview_refuses_a_broken_override_with_file_and_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from regiesignaal.jobs.cli import main

    overrides = tmp_path / "sjablonen"
    overrides.mkdir()
    (overrides / "case_manager.html").write_text("<p>{{ intro }</p>\n", encoding="utf-8")
    config = tmp_path / "regiesignaal.toml"
    config.write_text(f'[mail]\ntemplates_dir = "{overrides}"\n', encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["--config", str(config), "mail", "preview", "--recipient", "rv-1", "--out", "uit"],
    )
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{overrides / 'case_manager.html'}:1:" in result.output
