"""The scheduler's own bookkeeping of due nights, and the stage a run is in (issue 17).

``scheduler_state``: one row (id 1) per store. ``nights_from`` is the instant up to which
every scheduled night has been accounted for (run, or alerted as missed), so a scheduler
that comes back after any downtime knows which nights fell due while nobody looked;
``heartbeat_at``, ``host`` and ``pid`` say when a scheduler last looked (for monitoring).

``runs.stage``: the stage a running run is in (written as each stage starts), so a night
stopped by its time limit or a crash says where it was.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("stage", sa.String(30)))
    op.create_table(
        "scheduler_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("nights_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer()),
    )


def downgrade() -> None:
    op.drop_table("scheduler_state")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("stage")
