"""The source database: the case plans and the staff directory, in tables.

Owns the source's table definitions and reading them for a run (``read``), and loading the
JSONL import format (DESIGN section 7) into them (``load``). In production the source is
someone else's database and is only read; the product creates and fills one for the demo,
for tests and from a drop folder (``jobs.ops.intake``).

May import: ``engine.language``, ``engine.store`` (engine options). Never the other stages.
"""
