"""The rule sets that checked, by version hash (table ``rule_sets``, migration 0009).

Every run whose rule folder checks keeps a copy of the folder's rule files here (once per
version: the version is the hash of exactly these files, see
``engine.language.rulefile.folder``). When the folder breaks later, a night can run with
the newest copy (``[rules] on_broken = "last_good"``, jobs/pipeline.py): it is written to
a temporary folder of the run's own and read from there like any rule folder.

Rows, not decisions: which set to use, and when, is the pipeline's business.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import sqlalchemy as sa

from regiesignaal.engine.store.tables import rule_sets

KEEP = 20  # versions kept; older ones are deleted when a new one is remembered
SUFFIXES = (".yaml", ".yml")  # the files a rule folder's version covers


@dataclass(frozen=True)
class StoredRuleSet:
    version: str
    files: dict[str, str]  # relative POSIX path -> text
    checked_at: dt.datetime


def read_files(root: Path) -> dict[str, str]:
    """The rule files of a folder as relative POSIX path -> text (what its version covers).

    Symbolic links are not followed out of the folder: a file that resolves outside it is
    left out (it would not be part of a copy either)."""
    root = Path(root)
    real_root = root.resolve()
    out: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        if not path.resolve().is_relative_to(real_root):
            continue
        out[path.relative_to(root).as_posix()] = path.read_bytes().decode("utf-8")
    return out


def remember(
    store: sa.Engine, version: str, files: dict[str, str], now: dt.datetime | None = None
) -> bool:
    """Keep ``files`` as rule set ``version`` (checked now); True when it was new.

    A version seen before only gets its ``checked_at`` moved on, so the newest row is
    always the set that checked last."""
    now = now or dt.datetime.now(dt.UTC)
    with store.begin() as conn:
        moved = conn.execute(
            rule_sets.update().where(rule_sets.c.version == version).values(checked_at=now)
        ).rowcount
        if moved:
            return False
        conn.execute(rule_sets.insert().values(version=version, files=files, checked_at=now))
        old = conn.execute(
            sa.select(rule_sets.c.version)
            .order_by(rule_sets.c.checked_at.desc(), rule_sets.c.version)
            .offset(KEEP)
        ).scalars()
        stale = list(old)
        if stale:
            conn.execute(rule_sets.delete().where(rule_sets.c.version.in_(stale)))
    return True


def last_good(store: sa.Engine) -> StoredRuleSet | None:
    """The rule set that checked most recently, or None."""
    with store.connect() as conn:
        row = conn.execute(
            sa.select(rule_sets).order_by(rule_sets.c.checked_at.desc()).limit(1)
        ).first()
    if row is None:
        return None
    return StoredRuleSet(str(row.version), dict(row.files), row.checked_at)


def of_version(store: sa.Engine, version: str) -> StoredRuleSet | None:
    """The kept rule set ``version`` (e.g. the one a run used), or None when it is not
    (or no longer) kept."""
    with store.connect() as conn:
        row = conn.execute(sa.select(rule_sets).where(rule_sets.c.version == version)).first()
    if row is None:
        return None
    return StoredRuleSet(str(row.version), dict(row.files), row.checked_at)


def write_files(files: dict[str, str], directory: Path) -> Path:
    """Write a stored rule set into the (empty, own) ``directory``; returns it.

    Only plain relative paths are written: one that is absolute or climbs out with
    ``..`` raises ValueError (a damaged row must not write outside the folder)."""
    directory = Path(directory)
    for name, text in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError("opgeslagen regelset bevat een ongeldig pad")
        target = directory.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
    return directory
