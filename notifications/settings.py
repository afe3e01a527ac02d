"""The settings the message kinds read, as protocols: ``jobs.config.Settings`` has them all.

Notifications never import the configuration (``jobs`` sits above them); a caller passes its
``Settings``, and a test may pass any object with these attributes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Protocol

from regiesignaal.notifications.delivery.settings import SmtpSettings


class AlertSettings(Protocol):
    """What an operator alert needs: who gets it, the time zone of its day, the relay."""

    @property
    def operators(self) -> tuple[str, ...]: ...
    @property
    def tz(self) -> dt.tzinfo: ...
    @property
    def smtp(self) -> SmtpSettings: ...
    @property
    def alert_undelivered_hours(self) -> int: ...
    @property
    def mail_enabled(self) -> bool: ...


class MailSettings(Protocol):
    """What composing the messages of a night needs (``[mail]``, ``[digest]``, ``[report]``)."""

    @property
    def smtp(self) -> SmtpSettings: ...
    def case_link(self, case_ref: str) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def digest_weekday(self) -> int: ...
    @property
    def mail_detail(self) -> str: ...
    @property
    def mail_first_cases(self) -> int: ...
    @property
    def mail_full_cases(self) -> int: ...
    @property
    def mail_staff_names(self) -> bool: ...
    @property
    def mail_templates_dir(self) -> Path | None: ...
    @property
    def rule_report_dir(self) -> Path | None: ...

    def is_digest_day(self, day: dt.date) -> bool: ...
