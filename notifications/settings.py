"""SMTP settings. The password only ever comes from the environment (see jobs.config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TlsMode = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 587
    tls: TlsMode = "starttls"  # secure by default; "none" only for a local test server
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "regiesignaal@dtv.example"
    timeout_seconds: float = 30.0
    max_attempts: int = 8
