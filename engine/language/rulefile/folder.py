"""Loading a whole rule folder: every file read and checked, the catalogue built, tests joined.

``load_rule_dir`` never raises for bad content: it goes on through the whole folder so one
check shows every problem at once, each as ``path:line:column: message`` with a hint.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from regiesignaal.engine.language.catalogue import (
    Catalogue,
    FieldInfo,
    case_fields,
    record_fields,
    suggest,
)
from regiesignaal.engine.language.rulefile.common import Context, check_keys, pos_of
from regiesignaal.engine.language.rulefile.derived import parse_derived
from regiesignaal.engine.language.rulefile.model import (
    DERIVED_FILE,
    MAX_FILE_BYTES,
    PRIORITY_FILE,
    TESTS_SUFFIX,
    DerivedField,
    Problem,
    Rule,
    RuleDir,
)
from regiesignaal.engine.language.rulefile.priority import parse_priority
from regiesignaal.engine.language.rulefile.rules import parse_rule
from regiesignaal.engine.language.rulefile.testcases import parse_tests
from regiesignaal.engine.language.rulefile.yamlfile import read_yaml


def build_catalogue(derived: Iterable[DerivedField], broken: Iterable[str] = ()) -> Catalogue:
    fields: dict[str, FieldInfo] = dict(case_fields())
    for d in derived:
        values: tuple[str, ...] = ()
        if d.kind == "values":  # the choices of the source field, for `contains`
            group, name = d.sources[0]
            values = record_fields(group)[name].values
        fields[d.name] = FieldInfo(
            d.name,
            d.type,  # type: ignore[arg-type]
            d.description,
            values,
            "afgeleid",
            never_missing=d.kind in ("count", "exists", "values"),
        )
    return Catalogue(fields, broken)


def _content_for_version(path: Path) -> bytes:
    """What the rule set's version hashes of one file: its bytes, but never more than
    ``MAX_FILE_BYTES`` read, and nothing read from a pipe or device (``read_yaml`` refuses
    such files, so they never reach a run)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return f"refused:{info.st_mode}:{info.st_size}".encode()
        with path.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        return b"unreadable"


def load_rule_dir(root: Path) -> RuleDir:
    """Read and check a whole rule directory. Never raises for bad content."""
    root = Path(root)
    result = RuleDir(root)
    if not root.is_dir():
        result.problems.append(
            Problem(str(root), 0, 0, "map met regels niet gevonden", "geef de juiste map op")
        )
        return result
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and not p.is_dir())
    for p in files:
        digest.update(p.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(_content_for_version(p))
        digest.update(b"\0")
    result.version = digest.hexdigest()[:12]

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return str(p)

    derived_path = root / DERIVED_FILE
    broken: set[str] = set()
    if derived_path.exists():
        node = read_yaml(derived_path, rel(derived_path), result.problems)
        result.derived = parse_derived(node, rel(derived_path), result.problems)
        if isinstance(node, Mapping):
            broken = {str(k) for k in node} - {d.name for d in result.derived}
    result.catalogue = build_catalogue(result.derived, broken)
    priority_path = root / PRIORITY_FILE
    if priority_path.exists():
        node = read_yaml(priority_path, rel(priority_path), result.problems)
        result.factors = parse_priority(node, rel(priority_path), result.catalogue, result.problems)
    seen: dict[str, str] = {}
    declared: set[str] = set()  # ids named in rule files, also those with problems
    beside: list[tuple[Path, Any]] = []
    for p in files:
        if p in (derived_path, priority_path):
            continue
        if p.name.endswith(TESTS_SUFFIX):
            beside.append((p, read_yaml(p, rel(p), result.problems)))
            continue
        node = read_yaml(p, rel(p), result.problems)
        if node is None:
            declared.add(p.stem.upper())
            continue
        if isinstance(node, Mapping) and isinstance(node.get("id"), str):
            declared.add(node["id"])
        rule = parse_rule(node, rel(p), p.stem, result.catalogue, result.problems, root)
        if rule is None:
            continue
        if rule.id in seen:
            result.problems.append(
                Problem(
                    rule.path,
                    rule.line,
                    1,
                    f"id '{rule.id}' staat ook in {seen[rule.id]}",
                    "elke regel heeft een eigen id",
                )
            )
            continue
        seen[rule.id] = rule.path
        result.rules.append(rule)
    by_id = {r.id: i for i, r in enumerate(result.rules)}
    for p, node in beside:
        ctx = Context(rel(p), result.problems)
        if node is None:
            continue
        if not isinstance(node, CommentedMap) or not check_keys(
            node, {"rule": True, "tests": True}, ctx, "een testbestand"
        ):
            continue
        rid = node["rule"]
        if not isinstance(rid, str):
            ctx.add(pos_of(node, "rule", value=True), "'rule' moet het id van één regel zijn")
            continue
        if rid not in by_id:
            if rid in declared:
                continue  # the rule itself has problems, reported in its own file
            ctx.add(
                pos_of(node, "rule", value=True),
                f"onbekende regel {rid!r}",
                suggest(str(rid), by_id),
            )
            continue
        extra = parse_tests(node["tests"], pos_of(node, "tests"), ctx, str(rid))
        i = by_id[rid]
        old = result.rules[i]
        result.rules[i] = Rule(**{**old.__dict__, "tests": old.tests + extra})
    result.rules.sort(key=lambda r: r.id)
    result.problems.extend(covers_problems(result.rules, declared))
    return result


def covers_problems(rules: list[Rule], declared: set[str]) -> list[Problem]:
    """``covers`` names rules of this folder, and no rule covers itself through others."""
    out: list[Problem] = []
    ids = {r.id for r in rules}
    for rule in rules:
        for other in rule.covers:
            if other not in ids and other not in declared:
                out.append(
                    Problem(
                        rule.path,
                        rule.line,
                        1,
                        f"regel {rule.id}: 'covers' noemt een regel die niet in de map staat",
                        suggest(other, ids) or "noem alleen regels uit deze map",
                    )
                )
    graph = {r.id: [c for c in r.covers if c in ids] for r in rules}
    by_id = {r.id: r for r in rules}
    for start in sorted(graph):
        stack, seen = list(graph[start]), set()
        while stack:
            node = stack.pop()
            if node == start:
                rule = by_id[start]
                out.append(
                    Problem(
                        rule.path,
                        rule.line,
                        1,
                        f"regel {start} omvat via 'covers' uiteindelijk zichzelf",
                        "een regel omvat alleen smallere regels; haal de kring weg",
                    )
                )
                break
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))
    return out
