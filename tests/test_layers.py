"""The rooms of the product and the one direction of their dependencies (issue 15).

Every import in the product's code (at module level, inside functions and under
``TYPE_CHECKING`` alike) is read from the source with ``ast`` and checked against the
layers below, bottom first. A room may import its own layer and the layers below it,
never one above: the rule language knows nothing of the store, the stages nothing of
notifications, notifications nothing of the jobs that run them, and only the command line
imports the command line. There are no import circles between modules, only
``engine.language.durable_backend`` imports durable-rules, and every package folder
ships in the wheel.

See ``docs/architecture.md`` for what each room owns.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {  # repository folder -> import package (pyproject.toml's package-dir)
    "regiesignaal": "regiesignaal",
    "engine": "regiesignaal.engine",
    "fixtures": "regiesignaal.fixtures",
    "jobs": "regiesignaal.jobs",
    "notifications": "regiesignaal.notifications",
}

# Bottom first. A module belongs to the longest prefix that names it.
LAYERS: list[tuple[str, ...]] = [
    (  # the contracts the rule language is written against
        "regiesignaal.engine.language.casefile",
        "regiesignaal.engine.language.catalogue",
        "regiesignaal.engine.language.dates",
        "regiesignaal.engine.language.mailtext",
        "regiesignaal.engine.language.addresses",
        "regiesignaal.engine.language.conditions",
        "regiesignaal.engine.language.packaged",
    ),
    ("regiesignaal.engine.language.rulefile", "regiesignaal.engine.language.schema"),
    ("regiesignaal.engine.language",),  # compiling and evaluating one case
    ("regiesignaal.engine.store",),
    ("regiesignaal.engine",),  # the stages
    ("regiesignaal.fixtures",),
    ("regiesignaal.notifications.delivery",),
    ("regiesignaal.notifications.compose",),
    ("regiesignaal.notifications",),  # the message kinds
    ("regiesignaal.jobs",),
    ("regiesignaal.jobs.cli",),
    ("regiesignaal",),  # python -m regiesignaal
]
DURABLE_RULES = ("durable", "durable_rules_engine", "durable_rules")


def product_modules() -> dict[str, Path]:
    """Every module of the product: dotted name -> file."""
    out: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = product_modules()


def layer_of(module: str) -> int:
    best, level = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return level


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: a relative import; write it in full"
            assert node.module is not None
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield node.lineno, candidate if candidate in MODULES else node.module


def product_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for _, target in imports_of(path):
            if target in MODULES and target != module:
                graph[module].add(target)
    return graph


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 80
    for module in MODULES:
        layer_of(module)


def test_no_room_imports_a_room_above_it() -> None:
    wrong = []
    for module, path in MODULES.items():
        for line, target in imports_of(path):
            if target.split(".")[0] in ("engine", "jobs", "notifications", "fixtures"):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: imports {target} by its folder")
            if target in MODULES and layer_of(target) > layer_of(module):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_would_catch_an_upward_import() -> None:
    assert layer_of("regiesignaal.jobs.pipeline") > layer_of("regiesignaal.engine.reconcile")
    assert layer_of("regiesignaal.jobs.cli.rules") > layer_of("regiesignaal.jobs.pipeline")
    language = layer_of("regiesignaal.engine.language.compiler")
    assert layer_of("regiesignaal.engine.language.rulefile.folder") < language
    assert layer_of("regiesignaal.engine.store.tables") > language


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    assert _cycles(product_graph()) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_durable_backend_imports_durable_rules() -> None:
    importers = {
        module
        for module, path in MODULES.items()
        for _, target in imports_of(path)
        if target.split(".")[0] in DURABLE_RULES
    }
    assert importers == {"regiesignaal.engine.language.durable_backend"}


def test_every_package_folder_ships_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert packages - listed == set(), "add these packages to pyproject.toml"
    dirs = config["tool"]["setuptools"]["package-dir"]
    for folder, package in FOLDERS.items():
        assert dirs[package] == folder


@pytest.mark.parametrize(
    "package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py")
)
def test_every_package_says_what_it_owns_and_may_import(package: str) -> None:
    if package == "regiesignaal.engine.store.migrations" or package.endswith(".versions"):
        pytest.skip("Alembic's own folders")
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
    assert doc, f"{package} has no docstring"
    if package != "regiesignaal":
        assert "May import" in doc or "may import" in doc, f"{package}: say what it may import"
