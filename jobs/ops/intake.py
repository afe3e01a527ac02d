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
import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.source.load import load_cases, load_staff_file
from regiesignaal.engine.source.tables import CHILD_TABLES, cases, create_source_schema, staff
from regiesignaal.engine.store.db import engine_options, ensure_sqlite_dir
from regiesignaal.jobs.config import Settings

log = logging.getLogger("regiesignaal.intake")

MANIFEST = "MANIFEST.json"
FILES = ("cases.jsonl", "staff.jsonl")
ACCEPTED = ".regiesignaal-accepted.json"
COPY_BATCH = 2000


@dataclass
class PullResult:
    export_name: str | None = None
    refused: bool = False
    reused: bool = False  # no new export: the one accepted for this as-of date stays
    cases: int = 0
    staff: int = 0
    problems: list[str] = field(default_factory=list)


def complete_exports(drop_dir: Path) -> list[Path]:
    """Export folders with a manifest, oldest first (by name)."""
    if not drop_dir.is_dir():
        return []
    return sorted(
        p
        for p in drop_dir.iterdir()
        if p.is_dir() and p.name not in ("archive", "refused") and (p / MANIFEST).is_file()
    )


def _sha256_and_lines(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    lines = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    return digest.hexdigest(), lines


def verify_manifest(export: Path) -> list[str]:
    """Problems with the export's files against its manifest (empty list: complete)."""
    problems: list[str] = []
    try:
        manifest = json.loads((export / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, Any] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{export / MANIFEST}: geen geldig manifest (JSON met 'files'); zie de README"]
    for name in FILES:
        path = export / name
        entry = files.get(name) if isinstance(files, dict) else None
        if not isinstance(entry, dict) or "sha256" not in entry or "lines" not in entry:
            problems.append(f"{export / MANIFEST}: '{name}' ontbreekt of mist sha256/lines")
            continue
        if not path.is_file():
            problems.append(f"{path}: bestand ontbreekt")
            continue
        digest, lines = _sha256_and_lines(path)
        if digest != str(entry["sha256"]).lower():
            problems.append(f"{path}: controlegetal klopt niet (bestand onvolledig of gewijzigd)")
        if lines != entry["lines"]:
            problems.append(f"{path}: {lines} regels, het manifest noemt er {entry['lines']}")
    return problems


def _stage(export: Path, scratch_url: str, result: PullResult) -> None:
    engine = sa.create_engine(scratch_url)
    try:
        staff_report = load_staff_file(engine, export / "staff.jsonl")
        case_report = load_cases(engine, export / "cases.jsonl")
    finally:
        engine.dispose()
    for report in (staff_report, case_report):
        result.problems.extend(p for p in report.problems if "waarschuwing" not in p)
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


def _move(export: Path, folder: str) -> None:
    target = export.parent / folder / export.name
    target.parent.mkdir(exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    shutil.move(str(export), str(target))


def accepted_export(drop_dir: Path) -> tuple[str, dt.date] | None:
    """The export that last became the source and its as-of date (None: not recorded)."""
    try:
        record = json.loads((drop_dir / ACCEPTED).read_text(encoding="utf-8"))
        return str(record["export"]), dt.date.fromisoformat(record["as_of"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_accepted(drop_dir: Path, export_name: str, as_of: dt.date) -> None:
    record = {"export": export_name, "as_of": as_of.isoformat()}
    (drop_dir / ACCEPTED).write_text(json.dumps(record) + "\n", encoding="utf-8")


def pull(settings: Settings, as_of: dt.date | None = None) -> PullResult:
    """Take the newest complete export into the source (see module); never raises for a
    bad export. Nothing happens (an empty result) without ``[intake] drop_dir``.

    ``as_of``: the night the export is for (default: today in ``[run] timezone``). With no
    new export, the pull goes on (``reused``) when the export accepted for this same date
    is still the source, and is refused otherwise."""
    if settings.drop_dir is None:
        return PullResult()
    day = as_of or dt.datetime.now(settings.tz).date()
    drop_dir = settings.drop_dir
    exports = complete_exports(drop_dir)
    if not exports:
        accepted = accepted_export(drop_dir)
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
        _move(older, "archive")
    result = PullResult(export_name=newest.name)
    result.problems = verify_manifest(newest)
    if result.problems:
        result.refused = True
    else:
        with tempfile.TemporaryDirectory(prefix="regiesignaal-intake-") as tmp:
            scratch_url = f"sqlite:///{Path(tmp) / 'staging.sqlite'}"
            _stage(newest, scratch_url, result)
            if not result.refused:
                ensure_sqlite_dir(settings.source_url)
                source = sa.create_engine(
                    settings.source_url, **engine_options(settings.source_url)
                )
                try:
                    _replace_source(scratch_url, source)
                finally:
                    source.dispose()
                _record_accepted(drop_dir, newest.name, day)
    _move(newest, "refused" if result.refused else "archive")
    log.info(
        "export %s %s: cases=%d staff=%d problems=%d",
        newest.name,
        "refused" if result.refused else "loaded",
        result.cases,
        result.staff,
        len(result.problems),
    )
    return result


def write_manifest(export: Path) -> Path:
    """Write MANIFEST.json for the files in ``export`` (for exporters and tests)."""
    files = {}
    for name in FILES:
        digest, lines = _sha256_and_lines(export / name)
        files[name] = {"sha256": digest, "lines": lines}
    path = export / MANIFEST
    path.write_text(json.dumps({"files": files}, indent=2) + "\n", encoding="utf-8")
    return path
