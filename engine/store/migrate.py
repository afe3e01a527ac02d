"""Run the signal store's Alembic migrations from code (no alembic.ini needed).

``upgrade(url)`` brings a store to the newest schema (a no-op when it is there already);
``is_up_to_date(url)`` lets a run refuse to start on an old schema.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


def alembic_config(store_url: str) -> Config:
    """An Alembic Config for ``store_url`` with the script location set to this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolates '%': escape it (URL-encoded passwords contain '%').
    config.set_main_option("sqlalchemy.url", store_url.replace("%", "%%"))
    config.attributes["store_url"] = store_url
    return config


def upgrade(store_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(store_url), revision)


def downgrade(store_url: str, revision: str) -> None:
    """Downgrade to ``revision``; ``"base"`` also drops Alembic's own version table."""
    command.downgrade(alembic_config(store_url), revision)
    if revision == "base":
        engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                if sa.inspect(conn).has_table(VERSION_TABLE):
                    conn.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))
        finally:
            engine.dispose()


def current_revision(store_url: str) -> str | None:
    """The store's revision, or None for an empty (never migrated) store."""
    engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def is_up_to_date(store_url: str) -> bool:
    return current_revision(store_url) == head_revision()
