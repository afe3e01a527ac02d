"""``regiesignaal preview``: what a rule folder gives on the source as of a date, and what
it would change in the store (``--diff``); nothing is written.

``preview`` evaluates the whole source like a run (same reading, both evaluators) but keeps
the hits; ``diff`` compares them with the signals open in the store and, for a rule folder
other than the configured one, adds the overlap of its new and changed rules
(``engine.overlap``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from regiesignaal.engine.evaluate import Extracted, evaluate_source
from regiesignaal.engine.language.compiled import CompiledRuleSet
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.rulefile.model import RuleDir
from regiesignaal.engine.overlap import Overlap, changed_rules, overlaps
from regiesignaal.engine.store.db import store_engine
from regiesignaal.engine.store.tables import signals
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.pipeline import source_engine

Key = tuple[str, str]
"""(case_ref, rule id)."""


def preview(
    settings: Settings, ruledir: RuleDir, as_of: dt.date
) -> tuple[CompiledRuleSet, Extracted]:
    """The signals ``ruledir`` gives for the source data as of ``as_of``; writes nothing.
    Raises ``jobs.pipeline.RunRefused`` for a missing source."""
    source = source_engine(settings.source_url)
    try:
        compiled = compile_rules(ruledir, as_of)
        return compiled, evaluate_source(source, compiled, settings.batch_size)
    finally:
        source.dispose()


def open_signal_keys(settings: Settings) -> set[Key]:
    """The (case_ref, rule_id) of every open signal in the store, for ``preview --diff``."""
    store = store_engine(settings.store_url)
    try:
        with store.connect() as conn:
            return {
                (r.case_ref, r.rule_id)
                for r in conn.execute(
                    sa.select(signals.c.case_ref, signals.c.rule_id).where(
                        signals.c.closed_on.is_(None)
                    )
                )
            }
    finally:
        store.dispose()


@dataclass
class Diff:
    """What the previewed rules would change in the store: signals opened and closed,
    per rule now open / opened / closed / open afterwards, and the overlaps of the new or
    changed rules with the others."""

    now_open: set[Key]
    would: set[Key]
    overlaps: list[Overlap] = field(default_factory=list)

    @property
    def opened(self) -> set[Key]:
        return self.would - self.now_open

    @property
    def closed(self) -> set[Key]:
        return self.now_open - self.would

    @property
    def rules(self) -> list[str]:
        return sorted({r for _, r in self.opened | self.closed | self.would})

    def per_rule(self) -> list[tuple[str, int, int, int, int]]:
        """(rule, now open, would open, would close, open afterwards) per rule."""
        now_by = Counter(r for _, r in self.now_open)
        open_by = Counter(r for _, r in self.opened)
        close_by = Counter(r for _, r in self.closed)
        after_by = Counter(r for _, r in self.would)
        return [(r, now_by[r], open_by[r], close_by[r], after_by[r]) for r in self.rules]


def diff(
    settings: Settings, ruledir: RuleDir, extracted: Extracted, current: RuleDir | None
) -> Diff:
    """The previewed hits against the store's open signals; ``current`` (the configured
    rule folder, when ``ruledir`` is another one) gives the new and changed rules whose
    overlap with the others is reported."""
    changed = changed_rules(ruledir, current) if current is not None else {}
    hits = extracted.hits
    return Diff(
        open_signal_keys(settings),
        {(h.case_ref, h.rule_id) for h in hits},
        overlaps(hits, changed),
    )
