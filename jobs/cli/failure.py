"""No traceback on any input: how the command line ends a failure (issue 17).

``SafeGroup`` is the top group's class. Whatever a command raises ends in ONE Dutch line on
stderr and an exit code: 2 for usage and database trouble (``DATABASE_EXIT``), 1 for
everything else. ``REGIESIGNAAL_TRACEBACK=1`` lets the exception through, for developers.

A database failure names its real cause (``database_cause``): a full disk, a read-only
file or server, a refused connection, an unknown host or database, a refused login, a
server that went away mid-run, a busy SQLite file, missing tables, an unsupported URL.
The driver's own text is never shown: it may hold a parameter, a user name or a path.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import click
import sqlalchemy as sa

from regiesignaal.jobs.cli.common import LazyGroup

DATABASE_EXIT = 2
TRACEBACK_ENV = "REGIESIGNAAL_TRACEBACK"

_CAUSES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        (
            "database or disk is full",
            "no space left on device",
            "could not extend file",
            "disk full",
            "could not write to file",
        ),
        "de schijf (of de database) is vol",
        "maak ruimte vrij op de schijf van de database en draai opnieuw",
    ),
    (
        (
            "readonly database",
            "read-only file system",
            "read-only transaction",
            "read only",
            "readonly",
        ),
        "de database is alleen-lezen (bestandsrechten, een alleen-lezen bestandssysteem of "
        "een PostgreSQL-standby)",
        "geef regiesignaal schrijfrechten op het databasebestand en de map, of wijs naar de "
        "primaire server",
    ),
    (
        ("database is locked", "database table is locked"),
        "de database is bezet: een andere run of bezorging schrijft er nu in",
        "wacht tot die klaar is en probeer opnieuw",
    ),
    (
        ("unable to open database file",),
        "het databasebestand kan niet geopend worden",
        "controleer of de map bestaat en regiesignaal erin mag schrijven (regiesignaal "
        "config show)",
    ),
    (
        ("file is not a database", "database disk image is malformed"),
        "het bestand is geen (gave) SQLite-database",
        "controleer welk bestand de database-URL noemt; herstel uit een back-up",
    ),
    (
        (
            "could not translate host name",
            "name or service not known",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no address associated",
        ),
        "de hostnaam van de databaseserver is onbekend",
        "controleer de hostnaam in de database-URL (regiesignaal config show)",
    ),
    (
        ("connection refused",),
        "de databaseserver weigert de verbinding (draait hij, klopt de poort?)",
        "start PostgreSQL of corrigeer host en poort in de database-URL",
    ),
    (
        (
            "password authentication failed",
            "no password supplied",
            "authentication failed",
            "peer authentication",
            "no pg_hba.conf entry",
        ),
        "inloggen bij de databaseserver is geweigerd",
        "controleer gebruiker en wachtwoord (REGIESIGNAAL_STORE_URL of de omgeving) en pg_hba.conf",
    ),
    (
        (
            "terminating connection",
            "server closed the connection",
            "connection already closed",
            "consuming input failed",
            "the connection is closed",
            "connection is lost",
            "ssl syscall error",
            "server conn crashed",
            "connection was killed",
            "could not receive data",
            "eof detected",
            "the database system is shutting down",
            "the database system is in recovery mode",
            "the database system is starting up",
        ),
        "de verbinding met de databaseserver viel weg tijdens het werk (herstart, failover "
        "of netwerk)",
        "draai de opdracht opnieuw zodra de server weer bereikbaar is; een run kan veilig "
        "opnieuw voor dezelfde peildatum",
    ),
    (
        ("timeout expired", "timed out", "could not connect"),
        "de databaseserver is niet bereikbaar",
        "controleer host, poort en netwerk in de database-URL",
    ),
)


def _matches(text: str, needles: tuple[str, ...]) -> bool:
    return any(n in text for n in needles)


def database_cause(exc: BaseException) -> tuple[str, str]:
    """(cause, what to do) in Dutch for a database failure, from the driver's message and
    type (never shown itself)."""
    if isinstance(exc, sa.exc.NoSuchModuleError | sa.exc.ArgumentError):
        return (
            "de database-URL wordt niet ondersteund",
            "gebruik sqlite:///PAD of postgresql+psycopg://gebruiker@host/database",
        )
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).lower()
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        text += " no space left on device"
    if "does not exist" in text and text.lstrip().startswith(("database ", 'fatal:  database "')):
        return (
            "de database bestaat niet op de server",
            "maak haar aan (createdb) of corrigeer de naam in de database-URL",
        )
    if 'database "' in text and "does not exist" in text:
        return (
            "de database bestaat niet op de server",
            "maak haar aan (createdb) of corrigeer de naam in de database-URL",
        )
    if 'role "' in text and "does not exist" in text:
        return (
            "inloggen bij de databaseserver is geweigerd (onbekende gebruiker)",
            "controleer de gebruiker in de database-URL",
        )
    for needles, what, action in _CAUSES:
        if _matches(text, needles):
            return what, action
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return (
            "de tabellen ontbreken",
            "voer 'regiesignaal db upgrade' uit voor de store, of laad de brondata "
            "('regiesignaal fixtures load') voor de bron",
        )
    return (
        f"de database gaf een fout ({type(cause).__name__})",
        "controleer de database-URL en de server (regiesignaal config show); "
        f"{TRACEBACK_ENV}=1 toont de details",
    )


_OS_CAUSES = {
    errno.ENOSPC: "de schijf is vol",
    errno.EROFS: "alleen-lezen bestandssysteem",
    errno.EACCES: "geen toegang",
    errno.EPERM: "niet toegestaan",
    errno.ENOENT: "bestaat niet",
    errno.ENOTDIR: "een deel van het pad is geen map",
    errno.EISDIR: "is een map",
    errno.ENAMETOOLONG: "de naam is te lang",
    errno.EEXIST: "bestaat al",
    errno.ELOOP: "te veel koppelingen",
    errno.EADDRINUSE: "het adres (de poort) is al in gebruik",
    errno.EADDRNOTAVAIL: "het adres bestaat niet op deze machine",
    errno.ECONNREFUSED: "verbinding geweigerd",
}


def describe(exc: BaseException) -> tuple[str, int]:
    """One Dutch line and the exit code for an exception that reached the top."""
    if isinstance(exc, sa.exc.SQLAlchemyError):
        cause, action = database_cause(exc)
        return f"Databasefout: {cause}; {action}.", DATABASE_EXIT
    if isinstance(exc, OSError):
        why = _OS_CAUSES.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        where = exc.filename if isinstance(exc.filename, str) and len(exc.filename) < 300 else ""
        place = f" ({where})" if where and where.isprintable() else ""
        return f"Fout bij een bestand of map{place}: {why}; controleer pad en rechten.", 1
    if isinstance(exc, RecursionError):
        return "Fout: de invoer is te diep genest; vereenvoudig hem.", 1
    if isinstance(exc, MemoryError):
        return "Fout: te weinig geheugen voor deze invoer.", 1
    if isinstance(exc, UnicodeError | ValueError) and "null" in str(exc).lower():
        return "Fout: de invoer bevat een NUL-teken; verwijder het.", 1
    return (
        f"Onverwachte fout ({type(exc).__name__}); er is niets half gedaan wat een herhaling "
        f"niet herstelt. Meld het aan de beheerder; {TRACEBACK_ENV}=1 toont de details.",
        1,
    )


class SafeGroup(LazyGroup):
    """The top group: every failure ends in one Dutch line and an exit code (see module)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        except Exception as exc:
            if os.environ.get(TRACEBACK_ENV) == "1":
                raise
            line, code = describe(exc)
            click.echo(line, err=True)
            sys.exit(code)
