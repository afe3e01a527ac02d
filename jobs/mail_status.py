"""One definition of "mail needs a look" for ``run``, ``nightly`` and ``deliver``.

Exit code 3 of those commands means: mail for case managers, team leads or operators is
not (yet) known to be delivered and an operator should look. That is the case when the
delivery was troubled (deferred, failed, uncertain, untried or a TLS problem), when the
run reported messages stuck in sending or possibly delivered, or (``deliver``) when the
outbox still holds pending or in-flight messages, or ``failed`` or ``uncertain`` ones
whose recipient has had no newer message since (``outbox.needs_look``; issue 17: a
second ``deliver`` no longer exits 0 while they remain).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from regiesignaal.notifications.delivery.smtp import DeliveryReport

EXIT_MAIL_WAITING = 3

# Problems the run reports (jobs/pipeline.py) about mail whose fate is open.
UNSETTLED_MARKERS = ("mogelijk aangekomen", "hangen in verzending")


def mail_needs_look(
    delivery: DeliveryReport | None,
    problems: Sequence[str] = (),
    outbox_counts: Mapping[str, int] | None = None,
    needs_look: Mapping[str, int] | None = None,
) -> bool:
    """True when mail waits or its outcome is unknown (see the module docstring).

    ``delivery``: the report of the delivery just done (None: no delivery tried);
    ``problems``: the run's problem lines; ``outbox_counts``: status -> number of messages
    in the outbox after the delivery (``deliver`` passes it; a run's delivery report
    already covers its own messages); ``needs_look``: failed and uncertain messages
    not settled by a newer one (``outbox.needs_look``)."""
    if delivery is not None and delivery.troubled:
        return True
    if any(marker in p for p in problems for marker in UNSETTLED_MARKERS):
        return True
    counts = outbox_counts or {}
    if any((needs_look or {}).values()):
        return True
    return bool(counts.get("pending") or counts.get("sending") or counts.get("transmitting"))
