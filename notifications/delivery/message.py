"""What the outbox holds and delivery sends: a rendered message (subject, plain text, HTML).

Composition (``notifications.compose``) makes it from the notification model; the outbox
(``notifications.delivery.outbox``) stores it per (as-of date, kind, recipient).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ComposedMessage:
    """A rendered message: subject, plain text and HTML body."""

    subject: str
    text: str
    html: str
    attachment_html: str | None = None
    """An HTML page sent as an attachment (the case manager's whole list); None: none."""
