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
- ``stall_rcpt``: recipient addresses whose RCPT is never answered (until released).

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


@dataclass
class Plan:
    slow_after_data: set[str] = field(default_factory=set)
    drop_after_data: set[str] = field(default_factory=set)
    temp_fail_first: int = 0
    temp_code: int = 451
    refuse: set[str] = field(default_factory=set)
    stall_rcpt: set[str] = field(default_factory=set)


class _Handler:
    def __init__(self, server: FaultServer) -> None:
        self.s = server

    async def _hold(self) -> None:
        release = self.s._release
        assert release is not None
        await release.wait()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        plan = self.s.plan
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


class _Controller(Controller):
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
        self._controller: _Controller | None = None
        self._release: asyncio.Event | None = None

    @property
    def port(self) -> int:
        assert self._controller is not None
        return int(self._controller.port)

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
