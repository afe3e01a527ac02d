"""Shadow rules (issue 18): a rule with ``mode: shadow`` runs every night with its full
history but is mailed nowhere.

- ``signals.shadow``: the episode belongs to a rule in shadow mode; message kinds skip it;
- ``known_rules.mode``: the rule's mode as last reconciled (``live`` | ``shadow``; NULL:
  live, as every rule was before this migration), so that a change of mode, by
  ``regiesignaal rules promote`` or by editing the file, is noticed and written as events;
  ``known_rules.mode_by`` / ``mode_reason``: who asked for the change and why (``rules
  promote``), kept until the next run applies it;
- ``rule_events``: every change of a rule's mode, with who and why when known.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.add_column(
            sa.Column("shadow", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
    with op.batch_alter_table("known_rules") as batch:
        batch.add_column(sa.Column("mode", sa.String(10)))
        batch.add_column(sa.Column("mode_by", sa.String(64)))
        batch.add_column(sa.Column("mode_reason", sa.Text()))
    op.create_table(
        "rule_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("from_mode", sa.String(10), nullable=False),
        sa.Column("to_mode", sa.String(10), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("by", sa.String(64)),
        sa.Column("reason", sa.Text()),
        sa.Column("open_signals", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rule_events")
    with op.batch_alter_table("known_rules") as batch:
        batch.drop_column("mode_reason")
        batch.drop_column("mode_by")
        batch.drop_column("mode")
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("shadow")
