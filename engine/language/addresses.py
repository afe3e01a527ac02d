"""Checking e-mail addresses: staff addresses, the sender, the recipient domain allow-list.

An address is accepted only as one bare address (``naam@domein.nl``): no display name
(``Naam <x@y>`` would put a name in a header), no second address (``a@x, b@y``), no line
break or other control character (header injection), ASCII only, syntax checked by
``email-validator`` without any DNS look-up. Messages say what is wrong, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from email_validator import EmailNotValidError, validate_email

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LENGTH = 254


class AddressError(ValueError):
    """An unusable address; the message (Dutch) never repeats the address."""


def check_address(value: object) -> str:
    """The address, normalised (domain in lower case); raises AddressError.

    Shape: ``local@domain``; a display name, two addresses, control characters, non-ASCII
    characters and syntax errors are refused.
    """
    if not isinstance(value, str):
        raise AddressError("geen tekst")
    if _CONTROL.search(value):
        raise AddressError("bevat een regeleinde of ander stuurteken")
    text = value.strip(" ")
    if not text:
        raise AddressError("leeg")
    if _CONTROL.search(text):
        raise AddressError("bevat een regeleinde of ander stuurteken")
    if len(text) > MAX_LENGTH:
        raise AddressError(f"langer dan {MAX_LENGTH} tekens")
    if "<" in text or ">" in text or '"' in text:
        raise AddressError("bevat een weergavenaam of aanhalingstekens; alleen het adres zelf")
    if any(sep in text for sep in (",", ";")) or text.count("@") != 1 or " " in text:
        raise AddressError("bevat meer dan één adres of een spatie; precies één adres per veld")
    try:
        result = validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError:
        raise AddressError("geen geldig e-mailadres (vorm: naam@domein.nl)") from None
    return str(result.normalized)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def parse_domains(values: Iterable[object]) -> tuple[str, ...]:
    """A domain allow-list: lower-case domain names; raises ValueError on a bad entry."""
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError('verwacht een lijst van domeinnamen, bijv. ["dtv.example"]')
        domain = value.strip().lower().lstrip("@")
        if not re.fullmatch(
            r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", domain
        ):
            raise ValueError("een domeinnaam in de lijst is ongeldig (vorm: dtv.example)")
        if domain not in out:
            out.append(domain)
    return tuple(out)


def domain_allowed(address: str, allowed: tuple[str, ...]) -> bool:
    """True when ``allowed`` is empty (no allow-list) or the address's domain is in it.

    The match is exact: ``dtv.example`` does not admit ``sub.dtv.example``; list each.
    """
    return not allowed or domain_of(address) in allowed


def check_addresses(values: Iterable[object], allowed: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A list of addresses (e.g. operator addresses in the configuration), each checked by
    ``check_address`` and against the domain allow-list; raises AddressError naming the
    position (1-based), never the value."""
    out: list[str] = []
    for n, value in enumerate(values, start=1):
        try:
            address = check_address(value)
        except AddressError as exc:
            raise AddressError(f"adres {n}: {exc}") from None
        if not domain_allowed(address, allowed):
            raise AddressError(f"adres {n}: buiten de toegestane domeinen")
        out.append(address)
    return tuple(out)
