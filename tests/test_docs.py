"""The docs stay true: every link resolves, every command is documented (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from regiesignaal.jobs.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_anchor(m.group(1)) for m in re.finditer(r"(?m)^#{1,6} (.+)$", text)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in _anchors(linked)
        ):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_the_anchor_of_a_heading_is_githubs() -> None:
    assert _anchor("Delivery under faults") == "delivery-under-faults"
    assert _anchor("10. Hulp van de editor: het JSON Schema in VS Code") == (
        "10-hulp-van-de-editor-het-json-schema-in-vs-code"
    )


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150, "reference belongs in docs/"
    assert "make demo" in readme and "make test" in readme
    for page in ("operations", "configuration", "commands", "rule-language", "architecture"):
        assert f"docs/{page}.md" in readme


def test_every_command_is_documented() -> None:
    commands = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None
        subcommands = (
            [f"{name} {sub}" for sub in command.list_commands(ctx)]
            if isinstance(command, click.Group)
            else [name]
        )
        for documented in subcommands:
            assert f"`{documented}" in commands, f"{documented} is missing from docs/commands.md"
