"""Signal history (issue 6): events, grace gaps, baseline, explanations, rule retirement.

- ``signal_events``: one row per transition of a signal episode;
- ``known_rules``: when each rule was first seen (baseline on its first night) and
  whether it was retired by an operator (``regiesignaal rules retire``);
- ``signal_explanations``: explanations added on the command line, with who and when;
- new columns on ``signals``: ``baseline``, ``clock_start``, ``gap_since``,
  ``gap_reason``, ``explained_since``, ``explained_given_until``,
  ``explanation_expired_on``.

Existing stores: every rule that has signals is known from the date of its first signal,
so only rules introduced after the upgrade get a baseline night.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.add_column(
            sa.Column("baseline", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
        batch.add_column(sa.Column("clock_start", sa.Date()))
        batch.add_column(sa.Column("gap_since", sa.Date()))
        batch.add_column(sa.Column("gap_reason", sa.String(20)))
        batch.add_column(sa.Column("explained_since", sa.Date()))
        batch.add_column(sa.Column("explained_given_until", sa.Date()))
        batch.add_column(sa.Column("explanation_expired_on", sa.Date()))
    op.create_table(
        "signal_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("signal_id", sa.Integer()),
        sa.Column("case_ref", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("run_id", sa.Integer()),
        sa.Column("ruleset_version", sa.String(64)),
        sa.Column("details", sa.JSON()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_signal_events_signal", "signal_events", ["signal_id"])
    op.create_index("ix_signal_events_case", "signal_events", ["case_ref"])
    op.create_table(
        "known_rules",
        sa.Column("rule_id", sa.String(64), primary_key=True),
        sa.Column("introduced_on", sa.Date()),
        sa.Column("introduced_run_id", sa.Integer()),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.Column("retired_by", sa.String(64)),
    )
    op.execute(
        "INSERT INTO known_rules (rule_id, introduced_on) "
        "SELECT rule_id, MIN(opened_on) FROM signals GROUP BY rule_id"
    )
    op.create_table(
        "signal_explanations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_ref", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.String(64)),
    )
    op.create_index(
        "ix_signal_explanations_case_rule", "signal_explanations", ["case_ref", "rule_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_signal_explanations_case_rule", table_name="signal_explanations")
    op.drop_table("signal_explanations")
    op.drop_table("known_rules")
    op.drop_index("ix_signal_events_case", table_name="signal_events")
    op.drop_index("ix_signal_events_signal", table_name="signal_events")
    op.drop_table("signal_events")
    with op.batch_alter_table("signals") as batch:
        for name in ("explanation_expired_on", "explained_given_until", "explained_since"):
            batch.drop_column(name)
        batch.drop_column("gap_reason")
        batch.drop_column("gap_since")
        batch.drop_column("clock_start")
        batch.drop_column("baseline")
