"""A test hook to stop a real process at a known point (crash tests).

When the environment variable ``REGIESIGNAAL_TEST_STOP_AT`` is ``<point>[#<n>]=<file>``,
the ``n``-th (default: first) call of ``checkpoint(<point>)`` writes the process id to
``<file>`` and then waits forever, so a test can SIGKILL the process exactly there. Unset
(always, outside the test suite) it does nothing. Points: ``evaluated``, ``reconciled``,
``composed`` (stage boundaries of a run); in delivery ``deliver.claimed`` (a batch claimed
and committed, nothing of it sent), ``deliver.transmitting`` (right before a message's
data goes out, its batch marked transmitting), ``deliver.accepted`` (the server accepted
a message, its outcome not yet recorded) and ``deliver.sent`` (once per message, after
its batch's outcomes were committed). A test that creates ``<file>.go`` lets the
process go on from there (a run that is paused, not killed).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

ENV = "REGIESIGNAAL_TEST_STOP_AT"
_calls: Counter[str] = Counter()


def checkpoint(point: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, marker = spec.partition("=")
    name, _, nth = target.partition("#")
    if name != point:
        return
    _calls[point] += 1
    if _calls[point] != int(nth or 1):
        return
    Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    go = Path(marker + ".go")
    while not go.exists():  # until killed, or told to go on
        time.sleep(0.1)
