"""Who a message goes to: a staff member's checked address, or a problem line why not.

Every message kind resolves its recipients here, so every kind refuses the same addresses
(unknown staff id, no address, not one bare address, a domain outside ``[mail]
allowed_domains``) with the same Dutch problem line naming the staff id, never the address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regiesignaal.engine.language.addresses import AddressError, check_address, domain_allowed
from regiesignaal.engine.language.casefile import shown_key
from regiesignaal.notifications.compose.render import count_nl

Staff = Mapping[str, Mapping[str, Any]]
"""The staff directory: staff id -> {name, email, role, team}."""


def address_of(
    staff: Staff,
    staff_id: str,
    problems: list[str],
    n: int,
    allowed: tuple[str, ...] = (),
) -> str | None:
    """The checked address of a staff member (one bare address, in an allowed domain), or
    None with a problem line naming the staff id (never the address); ``n`` is the number
    of lines the message would have held."""
    member = staff.get(staff_id)
    if member is None:
        problems.append(
            f"medewerker {shown_key(staff_id)} staat niet in het medewerkersbestand: "
            f"bericht ({count_nl(n, 'regel', 'regels')}) niet verstuurd; "
            "vul het medewerkersbestand aan"
        )
        return None
    email = str(member.get("email") or "").strip()
    if not email:
        problems.append(
            f"medewerker {shown_key(staff_id)} heeft geen e-mailadres: bericht niet verstuurd; "
            "vul het e-mailadres aan in het medewerkersbestand"
        )
        return None
    try:
        email = check_address(email)
    except AddressError as exc:
        problems.append(
            f"medewerker {shown_key(staff_id)}: e-mailadres onbruikbaar ({exc}): bericht niet "
            "verstuurd; vul één kaal adres in (naam@domein.nl) in het medewerkersbestand"
        )
        return None
    if not domain_allowed(email, allowed):
        problems.append(
            f"medewerker {shown_key(staff_id)}: e-mailadres buiten de toegestane domeinen ([mail] "
            "allowed_domains): bericht niet verstuurd"
        )
        return None
    return email
