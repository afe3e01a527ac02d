"""The local mail catcher: a real aiosmtpd server, driven by the stdlib SMTP client."""

from __future__ import annotations

import email
import smtplib
import socket
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regiesignaal.notifications.delivery.mailserver import MailCatcher, sanitise, serve


def _send(port: int, to: str, subject: str = "Test", body: str = "Hallo") -> None:
    msg = EmailMessage()
    msg["From"] = "regiesignaal@dtv.example"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(msg)


def test_port_zero_binds_a_free_port_and_saves_each_message(tmp_path: Path) -> None:
    with MailCatcher(tmp_path) as catcher:
        assert catcher.port > 0
        _send(catcher.port, "rv-001@dtv.example", subject="Eerste", body="één")
        _send(catcher.port, "tl/../x@dtv.example", subject="Tweede")
        assert catcher.messages == 2
    names = sorted(p.name for p in tmp_path.glob("*.eml"))
    assert names == ["0001-rv-001@dtv.example.eml", "0002-tl_.._x@dtv.example.eml"]
    first = email.message_from_bytes((tmp_path / names[0]).read_bytes())
    assert first["X-Envelope-To"] == "<rv-001@dtv.example>"
    assert first["X-Envelope-From"] == "<regiesignaal@dtv.example>"
    assert first["Subject"] == "Eerste"
    payload = first.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.decode("utf-8").strip() == "één"
    assert not list(tmp_path.glob(".*.tmp"))  # files are written atomically


def test_numbering_continues_after_existing_files(tmp_path: Path) -> None:
    (tmp_path / "0007-oud@dtv.example.eml").write_bytes(b"Subject: oud\r\n\r\noud\r\n")
    (tmp_path / "notitie.txt").write_text("geen bericht")
    with MailCatcher(tmp_path) as catcher:
        _send(catcher.port, "nieuw@dtv.example")
    assert (tmp_path / "0008-nieuw@dtv.example.eml").exists()
    assert (tmp_path / "0007-oud@dtv.example.eml").read_bytes().startswith(b"Subject: oud")


def test_rcpt_policy_refuses_a_recipient_and_saves_nothing(tmp_path: Path) -> None:
    def policy(address: str) -> str | None:
        return "451 4.3.0 Probeer het later" if address.startswith("later@") else None

    with MailCatcher(tmp_path, rcpt_policy=policy) as catcher:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            _send(catcher.port, "later@dtv.example")
        assert info.value.recipients["later@dtv.example"][0] == 451
        _send(catcher.port, "nu@dtv.example")
        assert catcher.messages == 1
    assert [p.name for p in tmp_path.glob("*.eml")] == ["0001-nu@dtv.example.eml"]


def test_stopped_catcher_no_longer_listens(tmp_path: Path) -> None:
    with MailCatcher(tmp_path) as catcher:
        port = catcher.port
    assert not catcher.running
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_start_twice_is_refused(tmp_path: Path) -> None:
    with MailCatcher(tmp_path) as catcher, pytest.raises(RuntimeError):
        catcher.start()


def test_serve_blocks_until_stopped_and_returns_the_count(tmp_path: Path) -> None:
    stop = threading.Event()
    ready = threading.Event()
    ports: list[int] = []
    results: list[int] = []

    def on_ready(catcher: MailCatcher) -> None:
        ports.append(catcher.port)
        ready.set()

    thread = threading.Thread(
        target=lambda: results.append(
            serve(tmp_path / "mail", port=0, stop=stop, on_ready=on_ready)
        )
    )
    thread.start()
    try:
        assert ready.wait(30)
        _send(ports[0], "rv-002@dtv.example")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert results == [1]
    assert [p.name for p in (tmp_path / "mail").glob("*.eml")] == ["0001-rv-002@dtv.example.eml"]


@given(st.text(max_size=300))
def test_sanitise_gives_a_safe_non_empty_file_name_part(address: str) -> None:
    name = sanitise(address)
    assert name
    assert len(name) <= 100
    assert all(ch.isascii() and (ch.isalnum() or ch in "._@+-") for ch in name)
    assert "/" not in name and "\\" not in name
