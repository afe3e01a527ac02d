"""Pulling the case plans from a drop folder (``[intake] drop_dir``).

The case system's nightly export arrives as one sub-folder per export in the drop folder::

    <drop_dir>/<export name>/cases.jsonl      case plans, one JSON object per line
    <drop_dir>/<export name>/staff.jsonl      staff directory, one JSON object per line
    <drop_dir>/<export name>/MANIFEST.json    written LAST: the completeness marker

``MANIFEST.json`` lists, per file, its SHA-256 and its number of lines::

    {"files": {"cases.jsonl": {"sha256": "<hex>", "lines": 1900},
               "staff.jsonl": {"sha256": "<hex>", "lines": 120}}}

An export folder without a manifest is still arriving and is left alone. Of the complete
exports, the newest (by folder name: use a sortable timestamp such as
``2026-03-02T0300``) is taken; older complete ones are archived unread.

The export is validated first, in a scratch database: the checksums and line counts must
match the manifest and every line of both files must load. Then it replaces the whole
source (every case, list and staff row) in ONE transaction, so a half or broken export
never becomes the truth: when anything is wrong the export is refused, the source keeps
yesterday's data, no signal is closed, the operator is alerted (by the nightly job), and
the export is moved to ``<drop_dir>/refused/``. Processed exports go to
``<drop_dir>/archive/``, which retention empties after ``[retention] export_days``.
Messages name files and lines, never values.

Which export became the source, and for which as-of date, is recorded in
``<drop_dir>/.regiesignaal-accepted.json`` (``{"export": name, "as_of": "YYYY-MM-DD"}``).
A re-run of a night (after a refused, failed or aborted run) finds no new export; when the
export accepted for that same as-of date is still the source, it goes on with it
(``PullResult.reused``). Only when no export was accepted for the night (the source would
be the previous night's) is the pull refused.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.source.tables import CHILD_TABLES, cases, create_source_schema, staff
from regiesignaal.engine.store.db import engine_options, ensure_sqlite_dir
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.ops import dropfolder

log = logging.getLogger("regiesignaal.intake")

MANIFEST = "MANIFEST.json"
FILES = ("cases.jsonl", "staff.jsonl")
ACCEPTED = ".regiesignaal-accepted.json"
COPY_BATCH = 2000
OWN = ("archive", "refused", ACCEPTED)
MAX_MANIFEST = 64 * 1024
"""A manifest larger than this is not parsed."""
_SHA256 = re.compile(r"[0-9a-fA-F]{64}\Z")


@dataclass
class PullResult:
    export_name: str | None = None
    refused: bool = False
    reused: bool = False  # no new export: the one accepted for this as-of date stays
    cases: int = 0
    staff: int = 0
    problems: list[str] = field(default_factory=list)


def complete_exports(drop_dir: Path) -> list[Path]:
    """Export folders with a manifest, oldest first (by name): real folders (not links) with
    a name the product takes (``dropfolder.SAFE_NAME``); anything else is left alone."""
    try:
        with dropfolder.opened_dir(drop_dir) as drop:
            return [drop_dir / name for name in _complete(drop)]
    except dropfolder.DropFolderError:
        return []


def _complete(drop: int) -> list[str]:
    names: list[str] = []
    ignored = 0
    for name in sorted(os.listdir(drop)):
        if name in OWN or name.startswith("."):
            continue
        if not dropfolder.SAFE_NAME.match(name) or dropfolder.kind(drop, name) != "dir":
            ignored += 1
            continue
        try:
            with dropfolder.subdir(drop, name, Path(name)) as export:
                if dropfolder.kind(export, MANIFEST) is not None:
                    names.append(name)
        except dropfolder.DropFolderError:
            ignored += 1
    if ignored:
        log.warning("drop folder: %d entries ignored (not a real folder or a name not taken)",
                    ignored)  # fmt: skip
    return names


def _manifest_entries(data: bytes, shown: Path) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """The checked (sha256, lines) per file of a manifest; problems name keys, never values."""
    hint = "schrijf het met 'regiesignaal intake manifest MAP'"
    try:
        manifest = json.loads(data.decode("utf-8-sig"))
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):
        return {}, [f"{shown}: geen geldig manifest (JSON met 'files'); {hint}"]
    entries: dict[str, tuple[str, int]] = {}
    problems: list[str] = []
    for name in FILES:
        entry = files.get(name)
        if not isinstance(entry, dict) or "sha256" not in entry or "lines" not in entry:
            problems.append(f"{shown}: '{name}' ontbreekt of mist sha256/lines; {hint}")
            continue
        digest, lines = entry["sha256"], entry["lines"]
        if not isinstance(digest, str) or not _SHA256.match(digest):
            problems.append(
                f"{shown}: 'sha256' van '{name}' is geen SHA-256 (64 hexadecimale tekens); {hint}"
            )
            continue
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 0:
            problems.append(f"{shown}: 'lines' van '{name}' is geen aantal regels; {hint}")
            continue
        entries[name] = (digest.lower(), lines)
    return entries, problems


def _take(drop: int, drop_dir: Path, name: str, tmp: Path) -> list[str]:
    """Copy the export's files into ``tmp`` (read without following links) and check them
    against the manifest; the problems (empty: complete)."""
    export_path = drop_dir / name
    try:
        with dropfolder.subdir(drop, name, export_path) as export:
            data = dropfolder.read_regular(export, MANIFEST, export_path / MANIFEST, MAX_MANIFEST)
            entries, problems = _manifest_entries(data, export_path / MANIFEST)
            for file_name, (digest, lines) in entries.items():
                shown = export_path / file_name
                try:
                    got, counted = dropfolder.copy_regular(
                        export, file_name, shown, tmp / file_name
                    )
                except dropfolder.DropFolderError as exc:
                    problems.append(str(exc))
                    continue
                if got != digest:
                    problems.append(
                        f"{shown}: controlegetal klopt niet (bestand onvolledig of gewijzigd)"
                    )
                if counted != lines:
                    problems.append(
                        f"{shown}: {counted} regels, het manifest noemt een ander aantal"
                    )
            return problems
    except dropfolder.DropFolderError as exc:
        return [str(exc)]


def verify_manifest(export: Path) -> list[str]:
    """Problems with the export's files against its manifest (empty list: complete)."""
    with tempfile.TemporaryDirectory(prefix="regiesignaal-intake-") as tmp:
        try:
            with dropfolder.opened_dir(export.parent) as drop:
                return _take(drop, export.parent, export.name, Path(tmp))
        except dropfolder.DropFolderError as exc:
            return [str(exc)]


def _stage(export: Path, copies: Path, scratch_url: str, result: PullResult) -> None:
    """Load the private copies in ``copies`` into the scratch database; problems name the
    export's own files."""
    engine = sa.create_engine(scratch_url)
    try:
        staff_report = load_staff_file(engine, copies / "staff.jsonl")
        case_report = load_cases(engine, copies / "cases.jsonl")
    finally:
        engine.dispose()
    for report, name in ((staff_report, "staff.jsonl"), (case_report, "cases.jsonl")):
        result.problems.extend(
            p.replace(str(copies / name), str(export / name), 1)
            for p in report.problems
            if "waarschuwing" not in p
        )
    result.staff, result.cases = staff_report.loaded, case_report.loaded
    if staff_report.rejected or case_report.rejected:
        result.refused = True
    if case_report.loaded == 0:
        result.refused = True
        result.problems.append(f"{export / 'cases.jsonl'}: geen enkele zaak geladen")


def _replace_source(scratch_url: str, source: sa.Engine) -> None:
    """Copy every source table from the scratch database in one transaction."""
    scratch = sa.create_engine(scratch_url)
    create_source_schema(source)
    tables = [cases, *(c.table for c in CHILD_TABLES), staff]
    try:
        with scratch.connect() as src, source.begin() as dst:
            for table in reversed(tables):
                dst.execute(table.delete())
            for table in tables:
                rows = src.execute(sa.select(table)).mappings()
                while batch := rows.fetchmany(COPY_BATCH):
                    dst.execute(table.insert(), [dict(r) for r in batch])
    finally:
        scratch.dispose()


def accepted_export(drop_dir: Path) -> tuple[str, dt.date] | None:
    """The export that last became the source and its as-of date (None: not recorded, or
    the marker is not the product's own regular file)."""
    try:
        with dropfolder.opened_dir(drop_dir) as drop:
            return _accepted(drop, drop_dir)
    except dropfolder.DropFolderError:
        return None


def _accepted(drop: int, drop_dir: Path) -> tuple[str, dt.date] | None:
    try:
        data = dropfolder.read_regular(drop, ACCEPTED, drop_dir / ACCEPTED, 4096)
        record = json.loads(data.decode("utf-8"))
        return str(record["export"]), dt.date.fromisoformat(record["as_of"])
    except (dropfolder.DropFolderError, ValueError, KeyError, TypeError):
        return None


def _check_own(drop: int, drop_dir: Path) -> None:
    """The product's own names in the drop folder are a real folder and a regular file."""
    for name in ("archive", "refused"):
        dropfolder.check_own_dir(drop, name, drop_dir / name)
    dropfolder.check_own_file(drop, ACCEPTED, drop_dir / ACCEPTED)


def _move(drop: int, drop_dir: Path, name: str, folder: str) -> None:
    with dropfolder.subdir(drop, folder, drop_dir / folder, create=True) as target:
        dropfolder.move(drop, name, target)


def pull(settings: Settings, as_of: dt.date | None = None) -> PullResult:
    """Take the newest complete export into the source (see module); never raises for a
    bad export or drop folder. Nothing happens (an empty result) without ``[intake] drop_dir``.

    ``as_of``: the night the export is for (default: today in ``[run] timezone``). With no
    new export, the pull goes on (``reused``) when the export accepted for this same date
    is still the source, and is refused otherwise."""
    if settings.drop_dir is None:
        return PullResult()
    day = as_of or dt.datetime.now(settings.tz).date()
    try:
        with dropfolder.opened_dir(settings.drop_dir) as drop:
            _check_own(drop, settings.drop_dir)
            return _pull(settings, drop, day)
    except dropfolder.DropFolderError as exc:
        log.warning("drop folder refused: not the product's own folders")
        return PullResult(refused=True, problems=[str(exc)])


def _pull(settings: Settings, drop: int, day: dt.date) -> PullResult:
    drop_dir = settings.drop_dir
    assert drop_dir is not None
    exports = _complete(drop)
    if not exports:
        accepted = _accepted(drop, drop_dir)
        if accepted is not None and accepted[1] == day:
            log.info("no new export: export %s accepted for %s stays the source", *accepted)
            return PullResult(export_name=accepted[0], reused=True)
        return PullResult(
            refused=True,
            problems=[
                f"{drop_dir}: geen nieuwe volledige levering (map met {MANIFEST}); de "
                "gegevens van de vorige levering blijven staan"
            ],
        )
    newest = exports[-1]
    for older in exports[:-1]:
        _move(drop, drop_dir, older, "archive")
    result = PullResult(export_name=newest)
    with tempfile.TemporaryDirectory(prefix="regiesignaal-intake-") as tmp:
        copies = Path(tmp) / "export"
        copies.mkdir()
        result.problems = _take(drop, drop_dir, newest, copies)
        if result.problems:
            result.refused = True
        else:
            scratch_url = f"sqlite:///{Path(tmp) / 'staging.sqlite'}"
            _stage(drop_dir / newest, copies, scratch_url, result)
            if not result.refused:
                ensure_sqlite_dir(settings.source_url)
                source = sa.create_engine(
                    settings.source_url, **engine_options(settings.source_url)
                )
                try:
                    _replace_source(scratch_url, source)
                finally:
                    source.dispose()
                record = {"export": newest, "as_of": day.isoformat()}
                dropfolder.write_atomic(drop, ACCEPTED, (json.dumps(record) + "\n").encode())
    _move(drop, drop_dir, newest, "refused" if result.refused else "archive")
    log.info(
        "export %s %s: cases=%d staff=%d problems=%d",
        newest,
        "refused" if result.refused else "loaded",
        result.cases,
        result.staff,
        len(result.problems),
    )
    return result


def write_manifest(export: Path) -> Path:
    """Write MANIFEST.json for the files in ``export`` (``regiesignaal intake manifest``):
    each file read without following links, the manifest written through a temporary file
    and a rename. Raises ``DropFolderError`` naming a file that is missing or not a regular
    file."""
    files = {}
    with dropfolder.opened_dir(export) as folder:
        for name in FILES:
            digest, lines = dropfolder.copy_regular(folder, name, export / name)
            files[name] = {"sha256": digest, "lines": lines}
        text = json.dumps({"files": files}, indent=2) + "\n"
        dropfolder.write_atomic(folder, MANIFEST, text.encode("utf-8"))
    return export / MANIFEST
