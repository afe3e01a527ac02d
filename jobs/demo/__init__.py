"""The demo: the whole product on synthetic data in one command, and multi-night runs.

Owns ``regiesignaal demo`` (``demo``), the source evolving between demo nights
(``nights``), a realistic multi-night run whose mail can be read back (``mailrun``: the
privacy scan, the browser test, the golden run) and the README's pictures
(``screenshots``: ``python -m regiesignaal.jobs.demo.screenshots``).

May import: ``engine``, ``notifications``, ``fixtures``, ``jobs`` but ``jobs.cli``.
"""
