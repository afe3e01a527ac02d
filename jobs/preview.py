"""``regiesignaal preview``: what a rule folder gives on the source as of a date, and what
a change of rules would do (``--diff``); nothing is written.

``preview`` evaluates the whole source like a run (same reading, both evaluators) but keeps
the hits. ``diff`` is a true before/after comparison (issue 18): the configured rule folder
and the candidate folder are both evaluated on the same source as of the same date (default:
the store's last as-of date), as plain evaluations of the same cases; the store's open
signals, grace gaps and history play no part. Unchanged rules therefore give "+0 / -0", and
every difference is caused by the change of rules alone. Per changed rule it reports the
signals opened and closed, per team, a few example case references, and its overlap with
the other rules (``engine.overlap``).

Shadow rules (issue 18): the diff counts the signals that would be shown, so a rule in
``mode: shadow`` counts as giving none. A rule put live (``mode: shadow`` removed) opens
its hits ("live gezet"; the run will show them as existing, not new); a rule put in
shadow ("in schaduw gezet") closes nothing: its signals stay open in shadow and are no
longer mailed, and it says so ("niet meer gemaild: N (blijven open in schaduw)"), apart
from the total of signals that close. A rule in shadow on the candidate side reports its
hits on their own line ("in schaduw: N signalen, niet gemaild") and its overlap. Overlap
is counted against live rules only: a live rule is never told that a shadow rule (which
mails nothing) already covers its cases.

A removed rule says that the next run refuses while it has open signals, until it is
retired on purpose (``regiesignaal rules retire``; ``jobs.pipeline._check_rule_set``).

Without a candidate folder (``--rules``) the configured folder is compared with the rule
set the last run used, when it differs and the store still keeps that set
(``engine.store.rulesets``, see ``last_run_rules``); otherwise nothing is compared and the
command says so.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from regiesignaal.engine.evaluate import Extracted, evaluate_source
from regiesignaal.engine.language.compiled import CompiledRuleSet
from regiesignaal.engine.language.compiler import compile_rules
from regiesignaal.engine.language.evaluator import Hit
from regiesignaal.engine.language.rulefile.model import RuleDir
from regiesignaal.engine.overlap import Overlap, changed_rules, overlaps
from regiesignaal.engine.source.tables import cases
from regiesignaal.engine.store.db import engine_options, sqlite_file
from regiesignaal.engine.store.tables import runs
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.pipeline import source_engine, start_pool

Key = tuple[str, str]
"""(case_ref, rule id)."""

EXAMPLES = 3
"""Example case references shown per changed rule, opened and closed each."""

NO_TEAM = "(geen team)"


def preview(
    settings: Settings, ruledir: RuleDir, as_of: dt.date
) -> tuple[CompiledRuleSet, Extracted]:
    """The signals ``ruledir`` gives for the source data as of ``as_of``; writes nothing.
    Raises ``jobs.pipeline.RunRefused`` for a missing source."""
    source = source_engine(settings.source_url)
    pool = None
    try:
        compiled = compile_rules(ruledir, as_of)
        if settings.workers > 1 and _open_cases(source) >= POOL_FROM_BATCHES * settings.batch_size:
            pool = start_pool(settings.workers, ruledir, compiled, source)
        found = evaluate_source(source, compiled, settings.batch_size, pool)
        if pool is not None:
            pool.close()
            pool.join()
            pool = None
        return compiled, found
    finally:
        if pool is not None:
            pool.terminate()
        source.dispose()


POOL_FROM_BATCHES = 8
"""``preview`` evaluates in the run's worker processes (``workers``) from this many batches
of open cases on (issue 19); below it, starting them costs more than they save."""


def _open_cases(source: sa.Engine) -> int:
    with source.connect() as conn:
        found = conn.execute(
            sa.select(sa.func.count()).select_from(cases).where(cases.c.status == "open")
        ).scalar()
    return int(found or 0)


@dataclass(frozen=True)
class LastRun:
    """The store's last successful run: its as-of date and rule set version."""

    as_of: dt.date
    ruleset_version: str | None


def last_run(settings: Settings) -> LastRun | None:
    """The store's last succeeded run, or None when there is no store (never creates one),
    no migrated table or no succeeded run."""
    path = sqlite_file(settings.store_url)
    if path is not None and not path.exists():
        return None
    store = sa.create_engine(settings.store_url, **engine_options(settings.store_url))
    try:
        with store.connect() as conn:
            row = conn.execute(
                sa.select(runs.c.as_of, runs.c.ruleset_version)
                .where(runs.c.status == "succeeded")
                .order_by(runs.c.as_of.desc(), runs.c.id.desc())
                .limit(1)
            ).first()
    except sa.exc.DBAPIError:  # an unmigrated or unreachable store: no default date
        return None
    finally:
        store.dispose()
    return LastRun(row.as_of, row.ruleset_version) if row is not None else None


def last_run_rules(settings: Settings, version: str, directory: Path) -> RuleDir | None:
    """The rule set ``version`` (the last run's) from the store, written into the empty
    ``directory`` and loaded from there; None when the store does not keep it (any more),
    it cannot be read, or it does not load to the same version."""
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir
    from regiesignaal.engine.store import rulesets

    store = sa.create_engine(settings.store_url, **engine_options(settings.store_url))
    try:
        kept = rulesets.of_version(store, version)
    except sa.exc.DBAPIError:
        return None
    finally:
        store.dispose()
    if kept is None:
        return None
    try:
        ruledir = load_rule_dir(rulesets.write_files(kept.files, directory))
    except (OSError, ValueError):
        return None
    return ruledir if ruledir.version == version and not ruledir.problems else None


@dataclass
class RuleChange:
    """What the change of rules does to one rule's signals."""

    rule_id: str
    status: str  # nieuw | gewijzigd | verwijderd | ongewijzigd
    before: int
    after: int
    opened: list[Key]
    closed: list[Key]
    per_team: dict[str, tuple[int, int]]  # team -> (opened, closed)
    overlap: Overlap | None = None
    shadow_hits: int | None = None  # in shadow on the candidate side: its hits, not shown

    @property
    def examples_opened(self) -> list[str]:
        return [c for c, _ in self.opened[:EXAMPLES]]

    @property
    def examples_closed(self) -> list[str]:
        return [c for c, _ in self.closed[:EXAMPLES]]

    @property
    def to_shadow(self) -> bool:
        """Put in shadow: its signals stay open (in shadow), they are no longer mailed."""
        return "in schaduw gezet" in self.status

    def lines(self) -> list[str]:
        """Dutch report lines for the policy owner."""
        if self.to_shadow:
            head = (
                f"{self.rule_id} ({self.status}): +{len(self.opened)} openen, niet meer "
                f"gemaild: {len(self.closed)} (blijven open in schaduw)"
            )
        else:
            head = (
                f"{self.rule_id} ({self.status}): +{len(self.opened)} openen, "
                f"-{len(self.closed)} sluiten ({self.before} -> {self.after} signalen)"
            )
        out = [head]
        for team, (o, c) in sorted(self.per_team.items()):
            out.append(f"  team {team}: +{o} / -{c}")
        if self.opened:
            out.append("  bijvoorbeeld nieuw: " + ", ".join(self.examples_opened))
        if self.closed:
            what = "niet meer gemaild" if self.to_shadow else "gesloten"
            out.append(f"  bijvoorbeeld {what}: " + ", ".join(self.examples_closed))
        if self.status == "verwijderd":
            out.append(
                "  let op: heeft deze regel open signalen, dan weigert de volgende run tot u "
                f"hem bewust intrekt: regiesignaal rules retire {self.rule_id} (de signalen "
                "sluiten dan met reden rule_retired)"
            )
        if self.shadow_hits is not None:
            out.append(f"  in schaduw: {self.shadow_hits} signalen, niet gemaild (regelrapport)")
        if self.overlap is not None:
            out.extend("  " + line for line in self.overlap.lines())
        return out


@dataclass
class Diff:
    """The same cases evaluated by the current rules (``before``) and the candidate rules
    (``after``): (case_ref, rule) -> team of every hit on each side."""

    before: dict[Key, str | None]
    after: dict[Key, str | None]
    statuses: dict[str, str] = field(default_factory=dict)  # rule -> nieuw|gewijzigd|verwijderd
    overlaps: list[Overlap] = field(default_factory=list)
    shadow_hits: dict[str, int] = field(default_factory=dict)  # candidate's shadow rules

    @property
    def opened(self) -> set[Key]:
        return set(self.after) - set(self.before)

    @property
    def closed(self) -> set[Key]:
        return set(self.before) - set(self.after)

    @property
    def to_shadow(self) -> set[Key]:
        """The closed keys of rules put in shadow: they stay open, no longer mailed."""
        return {k for k in self.closed if "in schaduw gezet" in self.statuses.get(k[1], "")}

    @property
    def rules(self) -> list[str]:
        return sorted({r for _, r in self.before} | {r for _, r in self.after} | set(self.statuses))

    def per_rule(self) -> list[tuple[str, int, int, int, int]]:
        """(rule, signals before, opened, closed, signals after) per rule."""
        before_by = Counter(r for _, r in self.before)
        open_by = Counter(r for _, r in self.opened)
        close_by = Counter(r for _, r in self.closed)
        after_by = Counter(r for _, r in self.after)
        return [(r, before_by[r], open_by[r], close_by[r], after_by[r]) for r in self.rules]

    def changes(self) -> list[RuleChange]:
        """Every rule that is new, changed or removed, or whose signals differ."""
        opened, closed = sorted(self.opened), sorted(self.closed)
        overlap_of = {o.rule_id: o for o in self.overlaps}
        out = []
        for rule, before_n, open_n, close_n, after_n in self.per_rule():
            status = self.statuses.get(rule)
            if status is None and not open_n and not close_n:
                continue
            mine_o = [k for k in opened if k[1] == rule]
            mine_c = [k for k in closed if k[1] == rule]
            teams: dict[str, tuple[int, int]] = {}
            for k in mine_o:
                team = self.after[k] or NO_TEAM
                o, c = teams.get(team, (0, 0))
                teams[team] = (o + 1, c)
            for k in mine_c:
                team = self.before[k] or NO_TEAM
                o, c = teams.get(team, (0, 0))
                teams[team] = (o, c + 1)
            out.append(
                RuleChange(
                    rule, status or "ongewijzigd", before_n, after_n, mine_o, mine_c, teams,
                    overlap_of.get(rule), self.shadow_hits.get(rule),
                )
            )  # fmt: skip
        return out


def _keys(hits: list[Hit], shadow: Collection[str] = ()) -> dict[Key, str | None]:
    """(case_ref, rule) -> team of every hit of a live rule (one not in ``shadow``)."""
    return {(h.case_ref, h.rule_id): h.team for h in hits if h.rule_id not in shadow}


def mode_changes(candidate: RuleDir, current: RuleDir) -> dict[str, str]:
    """Rule id -> "live gezet" / "in schaduw gezet" for rules of both folders whose
    ``mode`` differs, and "nieuw, in schaduw" for a new rule in shadow mode."""
    now = {r.id: r.mode for r in current.rules}
    out = {}
    for rule in candidate.rules:
        if rule.id not in now:
            if rule.shadow:
                out[rule.id] = "nieuw, in schaduw"
        elif now[rule.id] != rule.mode:
            out[rule.id] = "in schaduw gezet" if rule.shadow else "live gezet"
    return out


def diff(
    settings: Settings,
    candidate: RuleDir,
    after: Extracted,
    current: RuleDir | None,
    as_of: dt.date,
) -> Diff:
    """The candidate rules' hits (``after``) against the current rules' hits on the same
    source as of the same date. ``current`` None: the candidate is the configured rule
    folder itself, so both sides are the same evaluation."""
    shadow_after = {r.id for r in candidate.rules if r.shadow}
    in_shadow = Counter(h.rule_id for h in after.hits if h.rule_id in shadow_after)
    shadow_hits = {r: in_shadow[r] for r in sorted(shadow_after)}
    if current is None:
        keys = _keys(after.hits, shadow_after)
        return Diff(keys, dict(keys), shadow_hits=shadow_hits)
    _, before = preview(settings, current, as_of)
    statuses = changed_rules(candidate, current)
    for rule_id, mode_status in mode_changes(candidate, current).items():
        if statuses.get(rule_id) == "gewijzigd":
            statuses[rule_id] = f"gewijzigd, {mode_status}"
        else:
            statuses[rule_id] = mode_status
    gone = {r.id for r in current.rules} - {r.id for r in candidate.rules}
    statuses.update({r: "verwijderd" for r in gone})
    changed = {r: s for r, s in statuses.items() if s != "verwijderd"}
    shadow_before = {r.id for r in current.rules if r.shadow}
    live_hits = [h for h in after.hits if h.rule_id not in shadow_after]
    found = overlaps(live_hits, {r: s for r, s in changed.items() if r not in shadow_after})
    for rule_id, status in changed.items():  # a shadow rule: its own hits against live ones
        if rule_id in shadow_after:
            own = [h for h in after.hits if h.rule_id == rule_id]
            found += overlaps([*live_hits, *own], {rule_id: status})
    return Diff(
        _keys(before.hits, shadow_before),
        _keys(after.hits, shadow_after),
        statuses,
        sorted(found, key=lambda o: o.rule_id),
        shadow_hits,
    )
