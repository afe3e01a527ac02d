"""Alembic migrations of the signal store; run them through :mod:`engine.store.migrate`."""
