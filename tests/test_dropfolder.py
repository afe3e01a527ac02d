"""The drop folder under hostile hands (issue 17, item 11): nothing under it is followed as a
link, the product's own folders and marker are checked, no manifest value is repeated, a
byte order mark is accepted, refused exports are purged, ``intake manifest`` writes the
manifest."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from ops_support import make_settings, make_source

from regiesignaal.engine.source.tables import cases as cases_table
from regiesignaal.jobs.cli import main
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.ops import intake, retention

NAME = "2026-03-02T0300"


def _snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root`` (links not followed): its kind and content or target."""
    seen: dict[str, object] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                seen[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                seen[rel] = ("dir",)
            else:
                seen[rel] = ("file", path.read_bytes(), path.stat().st_mtime_ns)
    return seen


@dataclasses.dataclass
class World:
    tmp: Path
    drop: Path
    outside: Path
    case_file: Path
    staff_file: Path
    settings: Settings
    source_url: str

    def export(self, name: str = NAME, *, where: Path | None = None) -> Path:
        folder = (where or self.drop) / name
        folder.mkdir(parents=True)
        shutil.copy(self.case_file, folder / "cases.jsonl")
        shutil.copy(self.staff_file, folder / "staff.jsonl")
        intake.write_manifest(folder)
        return folder

    def cases(self) -> int:
        engine = sa.create_engine(self.source_url)
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(sa.select(sa.func.count()).select_from(cases_table)).scalar_one()
                )
        except sa.exc.OperationalError:
            return 0
        finally:
            engine.dispose()


@pytest.fixture
def world(tmp_path: Path) -> World:
    gen = tmp_path / "gen"
    gen.mkdir()
    _, case_file, staff_file = make_source(gen, cases=20)
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "dir" / "b.txt").write_text("niet van regiesignaal\n")
    (outside / "a.txt").write_text("ook niet\n")
    (outside / NAME).mkdir()  # a folder with the export's name, outside the drop folder
    (outside / NAME / "keep.txt").write_text("blijft\n")
    (outside / "old").mkdir()
    (outside / "old" / "keep.txt").write_text("blijft\n")
    os.utime(outside / "old", (0, 0))
    shutil.copy(case_file, outside / "cases.jsonl")
    source_url = f"sqlite:///{tmp_path / 'source.sqlite'}"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = make_settings(source_url, store_url, drop_dir=drop)
    world = World(tmp_path, drop, outside, case_file, staff_file, settings, source_url)
    outside_export = world.export("valid", where=outside)  # a complete export elsewhere
    assert outside_export.is_dir()
    return world


def _link(path: Path, target: Path) -> None:
    path.symlink_to(target)


def _export_folder_linked(w: World) -> bool:
    w.export()
    _link(w.drop / "2026-03-02T0400", w.outside / "valid")  # newer, but a link
    _link(w.drop / "2026-03-02T0500", w.outside / "missing")  # dangling
    (w.drop / "2026-03-02T0600").symlink_to(w.outside / "a.txt")  # a file
    return True


def _archive_linked(w: World) -> bool:
    w.export()
    _link(w.drop / "archive", w.outside)
    return False


def _archive_dangling(w: World) -> bool:
    w.export()
    _link(w.drop / "archive", w.outside / "missing")
    return False


def _refused_linked(w: World) -> bool:
    (w.export() / "cases.jsonl").write_text("kapot\n")  # refused: goes to refused/
    _link(w.drop / "refused", w.outside)
    return False


def _marker_linked(w: World) -> bool:
    w.export()
    _link(w.drop / intake.ACCEPTED, w.outside / "a.txt")
    return False


def _marker_dangling(w: World) -> bool:
    w.export()
    _link(w.drop / intake.ACCEPTED, w.outside / "new.json")
    return False


def _marker_a_folder(w: World) -> bool:
    w.export()
    (w.drop / intake.ACCEPTED).mkdir()
    return False


def _case_file_linked(w: World) -> bool:
    folder = w.export()
    (folder / "cases.jsonl").unlink()
    _link(folder / "cases.jsonl", w.outside / "cases.jsonl")  # the manifest matches it
    return False


def _staff_dangling(w: World) -> bool:
    folder = w.export()
    (folder / "staff.jsonl").unlink()
    _link(folder / "staff.jsonl", w.outside / "missing.jsonl")
    return False


def _manifest_linked(w: World) -> bool:
    folder = w.export()
    (folder / intake.MANIFEST).unlink()
    _link(folder / intake.MANIFEST, w.outside / "valid" / intake.MANIFEST)
    return False


def _case_file_a_pipe(w: World) -> bool:
    folder = w.export()
    (folder / "cases.jsonl").unlink()
    os.mkfifo(folder / "cases.jsonl")  # opening it for reading must not block
    return False


def _case_file_a_folder(w: World) -> bool:
    folder = w.export()
    (folder / "cases.jsonl").unlink()
    _link(folder / "cases.jsonl", w.outside / "dir")
    return False


def _links_inside_the_export(w: World) -> bool:
    folder = w.export()
    _link(folder / "sub", w.outside / "dir")
    _link(folder / "file", w.outside / "a.txt")
    _link(folder / "dangling", w.outside / "missing")
    return True


def _links_inside_archive(w: World) -> bool:
    w.export()
    archive = w.drop / "archive"
    archive.mkdir()
    _link(archive / NAME, w.outside / NAME)  # where the export is moved to
    _link(archive / "old", w.outside / "old")
    _link(archive / "file", w.outside / "a.txt")
    _link(archive / "dangling", w.outside / "missing")
    return True


def _links_inside_refused(w: World) -> bool:
    (w.export() / "cases.jsonl").write_text("kapot\n")
    refused = w.drop / "refused"
    refused.mkdir()
    _link(refused / NAME, w.outside / NAME)
    _link(refused / "old", w.outside / "old")
    _link(refused / "dangling", w.outside / "missing")
    return False


PLANTS: list[Callable[[World], bool]] = [
    _export_folder_linked,
    _archive_linked,
    _archive_dangling,
    _refused_linked,
    _marker_linked,
    _marker_dangling,
    _marker_a_folder,
    _case_file_linked,
    _staff_dangling,
    _manifest_linked,
    _case_file_a_pipe,
    _case_file_a_folder,
    _links_inside_the_export,
    _links_inside_archive,
    _links_inside_refused,
]


@pytest.mark.parametrize("plant", PLANTS, ids=[p.__name__.strip("_") for p in PLANTS])
def test_planted_links_never_reach_outside_the_drop_folder(
    world: World, plant: Callable[[World], bool]
) -> None:
    loads = plant(world)
    before = _snapshot(world.outside)
    result = intake.pull(world.settings)
    assert result.refused is not loads, result.problems
    if loads:
        assert result.export_name == NAME and world.cases() == 20
    else:
        assert world.cases() == 0, "nothing outside the drop folder became the source"
        assert result.problems
    for problem in result.problems:
        assert "Traceback" not in problem and str(world.drop) in problem
    far_future = time.time() + 10 * 365 * 86400
    retention.purge_exports(world.settings, now=far_future)
    assert _snapshot(world.outside) == before, "nothing outside was read into, moved or deleted"


def test_every_link_at_once_and_purge_removes_the_links_themselves(world: World) -> None:
    _links_inside_archive(world)
    _link(world.drop / "2026-03-02T0400", world.outside / "valid")
    (world.drop / "refused").mkdir()
    _link(world.drop / "refused" / "old", world.outside / "old")
    before = _snapshot(world.outside)
    result = intake.pull(world.settings)
    assert not result.refused and result.export_name == NAME, result.problems
    archived = world.drop / "archive" / NAME
    assert archived.is_dir() and not archived.is_symlink(), "the planted link was replaced"
    assert retention.purge_exports(world.settings, now=time.time() + 10**9) == 5
    assert sorted(p.name for p in (world.drop / "archive").iterdir()) == []
    assert sorted(p.name for p in (world.drop / "refused").iterdir()) == []
    assert _snapshot(world.outside) == before
    marker = world.drop / intake.ACCEPTED
    assert marker.is_file() and not marker.is_symlink()
    assert json.loads(marker.read_text())["export"] == NAME


def test_the_marker_is_written_through_a_rename(world: World) -> None:
    world.export()
    marker = world.drop / intake.ACCEPTED
    marker.write_text('{"export": "x", "as_of": "2026-01-01"}\n')
    hard = world.outside / "hard.json"
    os.link(marker, hard)  # a hard link shares the inode: an in-place write would reach it
    assert not intake.pull(world.settings).refused
    assert json.loads(hard.read_text())["export"] == "x", "the old inode is left alone"
    assert json.loads(marker.read_text())["export"] == NAME
    assert not [p for p in world.drop.iterdir() if p.name.endswith(".tmp")]


def test_refused_exports_are_purged_by_retention(world: World) -> None:
    (world.export() / "cases.jsonl").write_text("kapot\n")
    assert intake.pull(world.settings).refused
    refused = world.drop / "refused" / NAME
    assert refused.is_dir()
    assert retention.purge_exports(world.settings) == 0, "not yet old"
    assert retention.purge_exports(world.settings, now=time.time() + 10**9, dry_run=True) == 1
    assert refused.is_dir()
    assert retention.purge_exports(world.settings, now=time.time() + 10**9) == 1
    assert not refused.exists()


PERSON = "Jan Jansen"


@pytest.mark.parametrize(
    "manifest",
    [
        {"files": {"cases.jsonl": {"sha256": PERSON, "lines": 3}}},
        {"files": {"cases.jsonl": {"sha256": "a" * 64, "lines": PERSON}}},
        {"files": {"cases.jsonl": {"sha256": "a" * 64, "lines": 3}, PERSON: 1}},
        {"files": PERSON},
        {PERSON: {}},
        {"files": {"cases.jsonl": {"sha256": "a" * 64, "lines": 3}}, "x": [PERSON] * 9000},
        {"files": {"cases.jsonl": {"sha256": "a" * 64, "lines": 3.5}}},
        {"files": {"cases.jsonl": {"sha256": "a" * 64, "lines": True}}},
    ],
)
def test_no_manifest_value_is_ever_repeated(
    world: World, manifest: object, caplog: pytest.LogCaptureFixture
) -> None:
    folder = world.export()
    (folder / intake.MANIFEST).write_text(json.dumps(manifest))
    result = intake.pull(world.settings)
    assert result.refused and result.problems
    text = "\n".join(result.problems) + caplog.text
    assert PERSON not in text and "Jansen" not in text


def test_a_huge_or_deeply_nested_manifest_is_not_parsed(world: World) -> None:
    folder = world.export()
    (folder / intake.MANIFEST).write_text("[" * 5_000_000 + "]" * 5_000_000)
    started = time.monotonic()
    result = intake.pull(world.settings)
    assert result.refused and "64 KB" in result.problems[0]
    assert time.monotonic() - started < 5
    folder = world.export("2026-03-02T0301")
    (folder / intake.MANIFEST).write_text("[" * 30_000 + "]" * 30_000)  # under 64 KB, deep
    result = intake.pull(world.settings)
    assert result.refused and "geen geldig manifest" in result.problems[0]


def test_an_export_with_a_byte_order_mark_is_accepted(world: World) -> None:
    folder = world.drop / NAME
    folder.mkdir()
    for name, src in (("cases.jsonl", world.case_file), ("staff.jsonl", world.staff_file)):
        (folder / name).write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    intake.write_manifest(folder)
    manifest = folder / intake.MANIFEST
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    result = intake.pull(world.settings)
    assert not result.refused, result.problems
    assert (result.cases, world.cases()) == (20, 20)


def test_the_intake_manifest_command_writes_what_intake_accepts(world: World) -> None:
    folder = world.drop / NAME
    folder.mkdir()
    shutil.copy(world.case_file, folder / "cases.jsonl")
    runner = CliRunner()
    missing = runner.invoke(main, ["intake", "manifest", str(folder)])
    assert missing.exit_code == 1 and "staff.jsonl" in missing.output
    assert not (folder / intake.MANIFEST).exists(), "no manifest for an incomplete export"
    shutil.copy(world.staff_file, folder / "staff.jsonl")
    done = runner.invoke(main, ["intake", "manifest", str(folder)])
    assert done.exit_code == 0, done.output
    assert (folder / intake.MANIFEST).is_file()
    assert not intake.pull(world.settings).refused
    link = world.tmp / "linked"
    link.mkdir()
    (link / "cases.jsonl").symlink_to(world.case_file)
    shutil.copy(world.staff_file, link / "staff.jsonl")
    refused = runner.invoke(main, ["intake", "manifest", str(link)])
    assert refused.exit_code == 1 and "geen gewoon bestand" in refused.output
