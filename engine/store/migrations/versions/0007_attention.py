"""Attention (issue 16): covered signals, the age of a gap, warnings, agenda history, the
whole list as an attachment.

- ``signals.covered_by``: the rule whose signal covers this one on the same case;
  ``signals.began_on``: the date the gap began (a rule's ``since``); ``signals.location``:
  the case's neutral location id;
- ``warnings``: a rule that will fire on a case if nothing changes (``warn_before``);
- ``signal_events.warning_id``: the events of a warning;
- ``agenda_items``: the cases each chain meeting's agenda held;
- ``outbox.attachment_html``: the whole list attached to a case manager's daily mail.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.add_column(sa.Column("covered_by", sa.String(64)))
        batch.add_column(sa.Column("began_on", sa.Date()))
        batch.add_column(sa.Column("location", sa.String(64)))
    with op.batch_alter_table("signal_events") as batch:
        batch.add_column(sa.Column("warning_id", sa.Integer()))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("attachment_html", sa.Text()))
    op.create_table(
        "warnings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_ref", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("regievoerder", sa.String(64)),
        sa.Column("team", sa.String(64)),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("last_seen_on", sa.Date(), nullable=False),
        sa.Column("closed_on", sa.Date()),
        sa.Column("close_reason", sa.String(20)),
        sa.Column("opened_run_id", sa.Integer()),
        sa.Column("closed_run_id", sa.Integer()),
    )
    op.create_index("ix_warnings_regievoerder", "warnings", ["regievoerder"])
    op.create_index(
        "uq_warnings_one_open",
        "warnings",
        ["case_ref", "rule_id"],
        unique=True,
        sqlite_where=sa.text("closed_on IS NULL"),
        postgresql_where=sa.text("closed_on IS NULL"),
    )
    op.create_table(
        "agenda_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("meeting", sa.String(128), nullable=False),
        sa.Column("meeting_on", sa.Date(), nullable=False),
        sa.Column("case_ref", sa.String(64), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("meeting", "meeting_on", "case_ref", name="uq_agenda_items_once"),
    )
    op.create_index("ix_agenda_items_meeting", "agenda_items", ["meeting", "meeting_on"])


def downgrade() -> None:
    op.drop_index("ix_agenda_items_meeting", table_name="agenda_items")
    op.drop_table("agenda_items")
    op.drop_index("uq_warnings_one_open", table_name="warnings")
    op.drop_index("ix_warnings_regievoerder", table_name="warnings")
    op.drop_table("warnings")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("attachment_html")
    with op.batch_alter_table("signal_events") as batch:
        batch.drop_column("warning_id")
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("location")
        batch.drop_column("began_on")
        batch.drop_column("covered_by")
