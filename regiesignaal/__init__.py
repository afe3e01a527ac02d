"""regiesignaal: a rule-based quality-signal engine for the departure case plans of DT&V.

Installed, the product is this one import package. The repository keeps the folders the
project brief names at its top and maps each onto a sub-package here (setuptools'
``package-dir``, see ``pyproject.toml``):

- ``regiesignaal.engine`` (``engine/``): the rule language, the signal store and the
  nightly stages;
- ``regiesignaal.notifications`` (``notifications/``): who gets which message, how it is
  composed, queued and delivered;
- ``regiesignaal.jobs`` (``jobs/``): the pipeline that runs the stages, the unattended
  operation (scheduler, nightly job, intake, retention), the configuration and the
  command line;
- ``regiesignaal.fixtures`` (``fixtures/``): synthetic case plans for demos and tests;
- ``rules/`` and ``schema/``: the default rule pack and its JSON Schemas (data only).

Dependencies point one way: ``engine.language`` -> ``engine.store`` -> the stages in
``engine`` (and ``fixtures``) -> ``notifications`` -> ``jobs`` -> ``jobs.cli``; a test
(``tests/test_layers.py``) fails when a lower room imports a higher one. This module holds
no code; ``docs/architecture.md`` is the map.
"""
