"""Composition: the notification model, the sandboxed Jinja templates and rendering.

Owns the dataclasses a message is rendered from (``model``: nothing else of a case can
reach a mail), the shared formatting and template environment (``render``), one module
per message kind's views, and the templates themselves (``templates/``).

May import: ``engine.language`` (dates, words), ``notifications.delivery`` (the message
type). Never the message-kind modules above it, nor ``jobs``.
"""
