"""Calls over HTTP beside mail (issue 17): the dead man's switch and the alert webhook.

``ping(url)``: a GET to ``[alerts] heartbeat_url`` after every succeeded night, so an
outside monitor (healthchecks.io, Cronitor, Uptime Kuma's push monitor, a Dead Man's Snitch)
notices when the pings stop. ``post_json(url, payload)``: an alert as a JSON object to
``[alerts] webhook_url``, a second channel that does not travel over the mail relay.

Both have a short timeout and never raise: a monitor that is down must not fail a night.
The address is never logged (its path or query often holds a token); a failure is logged
by its kind only. Payloads hold ids, dates and counts only.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("regiesignaal.webhook")

USER_AGENT = "regiesignaal"
MAX_PAYLOAD = 16_384  # bytes: a payload of ids and counts is far smaller


def _call(request: urllib.request.Request, what: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
            ok = 200 <= response.status < 300
    except urllib.error.HTTPError as exc:
        log.error("%s: HTTP status %d", what, exc.code)
        return False
    except Exception as exc:  # timeouts, refused connections, TLS, bad addresses: never fatal
        log.error("%s failed: %s", what, type(exc).__name__)
        return False
    if not ok:
        log.error("%s: HTTP status %d", what, response.status)
    return ok


def ping(url: str, timeout: float) -> bool:
    """GET ``url``; True on a 2xx answer. Never raises."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": USER_AGENT})
    ok = _call(request, "heartbeat call", timeout)
    if ok:
        log.info("heartbeat call done")
    return ok


def post_json(url: str, payload: Mapping[str, Any], timeout: float) -> bool:
    """POST ``payload`` as JSON to ``url``; True on a 2xx answer. Never raises."""
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    if len(body) > MAX_PAYLOAD:
        log.error("webhook payload too large (%d bytes); not sent", len(body))
        return False
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT},
    )
    return _call(request, "webhook call", timeout)
