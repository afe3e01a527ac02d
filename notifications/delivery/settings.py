"""SMTP settings. The password only ever comes from the environment (see jobs.config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TlsMode = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class SmtpSettings:
    """How and where mail is delivered.

    ``timeout_seconds`` is per SMTP step (connecting, each command and its reply, the
    reply to the end of the message data); ``deadline_seconds`` bounds one whole
    delivery (all messages of a run or a ``deliver``): once it has passed no further
    message is started, and the rest wait untried for the next delivery.
    ``allowed_domains`` (from ``[mail] allowed_domains``): when not empty, mail goes only
    to addresses in these domains (exact match). ``ca_file``: a PEM file with the
    certificate authority (or authorities) the relay's certificate must chain to, for an
    internal CA; the system's CAs when None.

    ``batch_size``: messages claimed in one commit, sent over one connection and recorded
    in one commit (1-1000); each message is marked in flight on its own, right before
    its data (one commit per message, issue 17), so a crash leaves at most one message
    per connection ``uncertain`` ("mogelijk aangekomen"; never resent automatically),
    whatever the batch size. ``connections``: how many such batches go out at once,
    each over its own connection (1-8); 1 by default, as more did not pay against the
    local mail catcher (one process, and encoding the messages is CPU work in this process).
    """

    host: str = "localhost"
    port: int = 587
    tls: TlsMode = "starttls"  # secure by default; "none" only for a local test server
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "regiesignaal@dtv.example"
    timeout_seconds: float = 30.0
    max_attempts: int = 8
    deadline_seconds: float = 1800.0
    ca_file: str | None = None
    allowed_domains: tuple[str, ...] = ()
    batch_size: int = 50
    connections: int = 1
    retry_until: str = "12:00"
    """``HH:MM`` in ``[run] timezone``: the scheduler retries deferred mail every minute
    from the night's time on; mail of the day still not out at this time is alerted to
    the operators (jobs/ops/mail_retry.py). Retries go on after it."""
