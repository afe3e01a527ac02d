"""Progress on a terminal for long work (rich), quiet when not on a terminal.

``busy(text)`` shows a spinner with ``text`` on stderr while the block runs, and the
current stage of a run (from ``jobs.pipeline.stage_listeners``) when one is running.
When stderr is not a terminal (cron, systemd, a pipe) nothing is printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

STAGES_NL = {
    "extract_evaluate": "zaken lezen en regels toepassen",
    "reconcile": "signalen bijwerken",
    "compose": "berichten opstellen",
    "deliver": "berichten versturen",
}


@contextmanager
def busy(text: str, console: Console | None = None) -> Iterator[None]:
    """A spinner with ``text`` (and the run's current stage) on a terminal only."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    from regiesignaal.jobs import pipeline

    with console.status(text) as status:

        def show(stage: str) -> None:
            status.update(f"{text}: {STAGES_NL.get(stage, stage)}")

        pipeline.stage_listeners.append(show)
        try:
            yield
        finally:
            pipeline.stage_listeners.remove(show)
