"""``regiesignaal mail preview``: what one staff member would get, written to files.

The message is composed exactly as a run composes it (same rules metadata, case bonus
from evaluating the source, same catch-up of "new", same ``[mail]`` settings and
template overrides), from the signals in the store as they stand. Nothing is queued,
sent or written to the store: the store is only read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from regiesignaal.engine.source.read import load_staff
from regiesignaal.engine.store.db import store_engine
from regiesignaal.jobs.config import Settings
from regiesignaal.jobs.pipeline import RunRefused, load_checked_rules, source_engine
from regiesignaal.jobs.preview import preview
from regiesignaal.notifications.case_manager import (
    CaseManagerList,
    case_manager_lines,
    new_since,
    own_figures,
    render_list,
)
from regiesignaal.notifications.compose.model import Recipient
from regiesignaal.notifications.compose.rule_report import RuleInfo, compose_rule_report
from regiesignaal.notifications.compose.team_digest import compose_team_digest
from regiesignaal.notifications.delivery import outbox
from regiesignaal.notifications.delivery.message import ComposedMessage
from regiesignaal.notifications.delivery.smtp import mime_message
from regiesignaal.notifications.night import mail_options
from regiesignaal.notifications.rule_report import Thresholds, rule_report, shadow_report
from regiesignaal.notifications.shared import RuleMeta
from regiesignaal.notifications.team_digest import missed_digest_starts, team_digests


@dataclass(frozen=True)
class Preview:
    kind: str  # regievoerder | teamleider | beleid
    recipient: Recipient
    as_of: dt.date
    message: ComposedMessage


def compose_preview(settings: Settings, staff_id: str, as_of: dt.date) -> Preview:
    """The message ``staff_id`` would get for ``as_of``. Raises RunRefused (Dutch message)
    for an unknown staff member, a role that gets no mail, or broken rules."""
    ruledir = load_checked_rules(settings)
    compiled, extracted = preview(settings, ruledir, as_of)
    source = source_engine(settings.source_url)
    try:
        staff = load_staff(source)
    finally:
        source.dispose()
    member = staff.get(staff_id)
    if member is None:
        raise RunRefused(
            f"medewerker {staff_id} staat niet in het medewerkersbestand; "
            "kies een id uit het medewerkersbestand"
        )
    role = member.get("role")
    recipient = Recipient(staff_id, str(member.get("email") or ""))
    meta = {cr.rule.id: RuleMeta.of(cr.rule) for cr in compiled.rules}
    bonus = {h.case_ref: h.bonus for h in extracted.hits if h.bonus}
    shape = mail_options(settings)
    store = store_engine(settings.store_url)
    try:
        with store.connect() as conn:
            if role == "regievoerder":
                reached = outbox.last_reached(conn, "regievoerder", as_of)
                found = case_manager_lines(
                    conn, as_of, meta, settings.case_link, bonus, last_reached=reached
                ).lists.get(staff_id, CaseManagerList())
                if as_of.weekday() == settings.digest_weekday:  # "Jouw cijfers", weekly
                    found.own = own_figures(
                        conn, as_of, meta, staff, extracted.open_per_manager
                    ).get(staff_id)
                since = new_since(reached.get(staff_id), as_of)
                message = render_list((staff_id, recipient.email, as_of, found, shape, since))
            elif role == "teamleider":
                catch_up = missed_digest_starts(
                    as_of,
                    settings.digest,
                    settings.is_digest_day,
                    staff,
                    outbox.last_reached(conn, "teamleider", as_of),
                )
                open_cases = extracted.open_per_manager
                digest = team_digests(
                    conn,
                    as_of,
                    settings.digest,
                    staff,
                    open_cases,
                    meta,
                    settings.case_link,
                    period_starts=catch_up,
                    staff_names=settings.mail_staff_names,
                ).digests.get(str(member.get("team") or ""))
                if digest is None:
                    raise RunRefused(
                        f"teamleider {staff_id} heeft geen team in het medewerkersbestand; "
                        "vul het team aan"
                    )
                message = compose_team_digest(recipient, digest, shape)
            elif role == "beleid":
                info = {
                    cr.rule.id: RuleInfo(cr.rule.id, cr.rule.mail_title, cr.rule.mail_code)
                    for cr in compiled.rules
                    if not cr.rule.shadow
                }
                in_shadow = {
                    cr.rule.id: RuleInfo(cr.rule.id, cr.rule.mail_title, cr.rule.mail_code)
                    for cr in compiled.rules
                    if cr.rule.shadow
                }
                message = compose_rule_report(
                    rule_report(
                        conn, as_of, info, extracted.open_count, thresholds=Thresholds.of(settings)
                    ),
                    show_rule_ids=False,
                    templates_dir=settings.mail_templates_dir,
                    shadow=shadow_report(conn, as_of, in_shadow, info) if in_shadow else None,
                )
            else:
                raise RunRefused(
                    f"medewerker {staff_id} heeft de rol '{role}'; alleen regievoerders, "
                    "teamleiders en beleidsmedewerkers krijgen een bericht"
                )
            kind = str(role)
    finally:
        store.dispose()
    return Preview(kind, recipient, as_of, message)


def write_preview(result: Preview, out_dir: Path, sender: str) -> list[Path]:
    """Write ``<staff id>-<as_of>.html``, ``.txt`` and ``.eml`` into ``out_dir``, and the
    whole list (a case manager's attachment) as ``<staff id>-<as_of>-volledig.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    safe_id = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in result.recipient.staff_id)
    stem = out_dir / f"{safe_id}-{result.as_of.isoformat()}"
    message = result.message
    msg = mime_message(
        sender,
        result.recipient.email or "onbekend@invalid",
        message.subject,
        message.text,
        message.html,
        dt.datetime.now(dt.UTC),
        attachment_html=message.attachment_html,
        as_of=result.as_of,
    )
    paths = [stem.with_suffix(".html"), stem.with_suffix(".txt"), stem.with_suffix(".eml")]
    paths[0].write_text(message.html, encoding="utf-8")
    paths[1].write_text(message.text, encoding="utf-8")
    paths[2].write_bytes(bytes(msg))
    if message.attachment_html:
        whole = out_dir / f"{safe_id}-{result.as_of.isoformat()}-volledig.html"
        whole.write_text(message.attachment_html, encoding="utf-8")
        paths.append(whole)
    return paths
