"""Notifications: who gets which message, how it is composed, queued and delivered.

Owns one module per message kind, each deciding who gets what: the case manager's list
(``case_manager``), the team lead's digest (``team_digest``), the rule report
(``rule_report``), the LKO agenda (``lko_agenda``) and the operator alert
(``operator_alert``); ``night`` asks each kind for the messages of one run. Below them:
``compose/`` (the view model, the sandboxed templates, rendering) and ``delivery/`` (the
outbox, SMTP delivery, the local mail catcher). The pipeline asks this package for
messages; it does not decide recipients itself.

May import: ``engine`` (language, store, stages). Never ``jobs``: settings arrive as
plain values or the small settings classes defined here.
"""
