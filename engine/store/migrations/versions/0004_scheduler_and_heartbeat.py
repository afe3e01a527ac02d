"""Scheduler and run lock: runs.heartbeat_at and APScheduler's job table.

``runs.heartbeat_at``: a running run writes the time here every 30 seconds, so a run
that died on another host (or in a container that got a new host name) is recognised as
dead within minutes instead of blocking every run for 12 hours.

``run_lock``: on SQLite, the run lock itself: one row (id 1) inserted by the process
that holds it, with its host, pid and heartbeat (PostgreSQL uses an advisory lock).

``apscheduler_jobs``: the job store of ``regiesignaal scheduler`` (APScheduler 3's
SQLAlchemyJobStore, the same columns it would create itself), so the whole store schema
stays under Alembic.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    op.create_table(
        "run_lock",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25)),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_apscheduler_jobs_next_run_time", table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    op.drop_table("run_lock")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
