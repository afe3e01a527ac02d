"""Alembic environment for the signal store, driven from :mod:`engine.store.migrate`.

There is no alembic.ini: :func:`engine.store.migrate.alembic_config` builds the Config in code.
The target database comes from ``config.attributes["connection"]`` (an open SQLAlchemy
connection, used as is) or else from ``config.attributes["store_url"]`` / the
``sqlalchemy.url`` option. SQLite gets ``render_as_batch`` so later ALTERs work there.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from regiesignaal.engine.store.tables import metadata

config = context.config
target_metadata = metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    url = config.attributes.get("store_url") or config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=str(url).startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = config.attributes.get("store_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no store URL: use engine.store.migrate, which sets it")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
