"""Temporary files holding the run's hits and open case_refs range by range, so the main
process never holds every hit, nor every open case, at once (issue 11): evaluation writes
each case_ref range's open refs and fired keys as they come, reconcile reads them back one
range at a time, while evaluation still goes on (:meth:`HitSpool.following`, from a
thread of its own; issue 19)."""

from __future__ import annotations

import os
import pickle
import sqlite3
import tempfile
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from regiesignaal.engine import reconcile
from regiesignaal.engine.language.evaluator import Hit, Upcoming
from regiesignaal.engine.store.episodes import Key, KeyRange

# what one hit needs for reconcile: case_ref, rule_id, severity, regievoerder, team,
# explained_until, explained_by, began_on, location, inputs, explained_reason (reconcile.Fired)
_Row = tuple[Any, ...]


class CaseBonus(Mapping[str, int]):
    """The case factors' priority bonus per case_ref (``rules/priority.yaml``), only for
    cases that have one, kept in a private temporary SQLite file rather than a dict.

    At a million cases some 430,000 cases have a bonus; as a dict of case_ref strings that
    was 40 MB of the main process for the whole night (issue 19), now it is the file and
    SQLite's page cache (2 MB). A Mapping, so it goes where a dict of bonuses goes; read
    many at once with :meth:`many` (one query per 500 case_refs, not one per case_ref).
    The file is deleted on :meth:`close` (or when the process ends)."""

    _CHUNK = 500  # case_refs per query: well below SQLite's limit on bound values

    def __init__(self) -> None:
        # "": a private temporary database on disk, deleted when the connection closes
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE bonus (case_ref TEXT PRIMARY KEY, bonus INTEGER NOT NULL) WITHOUT ROWID"
        )

    def add(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Record (case_ref, bonus) pairs; a case_ref recorded again takes the new bonus."""
        self._db.executemany("INSERT OR REPLACE INTO bonus VALUES (?, ?)", pairs)

    def many(self, case_refs: Iterable[str]) -> dict[str, int]:
        """The bonus of each of ``case_refs`` that has one (the others are left out)."""
        refs = list(case_refs)
        out: dict[str, int] = {}
        for i in range(0, len(refs), self._CHUNK):
            part = refs[i : i + self._CHUNK]
            marks = ", ".join("?" for _ in part)
            out.update(
                self._db.execute(
                    f"SELECT case_ref, bonus FROM bonus WHERE case_ref IN ({marks})", part
                )
            )
        return out

    def __getitem__(self, case_ref: str) -> int:
        row = self._db.execute("SELECT bonus FROM bonus WHERE case_ref = ?", (case_ref,)).fetchone()
        if row is None:
            raise KeyError(case_ref)
        return int(row[0])

    def __iter__(self) -> Iterator[str]:
        return (str(r[0]) for r in self._db.execute("SELECT case_ref FROM bonus ORDER BY case_ref"))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM bonus").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class SpoolAborted(Exception):
    """The run stopped before reconcile had every range (:meth:`HitSpool.abort`)."""


class HitSpool:
    """Hits per case_ref range in a temporary file (deleted on close).

    :meth:`add` is a :data:`engine.evaluate.HitSink`; :meth:`following` yields the
    ranges in the form :func:`engine.reconcile.reconcile_in_ranges` takes. Counts
    per rule are kept in memory (one int per rule); the priority bonus per case in
    :attr:`bonus`, a :class:`CaseBonus` (a file of its own).

    One thread adds (the run's main thread), one other may read with :meth:`following`
    and :meth:`open_refs` at the same time: each range is one pickle, written whole
    (``os.pwrite``) before it is recorded and read back by its offset (``os.pread``), so
    the reader never sees half a range."""

    def __init__(self, severity_of: Mapping[str, str]):
        self._severity_of = severity_of
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="regiesignaal-hits-")  # noqa: SIM115
        self._refs: IO[bytes] = tempfile.TemporaryFile(prefix="regiesignaal-open-")  # noqa: SIM115
        self._ranges: list[str | None] = []
        self._spans: list[tuple[int, int]] = []  # (offset, length) of each range's pickle
        self._ref_ranges: list[str | None] = []
        self._ref_spans: list[tuple[int, int]] = []
        self._refs_read = 0
        self._changed = threading.Condition()
        self._sealed = False  # every range is in, and the last may be handed out
        self._aborted = False
        self.per_rule: Counter[str] = Counter()
        self.bonus = CaseBonus()

    @staticmethod
    def _append(file: IO[bytes], spans: list[tuple[int, int]], value: Any) -> None:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        offset = spans[-1][0] + spans[-1][1] if spans else 0
        view = memoryview(data)
        while view:  # a raw write may write less than asked
            view = view[os.pwrite(file.fileno(), view, offset + len(data) - len(view)) :]
        spans.append((offset, len(data)))

    @staticmethod
    def _read(file: IO[bytes], span: tuple[int, int]) -> Any:
        offset, length = span
        data = bytearray()
        while len(data) < length:
            part = os.pread(file.fileno(), length - len(data), offset + len(data))
            if not part:
                raise EOFError("spool file shorter than written")
            data += part
        return pickle.loads(bytes(data))

    def add(
        self,
        up_to: str | None,
        hits: list[Hit],
        upcoming: Sequence[Upcoming] = (),
        unreadable: Collection[str] = (),
    ) -> None:
        """The range ending at ``up_to`` (None: the last): its hits, its warnings and the
        case_refs of its cases that could not be read (they stay untouched)."""
        rows: list[_Row] = []
        bonus: dict[str, int] = {}
        for h in hits:
            self.per_rule[h.rule_id] += 1
            if h.bonus:
                bonus[h.case_ref] = h.bonus
            rows.append(
                (
                    h.case_ref,
                    h.rule_id,
                    h.severity or self._severity_of[h.rule_id],
                    h.regievoerder,
                    h.team,
                    h.explained_until,
                    h.explained_by,
                    h.began_on,
                    h.location,
                    h.inputs,
                    h.explained_reason,
                )
            )
        self.bonus.add(bonus.items())
        warned = [(u.case_ref, u.rule_id, u.regievoerder, u.team, u.due_on) for u in upcoming]
        self._append(self._file, self._spans, (rows, warned, sorted(unreadable)))
        with self._changed:
            self._ranges.append(up_to)
            self._changed.notify_all()

    def add_open_refs(self, up_to: str | None, refs: list[str]) -> None:
        """The open case_refs of the range ending at ``up_to`` (a
        :data:`engine.evaluate.OpenRefsSink`); ranges come in case_ref order."""
        self._append(self._refs, self._ref_spans, refs)
        with self._changed:
            self._ref_ranges.append(up_to)
            self._changed.notify_all()

    def seal(self) -> None:
        """Every range is in: :meth:`following` may hand out the last one."""
        with self._changed:
            self._sealed = True
            self._changed.notify_all()

    def abort(self) -> None:
        """The run stops: :meth:`following` raises :class:`SpoolAborted` in its reader."""
        with self._changed:
            self._aborted = True
            self._changed.notify_all()

    def open_refs(self, bounds: KeyRange) -> set[str]:
        """The open case_refs of the range ``bounds`` that :meth:`following` yields now: called
        once per range, in order (as ``reconcile_in_ranges`` does).

        Raises ValueError when the ranges of the open refs and of the hits differ."""
        if not self._ref_ranges:  # no open case at all: one unbounded range
            if bounds != (None, None):
                raise ValueError("open case_refs asked for a range that was not recorded")
            return set()
        with self._changed:
            ranges = list(self._ref_ranges)
        if self._refs_read >= len(ranges) or ranges[self._refs_read] != bounds[1]:
            raise ValueError("open case_refs asked out of order or for another range")
        refs: list[str] = self._read(self._refs, self._ref_spans[self._refs_read])
        self._refs_read += 1
        return set(refs)

    def _chunk(self, i: int) -> tuple[dict[Key, reconcile.Fired], dict[Key, Upcoming], list[str]]:
        rows: list[_Row]
        warned: list[_Row]
        rows, warned, unreadable = self._read(self._file, self._spans[i])
        fired = {(r[0], r[1]): reconcile.Fired(*r[2:]) for r in rows}
        upcoming = {(w[0], w[1]): Upcoming(*w) for w in warned}
        return fired, upcoming, unreadable

    def following(
        self, untouched: set[str]
    ) -> Iterator[tuple[KeyRange, dict[Key, reconcile.Fired], dict[Key, Upcoming]]]:
        """(range, fired keys of the range, warnings of the range) in case_ref order,
        covering every case_ref (one unbounded range when nothing was added), while ranges
        are still being added, for a reader in another thread: each range as soon as it
        is in, the last one (``up_to`` None) only once the spool is sealed (:meth:`seal`),
        so that the run can still decide not to go on.
        Each range's unreadable case_refs are added to ``untouched`` before it is yielded.

        Raises :class:`SpoolAborted` when :meth:`abort` is called while it waits."""
        above: str | None = None
        i = 0
        while True:
            with self._changed:
                while (
                    not self._aborted
                    and not (
                        i < len(self._ranges) and (self._ranges[i] is not None or self._sealed)
                    )
                    and not (self._sealed and i >= len(self._ranges))
                ):
                    self._changed.wait()
                if self._aborted:
                    raise SpoolAborted
                empty = not self._ranges
                if i >= len(self._ranges) and not empty:
                    raise ValueError("the spool was sealed without its last (unbounded) range")
                up_to = None if empty else self._ranges[i]
            if empty:  # sealed without any range: no open case at all
                yield (None, None), {}, {}
                return
            fired, upcoming, unreadable = self._chunk(i)
            untouched.update(unreadable)
            yield (above, up_to), fired, upcoming
            if up_to is None:
                return
            above = up_to
            i += 1

    def close(self) -> None:
        self._file.close()
        self._refs.close()
        self.bonus.close()
