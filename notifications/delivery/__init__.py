"""Delivery: the outbox, SMTP delivery and the local mail catcher.

Owns the outbox table's queueing and claiming (``outbox``), sending over SMTP with
aiosmtplib (``smtp``), the SMTP settings (``settings``), the composed message it carries
(``message``), a local SMTP server that saves what it receives (``mailserver``, for
the demo and tests) and the HTTP calls beside mail (``webhook``: dead man's switch, alert
webhook).

May import: ``engine.language`` (addresses), ``engine.store`` (tables), ``engine``
(checkpoint). Never ``notifications.compose``, the message kinds, or ``jobs``.
"""
