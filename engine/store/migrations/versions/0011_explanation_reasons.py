"""Reasons and re-arming (issue 18): an explanation lapses when the facts its rule reads
change.

- ``signals.explained_inputs``: the fingerprint of the rule's inputs for the case, kept
  when the explanation in force was first honoured;
- ``signals.explanation_lapsed_on``: the as-of date an explanation lapsed because those
  inputs changed; ``signals.explanation_lapsed_given``: the end date (as given) of that
  explanation, which is not honoured again in the episode;
- ``signals.explained_reason``: the reason code of the explanation in force;
  ``signals.outcome`` / ``outcome_reason``: how a closed episode ended (resolved,
  explained with its reason, case_closed, rule_changed, covered).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.add_column(sa.Column("explained_inputs", sa.String(16)))
        batch.add_column(sa.Column("explanation_lapsed_on", sa.Date()))
        batch.add_column(sa.Column("explanation_lapsed_given", sa.Date()))
        batch.add_column(sa.Column("explained_reason", sa.String(30)))
        batch.add_column(sa.Column("outcome", sa.String(20)))
        batch.add_column(sa.Column("outcome_reason", sa.String(30)))


def downgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.drop_column("outcome_reason")
        batch.drop_column("outcome")
        batch.drop_column("explained_reason")
        batch.drop_column("explanation_lapsed_given")
        batch.drop_column("explanation_lapsed_on")
        batch.drop_column("explained_inputs")
