"""Stage: evaluate every open case of the source, range by range (extract, facts, evaluate).

The main process streams the source's case index and cuts it into case_ref ranges of
``batch_size`` cases; each range is read (only the tables and columns the rule set needs,
``engine.language.needs``), turned into facts and evaluated by both evaluators
(``engine.language.evaluator``), in this process or in a worker process initialised with
:func:`worker_init`. Memory per process is bounded by the batch size, not by the number
of cases. The hits go range by range to a sink (the run's ``engine.spool.HitSpool``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from regiesignaal.engine.language.catalogue import suggest
from regiesignaal.engine.language.compiled import CompiledRuleSet
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.dates import calendar_files, use_calendar_file
from regiesignaal.engine.language.evaluator import Evaluator, Hit, Upcoming
from regiesignaal.engine.language.facts import explanation_rule_refs
from regiesignaal.engine.language.needs import SourceNeeds, needs_of
from regiesignaal.engine.language.rulefile.folder import load_rule_dir
from regiesignaal.engine.source.read import count_unknown_choices, iter_case_index, read_case_range
from regiesignaal.engine.store.db import engine_options

_worker: dict[str, Any] = {}


def worker_init(
    rules_dir: str, as_of: dt.date, version: str, source_url: str, calendar: str | None = None
) -> None:
    use_calendar_file(Path(calendar) if calendar else None)  # the same working days
    ruledir = load_rule_dir(Path(rules_dir))
    if ruledir.version != version:
        raise RuntimeError("de regels zijn tijdens de run gewijzigd; start de run opnieuw")
    compiled = compile_rules(ruledir, as_of)
    _worker["evaluator"] = Evaluator(compiled, "durable")
    _worker["needs"] = needs_of(compiled)
    _worker["source"] = sa.create_engine(source_url, **engine_options(source_url))


@dataclass
class RangeResult:
    hits: list[Hit]
    unreadable: dict[str, str]  # case_ref -> kind of problem
    # explanations naming a rule that is not active: (case_ref, position, rule as written)
    explanation_refs: list[tuple[str, int, str]] = field(default_factory=list)
    upcoming: list[Upcoming] = field(default_factory=list)  # warnings (warn_before)


def evaluate_range(
    evaluator: Evaluator,
    source: sa.Engine,
    key_range: tuple[str, str],
    needs: SourceNeeds | None = None,
) -> RangeResult:
    """Read one case_ref range (only what ``needs`` names; None: whole cases) and
    evaluate it."""
    read = read_case_range(source, *key_range, needs=needs)
    unreadable = dict(read.unreadable)
    active = set(evaluator.compiled.rule_ids)
    refs = [
        (case["case_ref"], i, rule)
        for case in read.cases
        for i, rule in explanation_rule_refs(case)
        if rule not in active
    ]
    upcoming: list[Upcoming] = []
    hits = evaluator.hits(read.cases, unreadable, upcoming)
    return RangeResult(hits, unreadable, refs, upcoming)


def worker_evaluate(key_range: tuple[str, str]) -> RangeResult:
    """In a worker process: read one case_ref range from the source and evaluate it."""
    return evaluate_range(_worker["evaluator"], _worker["source"], key_range, _worker["needs"])


@dataclass
class Extracted:
    """What evaluating the source gave. Nothing in it grows with the number of cases but
    the hits (when no sink takes them) and the problem cases (``unreadable``)."""

    hits: list[Hit] = field(default_factory=list)
    upcoming: list[Upcoming] = field(default_factory=list)  # when no sink takes them
    open_count: int = 0  # open cases in the source
    open_per_manager: Counter[str] = field(default_factory=Counter)  # regievoerder -> cases
    unreadable: dict[str, str] = field(default_factory=dict)
    explanation_refs: list[tuple[str, int, str]] = field(default_factory=list)
    unknown_choices: Counter[str] = field(default_factory=Counter)


def calendar_for_workers() -> str | None:
    """The operator's calendar file in use (beside the shipped one), for worker processes."""
    files = calendar_files()
    return str(files[1]) if len(files) > 1 else None


HitSink = Callable[[str | None, list[Hit], list[Upcoming], Collection[str]], None]
"""Receives, range by range in case_ref order, the last case_ref of the range (None for
the last range), the range's hits, its warnings and the case_refs of its cases that could
not be read."""

OpenRefsSink = Callable[[str | None, list[str]], None]
"""Receives, range by range in case_ref order (before any is evaluated), the last case_ref
of the range (None for the last range) and the open case_refs of the range."""


def evaluate_source(
    source: sa.Engine,
    compiled: CompiledRuleSet,
    batch_size: int,
    pool: Pool | None = None,
    sink: HitSink | None = None,
    open_refs_sink: OpenRefsSink | None = None,
) -> Extracted:
    """Extract the open cases in batches and evaluate them, in the worker pool if given.

    The main process streams the case index (``iter_case_index``) and cuts it into
    case_ref ranges of ``batch_size`` cases, keeping only each range's bounds (and, with
    ``open_refs_sink``, handing over its case_refs); each range is read and evaluated on
    its own (by a worker when there is a pool), so memory per process is bounded by the
    batch size, not by the number of cases. A case whose record cannot be read is named in
    ``unreadable`` and skipped; the rest goes on. With ``sink`` the hits go there range by
    range instead of into ``Extracted.hits``.

    Only the tables and columns the rule set reads are read (``engine.language.needs``); the
    choice values outside their lists are counted by one aggregate query per table
    (``count_unknown_choices``) over the open cases that could be read.
    """
    out = Extracted()
    ranges: list[tuple[str, str]] = []

    def cut(refs: list[str], last: bool) -> None:
        ranges.append((refs[0], refs[-1]))
        if open_refs_sink is not None:
            open_refs_sink(None if last else refs[-1], refs)

    refs: list[str] = []
    for case_ref, regievoerder in iter_case_index(source, status="open"):
        out.open_count += 1
        if regievoerder:
            out.open_per_manager[regievoerder] += 1
        if len(refs) == batch_size:  # a case follows: this range is not the last
            cut(refs, last=False)
            refs = []
        refs.append(case_ref)
    if refs:
        cut(refs, last=True)
    del refs
    if pool is None:
        evaluator = Evaluator(compiled, "durable")
        needs = needs_of(compiled)
        results: Iterator[RangeResult] = (
            evaluate_range(evaluator, source, r, needs) for r in ranges
        )
    else:
        results = pool.imap(worker_evaluate, ranges)
    for i, result in enumerate(results):
        if sink is None:
            out.hits.extend(result.hits)
            out.upcoming.extend(result.upcoming)
        else:
            sink(
                ranges[i][1] if i < len(ranges) - 1 else None,
                result.hits,
                result.upcoming,
                result.unreadable.keys(),
            )
        out.unreadable.update(result.unreadable)
        out.explanation_refs.extend(result.explanation_refs)
    out.unknown_choices = count_unknown_choices(source, "open", exclude=out.unreadable)
    return out


def unknown_explanation_rules(refs: list[tuple[str, int, str]], rule_ids: set[str]) -> list[str]:
    """Problems for explanations naming a rule that is not in the rule folder, per case with
    the nearest rule id; never the text of the explanation nor the id as written."""
    problems = []
    for case_ref, position, rule in sorted(refs):
        if rule in rule_ids:
            continue  # a rule that exists but is switched off
        hint = suggest(rule.strip().upper(), rule_ids) or "controleer het regel-id."
        problems.append(
            f"zaak {case_ref}: toelichting {position} noemt een regel die niet bestaat en telt "
            f"niet mee; {hint} Herstel de toelichting in het zaaksysteem."
        )
    return problems
