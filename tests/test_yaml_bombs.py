"""Rule files that attack the YAML reader (issue 17, item 13): anchors, aliases, merge keys and
tags are refused on the parser's event stream before anything composes or walks the document,
and the size limit applies before a byte is read."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.language.rulefile.model import MAX_FILE_BYTES
from regiesignaal.jobs.cli import main

GOOD = (
    "id: GOOD\ntitle: t\nmail_title: t\ndescription: d\nseverity: low\nowner: x\n"
    "when:\n  opened_on: {older_than: 14d}\nexpected_action: a\n"
)


def laughs(width: int = 9, depth: int = 9) -> str:
    """The classic "billion laughs": ``depth`` lines, each ``width`` aliases of the one before
    (9 x 9: 387 million nodes when walked)."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, depth):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _refused(folder: Path, name: str) -> str:
    problems = [p for p in load_rule_dir(folder).problems if Path(p.path).name == name]
    assert len(problems) == 1, problems
    return str(problems[0])


def test_a_nine_line_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bomb.yaml").write_text(laughs(), encoding="utf-8")
    started = time.monotonic()
    problem = _refused(tmp_path, "bomb.yaml")
    assert time.monotonic() - started < 5
    assert "bomb.yaml:1:" in problem and "ankers en -verwijzingen" in problem
    result = CliRunner().invoke(main, ["rules", "check", str(tmp_path)])
    assert result.exit_code == 1 and "ankers en -verwijzingen" in result.output


def test_a_deep_alias_chain_inside_a_rule_is_refused_before_the_depth_walk(
    tmp_path: Path,
) -> None:
    body = GOOD.replace("when:\n", "x: &x0 [[[[[[[[1]]]]]]]]\n" + laughs(12, 12) + "when:\n")
    (tmp_path / "good.yaml").write_text(body, encoding="utf-8")
    started = time.monotonic()
    assert "ankers en -verwijzingen" in _refused(tmp_path, "good.yaml")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("text", "gist", "line"),
    [
        ("a: &anchor 1\nb: 2\n", "ankers", 1),
        ("a: 1\nb: *undefined\n", "ankers", 2),  # an alias without anchor: still refused
        ("a: 1\n<<: {b: 2}\n", "ankers", 2),  # merge key without alias
        ("a: !!python/object/apply:os.system [ls]\n", "YAML-tags", 1),
        ("a: !local 1\n", "YAML-tags", 1),
        ("a:\n  - !!set {x: null}\n", "YAML-tags", 2),
        ("a: [" * 5 + "]" * 5 + "\nb: &c [1]\n", "ankers", 2),
    ],
)
def test_anchors_aliases_and_tags_are_refused_with_their_line(
    tmp_path: Path, text: str, gist: str, line: int
) -> None:
    (tmp_path / "x.yaml").write_text(text, encoding="utf-8")
    problem = _refused(tmp_path, "x.yaml")
    assert gist in problem and f"x.yaml:{line}:" in problem


def test_a_quoted_merge_key_and_text_with_ampersands_are_plain_data(tmp_path: Path) -> None:
    text = GOOD.replace("title: t\n", "title: '<<'\n").replace(
        "description: d\n", "description: 'zie &a en *b'\n"
    )
    (tmp_path / "good.yaml").write_text(text, encoding="utf-8")
    rd = load_rule_dir(tmp_path)
    assert not rd.problems and [r.id for r in rd.rules] == ["GOOD"]


def test_the_size_limit_applies_before_reading(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(50 * 1024**3)  # sparse: 50 GB that would take minutes to read
    started = time.monotonic()
    problem = _refused(tmp_path, "huge.yaml")
    assert "te groot" in problem and str(MAX_FILE_BYTES) in problem
    assert time.monotonic() - started < 5


def test_a_named_pipe_as_rule_file_does_not_block(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.yaml")  # nobody writes: a blocking open would hang for ever
    assert "geen gewoon bestand" in _refused(tmp_path, "pipe.yaml")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    width=st.integers(2, 40),
    depth=st.integers(2, 40),
    indent=st.booleans(),
    prefix=st.sampled_from(["", "# commentaar\n", "id: X\n", "---\n"]),
)
def test_any_alias_bomb_is_refused_quickly(
    tmp_path: Path, width: int, depth: int, indent: bool, prefix: str
) -> None:
    body = laughs(width, depth)
    if indent:  # the same bomb as nested block mappings
        body = "top:\n" + "".join("  " + line + "\n" for line in body.splitlines())
    (tmp_path / "bomb.yaml").write_text(prefix + body, encoding="utf-8")
    started = time.monotonic()
    problem = _refused(tmp_path, "bomb.yaml")
    assert "ankers en -verwijzingen" in problem
    assert time.monotonic() - started < 5
