"""Against a real Postfix with its ordinary per-client rate limit (issue 17, item 8):
``smtpd_client_message_rate_limit = 10`` answers 450 at MAIL after ten messages per
window. Before, 10 of 37 lists went out and 27 stayed ``pending`` for the day; now the
relay's deferral costs no attempt and the scheduler's mail retry (called here once per
window with a clock a minute further each time) gets all 37 out, once each.

Postfix runs as the test's own process (tests/postfix_relay.py), relaying to a counting
aiosmtpd sink. Outside CI the test skips without Debian's postfix package (or root); in
CI (CI=true) that is a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from faultsmtp import FaultServer
from postfix_relay import PostfixRelay, available

from regiesignaal.engine.store.tables import metadata
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.ops.mail_retry import retry_mail
from regiesignaal.notifications.delivery import outbox as ob
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.delivery.settings import SmtpSettings

pytestmark = pytest.mark.slow

NIGHT = dt.datetime(2026, 11, 27, 5, 0, tzinfo=dt.UTC)  # 06:00 in Amsterdam
WINDOW = 2  # seconds per rate-limit window (anvil_rate_time_unit), for a short test
RATE = 10


@pytest.fixture
def postfix_available() -> None:
    if not available():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("Debian's postfix package is required in CI (see .ci/run)")
        pytest.skip("Debian's postfix package (and root) needed")


def test_37_lists_through_a_postfix_rate_limit_all_go_out_the_same_morning(
    postfix_available: None, tmp_path: Path
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        for i in range(37):
            ob.enqueue(
                conn,
                run_id=1,
                as_of=NIGHT.date(),
                kind="regievoerder",
                recipient_id=f"rv-{i}",
                recipient_email=f"rv-{i}@dtv.example",
                message=ComposedMessage(f"Onderwerp {i}", f"lijst {i}\n", f"<p>{i}</p>"),
                sender_domain="dtv.example",
                now=NIGHT,
            )
    with FaultServer() as sink, PostfixRelay(sink.port, rate=RATE, window=WINDOW) as relay:
        smtp = SmtpSettings(
            host="127.0.0.1", port=relay.port, tls="none", sender="regiesignaal@dtv.example"
        )
        settings = dataclasses.replace(Settings(), smtp=smtp, schedule="06:00")
        first = retry_mail(settings, engine, NIGHT + dt.timedelta(seconds=5))
        assert first.delivery is not None
        assert (first.delivery.sent, first.delivery.deferred) == (RATE, 37 - RATE)
        assert first.delivery.failed == 0
        for minute in range(1, 8):
            time.sleep(WINDOW + 0.5)  # a new window at the relay
            retry_mail(settings, engine, NIGHT + dt.timedelta(minutes=minute, seconds=5))
        deadline = time.monotonic() + 30
        while sum(sink.received.values()) < 37 and time.monotonic() < deadline:
            time.sleep(0.2)  # postfix passes the queued mail on to the sink
        assert "rate limit exceeded" in relay.log()
    with engine.connect() as conn:
        statuses = conn.execute(sa.select(ob.outbox.c.status, ob.outbox.c.attempts)).all()
    engine.dispose()
    assert sorted(set(statuses)) == [("sent", 1)]
    assert len(sink.received) == 37 and set(sink.received.values()) == {1}
