"""The scheduler's heartbeat and the rule sets that checked (issue 17).

``scheduler_heartbeat``: one row per scheduler (host and pid), its ``beat_at`` written
about every minute by a running ``regiesignaal scheduler``; ``regiesignaal status`` and
the metrics file report the age of the newest beat, so a scheduler that died (or hangs)
is noticed by monitoring.

``rule_sets``: every rule set that checked, by its version hash, with the text of its
files; when the rule folder breaks, a night runs with the newest one (``[rules]
on_broken = "last_good"``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduler_heartbeat",
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rule_sets",
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rule_sets")
    op.drop_table("scheduler_heartbeat")
