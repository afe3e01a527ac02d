"""The signal store: its tables, migrations, look-ups, operator actions and run lock.

Owns the table definitions (``tables``), how databases are opened (``db``), the Alembic
migrations (``migrate``, ``migrations/``), reading the signal history and the operator
actions on it (``history``), the episode rows the state machine reads (``episodes``) and
the run lock (``lock``), the scheduler's heartbeat (``heartbeat``) and the rule sets that
checked (``rulesets``). Signal *transitions* are not made here: ``engine.reconcile`` is
the only writer of signal events.

May import: ``engine.language``. Never the stages in ``engine``, ``notifications`` or
``jobs``.
"""
