"""The scheduler's stored job names its function by the one installed package (issue 15).

Before the restructuring the nightly job was stored as ``jobs.scheduler:nightly_job``;
the product is now one import package and the function is
``regiesignaal.jobs.ops.scheduler:nightly_job``. APScheduler imports a stored job's
function when it loads the job and silently deletes a job it cannot import, which would
drop the job's next run time (and with it a night missed while the scheduler was down).
This migration rewrites the reference inside the stored job state and keeps everything
else: trigger, next run time, misfire grace.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "jobs.scheduler:nightly_job"
NEW = "regiesignaal.jobs.ops.scheduler:nightly_job"

jobs = sa.table(
    "apscheduler_jobs",
    sa.column("id", sa.Unicode(191)),
    sa.column("job_state", sa.LargeBinary),
)


def _rewrite(old: str, new: str) -> None:
    conn = op.get_bind()
    for job_id, state in conn.execute(sa.select(jobs.c.id, jobs.c.job_state)).all():
        job = pickle.loads(state)  # written by APScheduler's own job store, in this store
        if not isinstance(job, dict) or job.get("func") != old:
            continue
        job["func"] = new
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(job_state=pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
        )


def upgrade() -> None:
    _rewrite(OLD, NEW)


def downgrade() -> None:
    _rewrite(NEW, OLD)
