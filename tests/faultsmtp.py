"""A fault-injecting SMTP server (aiosmtpd) for the delivery tests.

It counts every message it stored per Message-ID, and plays a relay in trouble by plan:

- ``slow_after_data``: Message-IDs (or ``"*"``) whose final reply to DATA is held back
  until the test releases it (the message IS stored first: a content scanner, a big
  message); the client times out meanwhile;
- ``drop_after_data``: Message-IDs whose connection is closed right after storing, no
  reply at all;
- ``temp_fail_first``: the first N messages get ``451`` (or ``421`` and a closed
  connection with ``temp_code=421``) at RCPT;
- ``refuse``: recipient addresses answered ``550`` at RCPT;
- ``stall_rcpt``: recipient addresses whose RCPT is never answered (until released);
- ``per_connection``: after that many messages stored over one connection, the next
  transaction is ended at ``limit_at`` (``MAIL``, ``RCPT`` or ``DATA``, the DATA command
  before its 354) with ``limit_reply``: ``421`` (the reply, then the connection closed) or
  ``close`` (closed without a word), as relays that limit messages per connection do;
  ``end_every_session``: every session is ended so at ``limit_at``, before any message;
- ``mail_window``: at most that many MAIL commands accepted per window, the rest
  answered ``mail_code`` (450: a rate limit, as Postfix's
  ``smtpd_client_message_rate_limit``) until the test calls ``next_window()``;
- ``refuse_mail``: every MAIL answered with this code (550: the sender not allowed).

``connections`` counts the connections made, ``mail_seen`` the MAIL commands.

Nothing in it sleeps for a set time: held replies wait on an event the test (or
``stop()``) sets, so the tests do not depend on timing beyond the client's own timeout.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass
class Plan:
    slow_after_data: set[str] = field(default_factory=set)
    drop_after_data: set[str] = field(default_factory=set)
    temp_fail_first: int = 0
    temp_code: int = 451
    refuse: set[str] = field(default_factory=set)
    stall_rcpt: set[str] = field(default_factory=set)
    per_connection: int = 0
    end_every_session: bool = False
    limit_at: str = "MAIL"
    limit_reply: str = "421"
    mail_window: int = 0
    mail_code: int = 450
    refuse_mail: int = 0


class _Handler:
    def __init__(self, server: FaultServer) -> None:
        self.s = server

    async def _hold(self) -> None:
        release = self.s._release
        assert release is not None
        await release.wait()

    def at_limit(self, session: Any, command: str) -> bool:
        plan = self.s.plan
        if plan.end_every_session:
            return plan.limit_at == command
        stored = int(getattr(session, "fault_stored", 0))
        return (
            bool(plan.per_connection)
            and plan.limit_at == command
            and (stored >= plan.per_connection)
        )

    def end_session(self, server: Any) -> str:
        """421 and close (the close runs after the reply went out), or close at once."""
        with self.s.lock:
            self.s.ended += 1
        if self.s.plan.limit_reply == "421":
            server.loop.call_soon(server.transport.close)
        else:
            server.transport.close()
        return "421 4.7.0 Te veel berichten over deze verbinding, verbinding sluit"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        plan = self.s.plan
        with self.s.lock:
            self.s.mail_seen += 1
        if self.at_limit(session, "MAIL"):
            return self.end_session(server)
        if plan.refuse_mail:
            return f"{plan.refuse_mail} 5.7.1 Afzender niet toegestaan"
        if plan.mail_window:
            with self.s.lock:
                if self.s.window_used >= plan.mail_window:
                    return f"{plan.mail_code} 4.7.1 Te veel berichten, probeer het later"
                self.s.window_used += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        plan = self.s.plan
        if self.at_limit(session, "RCPT"):
            return self.end_session(server)
        if address in plan.stall_rcpt:
            await self._hold()
            return "451 4.3.0 te laat"
        with self.s.lock:
            self.s.rcpt_seen += 1
            n = self.s.rcpt_seen
        if n <= plan.temp_fail_first:
            if plan.temp_code == 421:
                server.transport.close()
                return "421 4.3.2 Dienst niet beschikbaar"
            return "451 4.3.0 Probeer het later"
        if address in plan.refuse:
            return "550 5.1.1 Onbekende ontvanger"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        mid = str(msg["Message-ID"] or "")
        session.fault_stored = int(getattr(session, "fault_stored", 0)) + 1
        with self.s.lock:
            self.s.received[mid] += 1
            self.s.recipients[mid] = list(envelope.rcpt_tos)
        plan = self.s.plan
        if mid in plan.drop_after_data or "*" in plan.drop_after_data:
            server.transport.close()
            return "250 stored, but nobody hears it"
        if mid in plan.slow_after_data or "*" in plan.slow_after_data:
            await self._hold()
        return "250 Message accepted for delivery"


class _FaultSMTP(SMTP):
    """aiosmtpd's server with a hook before the DATA command's 354 (``limit_at="DATA"``)."""

    async def smtp_DATA(self, arg: str) -> None:
        handler = self.event_handler
        assert isinstance(handler, _Handler)
        if (
            self.envelope is not None
            and self.envelope.rcpt_tos
            and handler.at_limit(self.session, "DATA")
        ):
            reply = handler.end_session(self)
            if handler.s.plan.limit_reply == "421":
                await self.push(reply)
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        handler = self.handler
        if isinstance(handler, _Handler):
            with handler.s.lock:
                handler.s.connections += 1
        return _FaultSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        srv = getattr(self, "server", None)
        if self.port == 0 and srv is not None and srv.sockets:
            self.port = int(srv.sockets[0].getsockname()[1])
        super()._trigger_server()


class FaultServer:
    """Use as a context manager; ``.port`` is the bound port, ``.received`` counts
    stored copies per Message-ID."""

    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = plan or Plan()
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.recipients: dict[str, list[str]] = {}
        self.rcpt_seen = 0
        self.mail_seen = 0
        self.connections = 0
        self.ended = 0
        self.window_used = 0
        self._controller: _Controller | None = None
        self._release: asyncio.Event | None = None

    @property
    def port(self) -> int:
        assert self._controller is not None
        return int(self._controller.port)

    def next_window(self) -> None:
        """A new rate-limit window: ``mail_window`` more MAIL commands are accepted."""
        with self.lock:
            self.window_used = 0

    def release(self) -> None:
        """Let every held reply go."""
        controller, event = self._controller, self._release
        if controller is not None and event is not None:
            controller.loop.call_soon_threadsafe(event.set)

    def __enter__(self) -> FaultServer:
        controller = _Controller(_Handler(self), hostname="127.0.0.1", port=0)
        controller.start()
        self._controller = controller

        async def make_event() -> asyncio.Event:
            return asyncio.Event()

        self._release = asyncio.run_coroutine_threadsafe(make_event(), controller.loop).result()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
