"""The engine: the nightly stages, over the rule language and the signal store.

Owns, in this package itself, the stages of a run (DESIGN section 4) that work on the
whole source and store: reading the source (``source/``), evaluating every open case
range by range (``evaluate``), the signal state machine (``reconcile``), the priority
score (``prioritise``), the temporary hit spool between evaluate and reconcile
(``spool``), the overlap of rules for ``preview --diff`` (``overlap``) and the crash-test
hook (``checkpoint``).

Rooms below it: ``engine.language`` (what a rule means, for one case) and
``engine.store`` (the signal store's tables, migrations, look-ups and run lock).

May import: ``engine.language``, ``engine.store``. Never ``notifications`` or ``jobs``.
"""
