"""The dead man's switch and the alert webhook (issue 17), against a real local HTTP server.

``[alerts] heartbeat_url`` is called after every succeeded night and only then;
``[alerts] webhook_url`` gets every alert as JSON with ids and counts only; a monitor
that is slow, failing or gone never fails the night.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ops_support import AS_OF, RULES, make_settings, make_source

from regiesignaal.jobs.ops.nightly import nightly
from regiesignaal.notifications.delivery import webhook


@dataclass
class Monitor:
    """What the local server received, and how it answers."""

    url: str
    requests: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    state = Monitor("")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(
                (self.command, self.path, body, self.headers.get("Content-Type") or "")
            )
            if state.delay:
                time.sleep(state.delay)
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _broken_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "med-check.yaml").write_text("id: [kapot\n")
    return rules


def test_the_heartbeat_is_called_after_a_succeeded_night_only(
    tmp_path: Path, monitor: Monitor
) -> None:
    source_url, _, _ = make_source(tmp_path, cases=40)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    url = f"{monitor.url}/ping/0f6a-token"
    settings = make_settings(source_url, store_url, heartbeat_url=url)
    assert nightly(settings, trigger="manual", as_of=AS_OF).status == "succeeded"
    assert [(m, p) for m, p, _, _ in monitor.requests] == [("GET", "/ping/0f6a-token")]
    # a night already done is skipped: no second call for it
    assert nightly(settings, trigger="manual", as_of=AS_OF).status == "skipped"
    assert len(monitor.requests) == 1


def test_no_heartbeat_for_a_refused_night(tmp_path: Path, monitor: Monitor) -> None:
    source_url, _, _ = make_source(tmp_path, cases=40)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(
        source_url, store_url, heartbeat_url=f"{monitor.url}/ping",
        rules_dir=_broken_rules(tmp_path), rules_on_broken="refuse",
    )  # fmt: skip
    assert nightly(settings, trigger="manual", as_of=AS_OF).status == "refused"
    assert monitor.requests == []


def test_the_webhook_gets_each_alert_as_json_with_ids_and_counts_only(
    tmp_path: Path, monitor: Monitor, caplog: pytest.LogCaptureFixture
) -> None:
    source_url, _, _ = make_source(tmp_path, cases=40)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(
        source_url, store_url, webhook_url=f"{monitor.url}/hook?token=geheim",
        rules_dir=_broken_rules(tmp_path), rules_on_broken="refuse",
    )  # fmt: skip
    result = nightly(settings, trigger="manual", as_of=AS_OF)
    assert result.status == "refused"
    ((method, path, body, content_type),) = monitor.requests
    assert (method, path) == ("POST", "/hook?token=geheim")
    assert content_type.startswith("application/json")
    payload = json.loads(body)
    assert payload["alert"] == "rules" and payload["run_id"] == result.run_id
    assert payload["date"] and payload["source"] == "regiesignaal"
    assert set(payload) == {"source", "alert", "title", "date", "run_id", "host", "counts"}
    text = body.decode()
    assert "MED-CHECK" not in text and "med-check" not in text and "Z-" not in text
    assert "geheim" not in caplog.text  # the address (and its token) is never logged


def test_the_webhook_carries_counts_of_undelivered_mail(tmp_path: Path, monitor: Monitor) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from regiesignaal.notifications import operator_alert as alerts

    source_url, _, _ = make_source(tmp_path, cases=40)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    settings = make_settings(source_url, store_url, webhook_url=f"{monitor.url}/hook")
    assert nightly(settings, trigger="manual", as_of=AS_OF).status == "succeeded"  # mail off
    monitor.requests.clear()
    engine = sa.create_engine(store_url)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=settings.alert_undelivered_hours + 1)
    n = alerts.check_undelivered(engine, settings, now=later)
    engine.dispose()
    (request,) = monitor.requests
    payload = json.loads(request[2])
    assert payload["alert"] == "undelivered" and payload["counts"] == {"undelivered": n} and n


@pytest.mark.parametrize("trouble", ["slow", "error", "gone"])
def test_a_monitor_in_trouble_never_fails_the_night(
    tmp_path: Path, monitor: Monitor, trouble: str, caplog: pytest.LogCaptureFixture
) -> None:
    source_url, _, _ = make_source(tmp_path, cases=40)
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    url = f"{monitor.url}/ping/token123"
    if trouble == "slow":
        monitor.delay = 3.0
    elif trouble == "error":
        monitor.status = 500
    else:
        url = "http://127.0.0.1:1/ping/token123"  # nothing listens there
    settings = make_settings(
        source_url, store_url, heartbeat_url=url, webhook_url=url, http_timeout_seconds=0.5
    )
    started = time.monotonic()
    result = nightly(settings, trigger="manual", as_of=AS_OF)
    assert (result.status, result.exit_code) == ("succeeded", 0)
    assert "heartbeat call" in caplog.text and "token123" not in caplog.text
    assert time.monotonic() - started < 60


def test_ping_and_post_answer_true_only_for_2xx(monitor: Monitor) -> None:
    assert webhook.ping(monitor.url + "/x", 2) is True
    assert webhook.post_json(monitor.url + "/y", {"a": 1}, 2) is True
    monitor.status = 404
    assert webhook.ping(monitor.url + "/x", 2) is False
    assert webhook.post_json(monitor.url + "/y", {"a": 1}, 2) is False
    assert webhook.post_json(monitor.url, {"big": "x" * 20_000}, 2) is False
    assert len(monitor.requests) == 4  # the oversized payload was never sent


def test_http_addresses_are_checked_and_never_echoed(tmp_path: Path) -> None:
    from regiesignaal.jobs.config import ConfigError, describe, load_settings

    path = tmp_path / "regiesignaal.toml"
    for bad in ('"ftp://x.example/geheim"', '"geheim"', '"https://x.example/a b geheim"', "5"):
        path.write_text(f"[alerts]\nwebhook_url = {bad}\n")
        with pytest.raises(ConfigError) as caught:
            load_settings(path, env={})
        assert "geheim" not in str(caught.value) and "webhook_url" in str(caught.value)
    path.write_text(
        '[alerts]\nheartbeat_url = "https://hc.example/ping/geheim"\nhttp_timeout_seconds = 3\n'
    )
    settings = load_settings(path, env={"REGIESIGNAAL_WEBHOOK_URL": "https://w.example/h/geheim"})
    assert settings.heartbeat_url == "https://hc.example/ping/geheim"
    assert settings.webhook_url == "https://w.example/h/geheim"
    assert settings.http_timeout_seconds == 3.0
    shown = dict(describe(settings))
    assert "geheim" not in shown["alerts.heartbeat_url"] + shown["alerts.webhook_url"]
    assert "geheim" not in repr(settings)
