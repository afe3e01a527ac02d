"""The signal store: tables for runs, signals (one row per episode) and the outbox.

The schema is owned by Alembic migrations in ``engine/store/migrations``; these table
definitions are the models the code reads and writes, and a test checks that the
migrations produce exactly these tables on SQLite and PostgreSQL.

Signal episodes: a row is one period in which a rule fired for a case, from the as-of
date it first fired (``opened_on``) to the as-of date it stopped (``closed_on``, NULL
while open). A later episode for the same case and rule has ``reopened`` set. At most
one open episode exists per (case_ref, rule_id).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
    text,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("as_of", Date, nullable=False),
    Column("trigger", String(20), nullable=False),  # manual | scheduler | demo
    Column(
        "status", String(20), nullable=False
    ),  # running | succeeded | failed | refused | missed ...
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("ruleset_version", String(64)),
    Column("counts", JSON),
    Column("durations", JSON),
    Column("errors", JSON),
    Column("host", String(255)),
    Column("pid", Integer),
    # written every 30 s while the run is running (migration 0004; see engine/store/lock.py)
    Column("heartbeat_at", DateTime(timezone=True)),
    # the stage a running run is in, written as each stage starts (migration 0008)
    Column("stage", String(30)),
    Index("ix_runs_as_of", "as_of"),
    # at most one run in progress per store (migration 0002)
    Index(
        "uq_runs_one_running",
        "status",
        unique=True,
        sqlite_where=text("status = 'running'"),
        postgresql_where=text("status = 'running'"),
    ),
)

signals = Table(
    "signals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_ref", String(64), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("regievoerder", String(64)),
    Column("team", String(64)),
    Column("opened_on", Date, nullable=False),
    Column("last_seen_on", Date, nullable=False),
    Column("closed_on", Date),
    Column("close_reason", String(20)),  # resolved | case_closed | rule_removed
    Column("reopened", Boolean, nullable=False, server_default=text("false")),
    Column("escalated_on", Date),
    Column("explained_until", Date),
    Column("opened_run_id", Integer),
    Column("closed_run_id", Integer),
    # migration 0003 (issue 6): see engine/reconcile.py for the meaning of each
    Column("baseline", Boolean, nullable=False, server_default=text("false")),
    Column("clock_start", Date),  # escalation clock start; NULL = opened_on
    Column("gap_since", Date),  # first as-of date of a gap inside the grace period
    Column("gap_reason", String(20)),
    Column("explained_since", Date),
    Column("explained_given_until", Date),  # the end date as given, before any cap
    Column("explanation_expired_on", Date),  # end date of the explanation that ran out
    # migration 0007 (issue 16): the rule whose signal covers this one on the same case
    # (NULL: not covered), and the date the gap began (the rule's ``since``; NULL: opened_on)
    Column("covered_by", String(64)),
    Column("began_on", Date),
    Column("location", String(64)),  # the case's neutral location id (team digest, LKO)
    # migration 0011 (issue 18): the fingerprint of the rule's inputs when the explanation was
    # first honoured; when and which explanation (its end date as given) lapsed on a change
    Column("explained_inputs", String(16)),
    Column("explanation_lapsed_on", Date),
    Column("explanation_lapsed_given", Date),
    # the reason code of the explanation in force; how a closed episode ended (OUTCOMES in
    # engine/reconcile.py) and, for an explained one, its reason code
    Column("explained_reason", String(30)),
    Column("outcome", String(20)),
    Column("outcome_reason", String(30)),
    # migration 0012 (issue 18): an episode of a rule in shadow mode: kept with its full
    # history, in no mail, digest, escalation or agenda (``rules promote`` clears it)
    Column("shadow", Boolean, nullable=False, server_default=text("false")),
    Index("ix_signals_case_rule", "case_ref", "rule_id"),
    Index("ix_signals_regievoerder", "regievoerder"),
    Index(
        "uq_signals_one_open",
        "case_ref",
        "rule_id",
        unique=True,
        sqlite_where=text("closed_on IS NULL"),
        postgresql_where=text("closed_on IS NULL"),
    ),
    # most nights update last_seen_on of every open signal: leave room for HOT updates
    postgresql_with={"fillfactor": 70},
)

signal_events = Table(
    "signal_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("signal_id", Integer),  # filled in the same transaction as the episode's insert
    Column("warning_id", Integer),  # events of a warning (migration 0007); signal_id NULL
    Column("case_ref", String(64), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("run_id", Integer),
    Column("ruleset_version", String(64)),
    Column("details", JSON),  # ids, dates and reasons only; never case contents
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_signal_events_signal", "signal_id"),
    Index("ix_signal_events_case", "case_ref"),
)

# A warning (issue 16): a rule with ``warn_before`` that will fire on a case if nothing
# changes; open from the first night it is seen until the rule fires or no longer would.
warnings = Table(
    "warnings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_ref", String(64), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("regievoerder", String(64)),
    Column("team", String(64)),
    Column("due_on", Date, nullable=False),  # the last day to act ("uiterlijk")
    Column("opened_on", Date, nullable=False),
    Column("last_seen_on", Date, nullable=False),
    Column("closed_on", Date),
    Column("close_reason", String(20)),  # fired | cleared | case_closed | rule_removed
    Column("opened_run_id", Integer),
    Column("closed_run_id", Integer),
    Index("ix_warnings_regievoerder", "regievoerder"),
    Index(
        "uq_warnings_one_open",
        "case_ref",
        "rule_id",
        unique=True,
        sqlite_where=text("closed_on IS NULL"),
        postgresql_where=text("closed_on IS NULL"),
    ),
)

# The cases each chain meeting's agenda held (issue 16), so the next agenda can say what is
# new since the previous meeting and what was discussed before without progress.
agenda_items = Table(
    "agenda_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meeting", String(128), nullable=False),  # e.g. "locatie:loc-01-a" or "team:team-001"
    Column("meeting_on", Date, nullable=False),
    Column("case_ref", String(64), nullable=False),
    Column("reasons", JSON, nullable=False),  # rule ids of the reasons; ids only
    Column("rank", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("meeting", "meeting_on", "case_ref", name="uq_agenda_items_once"),
    Index("ix_agenda_items_meeting", "meeting", "meeting_on"),
)

known_rules = Table(
    "known_rules",
    metadata,
    Column("rule_id", String(64), primary_key=True),
    Column("introduced_on", Date),
    Column("introduced_run_id", Integer),
    Column("retired_at", DateTime(timezone=True)),
    Column("retired_by", String(64)),
    # migration 0012 (issue 18): the rule's mode as last reconciled (live | shadow; NULL:
    # live): a change is noticed at the next night and written as events; who asked for the
    # change and why (``rules promote``), until the next night applies it
    Column("mode", String(10)),
    Column("mode_by", String(64)),
    Column("mode_reason", Text),
)

rule_events = Table(  # issue 18: every change of a rule's mode (live | shadow)
    "rule_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(64), nullable=False),
    Column("kind", String(20), nullable=False),  # mode_changed
    Column("from_mode", String(10), nullable=False),
    Column("to_mode", String(10), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("by", String(64)),  # NULL: noticed by a run after the rule file was edited
    Column("reason", Text),  # why (``rules promote --reason``); about the rule, never a case
    Column("open_signals", Integer, nullable=False),  # open episodes that changed mode
    Column("run_id", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

explanations = Table(
    "signal_explanations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_ref", String(64), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("until", Date, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", String(64)),
    Index("ix_signal_explanations_case_rule", "case_ref", "rule_id"),
)

silences = Table(  # issue 18: a rule silenced for a team, a location or everyone, a while
    "silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(64), nullable=False),
    Column("team", String(64)),  # NULL (and location NULL): the whole service
    Column("location", String(64)),
    Column("starts_on", Date, nullable=False),
    Column("until", Date, nullable=False),  # the last day it silences
    Column("reason", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expired_on", Date),  # ended by hand: silences nothing from this date
    Column("expired_by", String(64)),
    Column("ended_on", Date),  # ended by itself: the first as-of date after ``until``
)

silence_events = Table(  # every change of a silence: added, expired (by hand), ended
    "silence_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("silence_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # added | expired | ended
    Column("as_of", Date, nullable=False),
    Column("by", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("run_id", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_silence_events_silence", "silence_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("kind", String(20), nullable=False),  # regievoerder | teamleider
    Column("recipient_id", String(64), nullable=False),
    Column("recipient_email", String(320), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    # the whole list as an HTML attachment of a case manager's daily mail (migration 0007)
    Column("attachment_html", Text),
    Column("message_id", String(255), nullable=False),
    Column("status", String(20), nullable=False),  # see notifications.delivery.outbox.STATUSES
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("as_of", "kind", "recipient_id", name="uq_outbox_once_per_day"),
    Index("ix_outbox_status", "status"),
    # supersede_older / _newer_exists per queued message (migration 0005)
    Index("ix_outbox_kind_recipient", "kind", "recipient_id", "status"),
)

# The run lock on SQLite (engine/store/lock.py; PostgreSQL uses an advisory lock): at most one
# row, id 1, held by the process named in it while its heartbeat is fresh (migration 0004).
run_lock = Table(
    "run_lock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("token", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

# The scheduler's bookkeeping of due nights (migration 0008; jobs/ops/nights.py): one row, id 1.
# Every scheduled night due at or before ``nights_from`` has been run or alerted as missed.
scheduler_state = Table(
    "scheduler_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("nights_from", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("host", String(255)),
    Column("pid", Integer),
)

# The job store of ``regiesignaal scheduler`` (APScheduler 3's SQLAlchemyJobStore table,
# created by migration 0004 so the scheduler never has to create tables itself).
apscheduler_jobs = Table(
    "apscheduler_jobs",
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)

# The heartbeat of ``regiesignaal scheduler`` (migration 0009): one row per scheduler host,
# ``beat_at`` written about every minute while it runs (engine/store/heartbeat.py).
scheduler_heartbeat = Table(
    "scheduler_heartbeat",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("beat_at", DateTime(timezone=True), nullable=False),
)

# Every rule set that checked, by version hash, with its files (relative path -> text), so
# a night can run with the last good one when the rule folder breaks (migration 0009;
# engine/store/rulesets.py).
rule_sets = Table(
    "rule_sets",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("files", JSON, nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)
