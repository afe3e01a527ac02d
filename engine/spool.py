"""Temporary files holding the run's hits and open case_refs range by range, so the main
process never holds every hit, nor every open case, at once (issue 11): evaluation writes
each case_ref range's open refs and fired keys as they come, reconcile reads them back one
range at a time."""

from __future__ import annotations

import pickle
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

from regiesignaal.engine import reconcile
from regiesignaal.engine.language.evaluator import Hit, Upcoming
from regiesignaal.engine.store.episodes import Key, KeyRange

# what one hit needs for reconcile: case_ref, rule_id, severity, regievoerder, team,
# explained_until, explained_by, began_on, location, inputs, explained_reason (reconcile.Fired)
_Row = tuple[Any, ...]


class HitSpool:
    """Hits per case_ref range in a temporary file (deleted on close).

    :meth:`add` is a :data:`jobs.pipeline.HitSink`; :meth:`chunks` yields the ranges in
    the form :func:`engine.reconcile.reconcile_in_ranges` takes. Counts per rule and the
    priority bonus per case are kept in memory (small: one int per rule and per case
    with a bonus)."""

    def __init__(self, severity_of: Mapping[str, str]):
        self._severity_of = severity_of
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="regiesignaal-hits-")  # noqa: SIM115
        self._refs: IO[bytes] = tempfile.TemporaryFile(prefix="regiesignaal-open-")  # noqa: SIM115
        self._ranges: list[str | None] = []
        self._ref_ranges: list[str | None] = []
        self._refs_read = 0
        self.per_rule: Counter[str] = Counter()
        self.bonus: dict[str, int] = {}

    def add(self, up_to: str | None, hits: list[Hit], upcoming: Sequence[Upcoming] = ()) -> None:
        rows: list[_Row] = []
        for h in hits:
            self.per_rule[h.rule_id] += 1
            if h.bonus:
                self.bonus[h.case_ref] = h.bonus
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
        warned = [(u.case_ref, u.rule_id, u.regievoerder, u.team, u.due_on) for u in upcoming]
        pickle.dump((rows, warned), self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._ranges.append(up_to)

    def add_open_refs(self, up_to: str | None, refs: list[str]) -> None:
        """The open case_refs of the range ending at ``up_to`` (a
        :data:`jobs.pipeline.OpenRefsSink`); ranges come in case_ref order."""
        pickle.dump(refs, self._refs, protocol=pickle.HIGHEST_PROTOCOL)
        self._ref_ranges.append(up_to)

    def open_refs(self, bounds: KeyRange) -> set[str]:
        """The open case_refs of the range ``bounds`` that :meth:`chunks` yields now: called
        once per range, in order (as ``reconcile_in_ranges`` does).

        Raises ValueError when the ranges of the open refs and of the hits differ."""
        if not self._ref_ranges:  # no open case at all: one unbounded range
            if bounds != (None, None):
                raise ValueError("open case_refs asked for a range that was not recorded")
            return set()
        if self._refs_read == 0:
            self._refs.seek(0)
        if self._refs_read >= len(self._ref_ranges) or (
            self._ref_ranges[self._refs_read] != bounds[1]
        ):
            raise ValueError("open case_refs asked out of order or for another range")
        self._refs_read += 1
        refs: list[str] = pickle.load(self._refs)
        return set(refs)

    def chunks(
        self,
    ) -> Iterator[tuple[KeyRange, dict[Key, reconcile.Fired], dict[Key, Upcoming]]]:
        """(range, fired keys of the range, warnings of the range) in case_ref order; the
        ranges cover every case_ref (one unbounded range when nothing was added)."""
        if not self._ranges:
            yield (None, None), {}, {}
            return
        self._file.seek(0)
        above: str | None = None
        for up_to in self._ranges:
            rows: list[_Row]
            warned: list[_Row]
            rows, warned = pickle.load(self._file)
            fired = {(r[0], r[1]): reconcile.Fired(*r[2:]) for r in rows}
            upcoming = {(w[0], w[1]): Upcoming(*w) for w in warned}
            yield (above, up_to), fired, upcoming
            above = up_to

    def close(self) -> None:
        self._file.close()
        self._refs.close()
