"""Jobs: the pipeline that runs the stages, unattended operation, configuration, the CLI.

Owns the run's orchestration (``pipeline``: which stage runs when, the run row, the
guards; no composing, no recipients), the worker pool (``workers``), ``preview`` and
``mail preview`` as library functions, what exit code 3 means (``mail_status``), the
configuration (``config``), the unattended operation (``ops/``: scheduler, nightly job,
drop-folder intake, retention, the site folder of ``init``), the demo (``demo/``) and the
command line (``cli/``, the top layer).

May import: ``engine``, ``notifications``, ``fixtures``. Only ``jobs.cli`` imports
``jobs.cli``.
"""
