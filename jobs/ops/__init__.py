"""Unattended operation: the scheduler, the nightly job, intake, retention, the site folder.

Owns the long-running scheduler process (``scheduler``), the nightly job it starts
(``nightly``: intake, run, deliver, purge, alert, under the run lock), pulling exports
from the drop folder (``intake``), what the store and drop folder keep (``retention``),
``regiesignaal init`` (``site``) and the health surface for monitoring (``health``:
``status`` and the metrics file).

May import: ``engine``, ``notifications``, ``fixtures``, the rest of ``jobs`` but
``jobs.cli``.
"""
