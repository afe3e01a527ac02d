"""Outbox index on (kind, recipient_id, status).

Queueing a message supersedes the older pending messages of the same kind and recipient
and looks for a newer one (``notifications.delivery.outbox.enqueue``); without this index each of
those scans every pending row, so queueing n messages cost O(n^2) (issue 11).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_kind_recipient", "outbox", ["kind", "recipient_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_outbox_kind_recipient", table_name="outbox")
