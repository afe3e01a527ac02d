"""A local SMTP server that saves every message it receives as an .eml file.

For demos and tests: point the SMTP settings at it (tls "none") and read the files.
Files are named ``0001-<recipient>.eml``, numbering on after the files already in the
directory, and written atomically (a reader never sees half a message). Each file starts
with ``X-Envelope-From`` and ``X-Envelope-To`` headers (the SMTP envelope), followed by
the message exactly as received.

``rcpt_policy`` lets a test or demo play a server in trouble: called with each
recipient address, it returns an SMTP reply such as ``"451 4.3.0 Probeer later"`` to
refuse that recipient, or None to accept it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger("regiesignaal.mailcatcher")

RcptPolicy = Callable[[str], str | None]

_NUMBERED = re.compile(r"^(\d+)-.*\.eml$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def sanitise(address: str) -> str:
    """A file-name-safe form of an address: unsafe characters become ``_``."""
    cleaned = _UNSAFE.sub("_", address.strip().strip("<>"))[:100]
    return cleaned or "onbekend"


def _next_number(directory: Path) -> int:
    highest = 0
    for path in directory.iterdir():
        match = _NUMBERED.match(path.name)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1


class _Handler:
    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        policy = self._catcher.rcpt_policy
        if policy is not None:
            reply = policy(address)
            if reply:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self._catcher._save(envelope.mail_from or "", list(envelope.rcpt_tos), data)
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """An aiosmtpd Controller that also works with port 0 (a free port)."""

    def _trigger_server(self) -> None:
        server = getattr(self, "server", None)
        if self.port == 0 and server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        super()._trigger_server()


class MailCatcher:
    """An SMTP server on ``host:port`` saving received messages in ``directory``.

    With ``port=0`` a free port is chosen; ``.port`` is the bound port once started.
    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        directory: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rcpt_policy: RcptPolicy | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.host = host
        self._requested_port = port
        self.rcpt_policy = rcpt_policy
        self.paths: list[Path] = []
        self._lock = threading.Lock()
        self._controller: _Controller | None = None
        self._number = 0

    @property
    def port(self) -> int:
        if self._controller is not None:
            return int(self._controller.port)
        return self._requested_port

    @property
    def messages(self) -> int:
        """Messages received since this catcher started."""
        with self._lock:
            return len(self.paths)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> MailCatcher:
        if self._controller is not None:
            raise RuntimeError("MailCatcher draait al")
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._number = _next_number(self.directory)
        controller = _Controller(
            _Handler(self), hostname=self.host, port=self._requested_port, enable_SMTPUTF8=True
        )
        controller.start()
        self._controller = controller
        log.info("mailcatcher listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None
        log.info("mailcatcher stopped after %d messages", self.messages)

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _save(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> Path:
        envelope = (
            f"X-Envelope-From: <{mail_from}>\r\n"
            f"X-Envelope-To: {', '.join(f'<{r}>' for r in rcpt_tos)}\r\n"
        ).encode("utf-8", "surrogateescape")
        with self._lock:
            number = self._number
            self._number += 1
            name = f"{number:04d}-{sanitise(rcpt_tos[0] if rcpt_tos else '')}.eml"
            final = self.directory / name
            temp = self.directory / f".{name}.tmp"
            temp.write_bytes(envelope + data)
            temp.replace(final)
            self.paths.append(final)
        log.info("mailcatcher saved message %d", number)
        return final


def serve(
    directory: Path,
    host: str = "127.0.0.1",
    port: int = 1025,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[MailCatcher], None] | None = None,
) -> int:
    """Run a MailCatcher until ``stop`` is set or Ctrl-C; returns the messages received.

    ``on_ready`` is called with the running catcher (e.g. to print its port).
    """
    stop = stop or threading.Event()
    with MailCatcher(Path(directory), host, port) as catcher:
        if on_ready is not None:
            on_ready(catcher)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        return catcher.messages
