"""Load case plans and the staff directory from JSONL into the source database.

Each line is parsed with ``json`` and ``engine.language.casefile.parse_case`` (or
``parse_staff``). Every line is judged on its own: a bad line (not UTF-8, not JSON,
nested deeper than ``MAX_DEPTH``, a lone surrogate escape such as ``"\udcff"``, a NUL, a
contract violation, a key with characters that are not allowed) is not loaded and is
reported as ``FILE:LINE: message (hint)``; the rest of the file is loaded. Messages name
the line and the field, never the value.

A value outside a choice list (a contact channel or check outcome the source system
added) is loaded as it is and reported once per field with a count (see
``engine.language.casefile.parse_case`` for what rules make of it). A staff e-mail address that is
not one bare address (display name, two addresses, line break ...) is not loaded: the
member is loaded without an address, with a warning. Rows are inserted in
batches with executemany, the whole file in one transaction.

Loading a case that is already in the database replaces it: its row and its child
rows are deleted and inserted again, so loading the same file twice leaves the same
data. With ``replace=False`` such a line is rejected instead. Staff members are
replaced by id in the same way.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, select

from regiesignaal.engine.language.addresses import AddressError, check_address
from regiesignaal.engine.language.casefile import (
    CASE_SPEC,
    CaseFileError,
    Field,
    Group,
    parse_case,
    parse_staff,
)
from regiesignaal.engine.source.tables import (
    CHILD_TABLES,
    EMAIL_LENGTH,
    ID_LENGTH,
    case_values,
    cases,
    child_values,
    create_source_schema,
    staff,
    staff_values,
)

BATCH_SIZE = 1000
MAX_DEPTH = 32
"""Deepest nesting of objects and lists accepted in one line (a case needs 3)."""
MAX_LINE_BYTES = 1_000_000
_BAD_KEY = re.compile(r'[\x00-\x1f\x7f-\x9f"\\<>]')


def _depth_ok(value: Any) -> bool:
    """False when ``value`` nests deeper than ``MAX_DEPTH`` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _has_surrogate(value: Any) -> bool:
    """True when any string (key or value) holds a lone surrogate (not valid UTF-8)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@dataclass
class LoadReport:
    """The outcome of loading one file.

    ``problems`` holds one ``FILE:LINE: message (hint)`` line per rejected line and per
    warning (a warning's line was loaded; its message starts with ``waarschuwing:``).
    """

    loaded: int = 0
    rejected: int = 0
    warnings: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.loaded} geladen, {self.rejected} afgewezen"
        if self.warnings:
            text += f", {self.warnings} waarschuwing{'en' if self.warnings != 1 else ''}"
        return text

    def __str__(self) -> str:
        return "\n".join([self.summary(), *self.problems])


def _insert_many(conn: Connection, table: Table, rows: list[list[Any]]) -> None:
    """Insert rows (values in table column order) with one driver-level executemany.

    SQLAlchemy's own executemany builds a parameter dict per row; for a million child
    rows that overhead dominates, so the rows go to the driver directly, with the column
    types' bind processors applied here (dates for SQLite, JSON, booleans). On
    PostgreSQL with psycopg the rows are sent with COPY.
    """
    if not rows:
        return
    dialect = conn.dialect
    if dialect.paramstyle == "qmark":
        mark = "?"
    elif dialect.paramstyle in ("format", "pyformat"):
        mark = "%s"
    else:  # pragma: no cover - other drivers: the portable (slower) way
        names = [c.name for c in table.columns]
        conn.execute(table.insert(), [dict(zip(names, r, strict=True)) for r in rows])
        return
    quote = dialect.identifier_preparer
    target = (
        f"{quote.format_table(table)} ({', '.join(quote.format_column(c) for c in table.columns)})"
    )
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for i, column in enumerate(table.columns):
        bind = column.type.dialect_impl(dialect).bind_processor(dialect)
        if bind is not None:
            processors.append((i, bind))
    if processors:
        for row in rows:
            for i, processor in processors:
                if row[i] is not None:
                    row[i] = processor(row[i])
    if dialect.driver == "psycopg":
        # PostgreSQL: COPY is several times faster than executemany for many rows
        cursor = conn.connection.cursor()
        try:
            with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    marks = ", ".join(mark for _ in table.columns)
    conn.exec_driver_sql(f"INSERT INTO {target} VALUES ({marks})", [tuple(r) for r in rows])


def _problem(path: Path, line: int, message: str, hint: str = "") -> str:
    return f"{path}:{line}: {message}" + (f" ({hint})" if hint else "")


def _read_json_lines(path: Path, report: LoadReport) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed JSON) per non-blank line; bad lines go to the report."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.rejected += 1
                report.problems.append(
                    _problem(
                        path,
                        number,
                        f"ongeldige tekens (geen UTF-8) op positie {exc.start + 1}",
                        "sla het bestand op als UTF-8",
                    )
                )
                continue
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]  # a UTF-8 byte order mark (Windows exports) is accepted
            if not text.strip():
                continue
            if "\\u0000" in text:  # valid JSON, but PostgreSQL cannot store it in text
                report.rejected += 1
                report.problems.append(
                    _problem(path, number, "bevat een NUL-teken (\\u0000)", "verwijder het teken")
                )
                continue
            if len(raw) > MAX_LINE_BYTES:
                report.rejected += 1
                report.problems.append(
                    _problem(path, number, f"regel is langer dan {MAX_LINE_BYTES} bytes")
                )
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                report.rejected += 1
                report.problems.append(
                    _problem(
                        path,
                        number,
                        f"geen geldige JSON: {exc.msg} (kolom {exc.colno})",
                        "elke regel moet precies één JSON-object zijn",
                    )
                )
                continue
            except (RecursionError, ValueError):
                value = None
                depth_ok = False
            else:
                depth_ok = _depth_ok(value)
            if not depth_ok:
                report.rejected += 1
                report.problems.append(
                    _problem(
                        path,
                        number,
                        f"te diep genest (meer dan {MAX_DEPTH} niveaus)",
                        "een zaak heeft hooguit enkele niveaus; controleer de export",
                    )
                )
                continue
            if _has_surrogate(value):
                report.rejected += 1
                report.problems.append(
                    _problem(
                        path,
                        number,
                        "bevat een ongeldig teken (een losse surrogaat-escape zoals \\udcff)",
                        "verwijder of herstel het teken in de export",
                    )
                )
                continue
            yield number, value


def _invisible(value: str) -> bool:
    """Whether ``value`` holds an invisible or formatting character (Unicode categories Cf,
    Zl, Zp: e.g. U+202E, which reverses how the rest of a reference is displayed)."""
    return any(unicodedata.category(ch) in ("Cf", "Zl", "Zp") for ch in value)


def _check_key(value: str, what: str) -> None:
    """A key (case_ref, staff id, team id): not empty, at most ``ID_LENGTH`` characters,
    no control characters, quotes, backslashes or angle brackets (it goes into mail,
    links and log lines)."""
    if not value.strip():
        raise CaseFileError(what, "mag niet leeg zijn")
    if len(value) > ID_LENGTH:
        raise CaseFileError(what, f"is langer dan {ID_LENGTH} tekens", "gebruik een korter kenmerk")
    if _BAD_KEY.search(value) or value != value.strip() or _invisible(value):
        raise CaseFileError(
            what,
            "bevat tekens die niet zijn toegestaan (stuurteken, onzichtbaar of "
            "schrijfrichtingsteken, aanhalingsteken, backslash, < of >, of spaties aan begin "
            "of eind)",
            "gebruik letters, cijfers en leestekens zoals - _ . /",
        )


def _unknown_too_long(case: dict[str, Any]) -> bool:
    """True when a choice value (known or not) would not fit its column (``ID_LENGTH``)."""
    return any(len(v) > ID_LENGTH for v in _choice_values(CASE_SPEC, case))


def _choice_values(specs: tuple[Field | Group, ...], record: dict[str, Any]) -> Iterator[str]:
    for spec in specs:
        value = record.get(spec.name)
        if value is None:
            continue
        if isinstance(spec, Field):
            if spec.type == "enum" and isinstance(value, str):
                yield value
        elif spec.is_list:
            for item in value:
                yield from _choice_values(spec.fields, item)
        else:
            yield from _choice_values(spec.fields, value)


def _check_optional_keys(record: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = record.get(name)
        if isinstance(value, str):
            _check_key(value, name)


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # the INTEGER columns of SQLite and PostgreSQL


def _int_specs(specs: tuple[Field | Group, ...]) -> tuple[Field | Group, ...]:
    """The part of a spec that leads to int fields (so the check skips everything else)."""
    out: list[Field | Group] = []
    for spec in specs:
        if isinstance(spec, Field):
            if spec.type == "int":
                out.append(spec)
        else:
            inner = _int_specs(spec.fields)
            if inner:
                out.append(Group(spec.name, spec.description, inner, spec.is_list))
    return tuple(out)


_CASE_INTS = _int_specs(CASE_SPEC)


def _check_ints(record: dict[str, Any], specs: tuple[Field | Group, ...], prefix: str) -> None:
    """Reject whole numbers that parse_case accepts but an INTEGER column cannot hold."""
    for spec in specs:
        value = record.get(spec.name)
        if value is None:
            continue
        where = f"{prefix}{spec.name}"
        if isinstance(spec, Field):
            if not _INT_MIN <= value <= _INT_MAX:
                raise CaseFileError(where, "getal is te groot", "controleer de waarde")
        elif spec.is_list:
            for i, item in enumerate(value):
                _check_ints(item, spec.fields, f"{where}[{i}].")
        else:
            _check_ints(value, spec.fields, f"{where}.")


def _flush_cases(
    conn: Connection, batch: list[tuple[int, dict[str, Any]]], replace: bool, path: Path,
    report: LoadReport,
) -> None:  # fmt: skip
    if not batch:
        return
    refs = [case["case_ref"] for _, case in batch]
    if replace:
        for child in CHILD_TABLES:
            conn.execute(delete(child.table).where(child.table.c.case_ref.in_(refs)))
        conn.execute(delete(cases).where(cases.c.case_ref.in_(refs)))
    else:
        existing = set(
            conn.execute(select(cases.c.case_ref).where(cases.c.case_ref.in_(refs))).scalars()
        )
        if existing:
            kept = []
            for number, case in batch:
                if case["case_ref"] in existing:
                    report.rejected += 1
                    report.problems.append(
                        _problem(
                            path,
                            number,
                            f"zaak {case['case_ref']} staat al in de database",
                            "laad opnieuw zonder --no-replace om haar te vervangen",
                        )
                    )
                else:
                    kept.append((number, case))
            batch = kept
            if not batch:
                return
    _insert_many(conn, cases, [case_values(case) for _, case in batch])
    for child in CHILD_TABLES:
        _insert_many(
            conn, child.table, [row for _, case in batch for row in child_values(child, case)]
        )
    report.loaded += len(batch)


def load_cases(engine: Engine, path: Path, *, replace: bool = True) -> LoadReport:
    """Load the case plans of a JSONL file into the source database.

    Creates the schema if missing. Bad lines (invalid JSON, a contract violation, a
    case_ref seen earlier in the same file) are reported and skipped.
    """
    create_source_schema(engine)
    report = LoadReport()
    seen: dict[str, int] = {}  # case_ref -> line number, for duplicates within the file
    unknown: Counter[str] = Counter()  # field -> values outside its choice list
    batch: list[tuple[int, dict[str, Any]]] = []
    with engine.begin() as conn:
        for number, raw in _read_json_lines(path, report):
            line_unknown: Counter[str] = Counter()
            try:
                case = parse_case(raw, line_unknown)
                _check_key(case["case_ref"], "case_ref")
                _check_optional_keys(case, ("regievoerder", "team"))
                _check_ints(case, _CASE_INTS, "")
            except CaseFileError as exc:
                report.rejected += 1
                report.problems.append(_problem(path, number, _describe(exc, raw), exc.hint))
                continue
            except Exception as exc:  # never a traceback for one line
                report.rejected += 1
                report.problems.append(
                    _problem(path, number, f"zaak niet te verwerken ({type(exc).__name__})")
                )
                continue
            if line_unknown and _unknown_too_long(case):
                report.rejected += 1
                report.problems.append(
                    _problem(
                        path,
                        number,
                        f"zaak {case['case_ref']}: een waarde buiten de keuzelijst is langer dan "
                        f"{ID_LENGTH} tekens",
                        "controleer de export",
                    )
                )
                continue
            unknown.update(line_unknown)
            ref = case["case_ref"]
            if ref in seen:
                report.rejected += 1
                report.problems.append(
                    _problem(
                        path,
                        number,
                        f"zaak {ref} staat al op regel {seen[ref]}",
                        "elke zaak mag maar één keer in het bestand staan; deze regel is "
                        "overgeslagen",
                    )
                )
                continue
            seen[ref] = number
            batch.append((number, case))
            if len(batch) >= BATCH_SIZE:
                _flush_cases(conn, batch, replace, path, report)
                batch = []
        _flush_cases(conn, batch, replace, path, report)
    for name, count in sorted(unknown.items()):
        report.warnings += 1
        report.problems.append(
            f"{path}: waarschuwing: veld {name}: {count} "
            f"{'waarde' if count == 1 else 'waarden'} buiten de keuzelijst geladen (een nieuwe "
            "keuze in het bronsysteem?); regels die dit veld vergelijken zien ze als 'een "
            "andere waarde'. Neem de keuze op in het contract (engine/language/casefile.py)"
        )
    return report


def _describe(exc: CaseFileError, raw: Any) -> str:
    """The problem without its hint (the hint goes in brackets), naming the case if known."""
    where = f"{exc.path}: " if exc.path else ""
    ref = raw.get("case_ref") if isinstance(raw, dict) else None
    prefix = f"zaak {ref}: " if isinstance(ref, str) and ref and exc.path != "case_ref" else ""
    return f"{prefix}{where}{exc.message}"


def load_staff_file(engine: Engine, path: Path) -> LoadReport:
    """Load the staff directory of a JSONL file into the source database.

    Creates the schema if missing. A line with an unknown role, a missing id or name,
    or an id seen earlier in the file is rejected; a member without an email address
    is loaded with a warning, since mail to that person cannot be sent.
    """
    create_source_schema(engine)
    report = LoadReport()
    seen: dict[str, int] = {}
    rows: list[list[Any]] = []
    for number, raw in _read_json_lines(path, report):
        try:
            member = parse_staff(raw)
            _check_key(member["id"], "id")
            _check_optional_keys(member, ("team",))
            if len(member.get("email") or "") > EMAIL_LENGTH:
                raise CaseFileError("email", f"is langer dan {EMAIL_LENGTH} tekens")
        except CaseFileError as exc:
            report.rejected += 1
            report.problems.append(_problem(path, number, _describe_staff(exc, raw), exc.hint))
            continue
        except Exception as exc:  # never a traceback for one line
            report.rejected += 1
            report.problems.append(
                _problem(path, number, f"medewerker niet te verwerken ({type(exc).__name__})")
            )
            continue
        sid = member["id"]
        if sid in seen:
            report.rejected += 1
            report.problems.append(
                _problem(
                    path,
                    number,
                    f"medewerker {sid} staat al op regel {seen[sid]}",
                    "elke medewerker mag maar één keer in het bestand staan",
                )
            )
            continue
        seen[sid] = number
        email = member.get("email")
        problem = "heeft geen e-mailadres" if not email else None
        if email:
            try:
                member["email"] = check_address(email)
            except AddressError as exc:
                member.pop("email", None)
                problem = f"email: geen bruikbaar e-mailadres ({exc}); geladen zonder adres"
        if problem is not None:
            report.warnings += 1
            report.problems.append(
                _problem(
                    path,
                    number,
                    f"waarschuwing: medewerker {sid} {problem}; mail aan deze medewerker "
                    "kan niet worden verstuurd",
                    "vul één kaal adres in (naam@domein.nl) in de medewerkerslijst",
                )
            )
        if member["role"] in ("regievoerder", "teamleider") and not member.get("team"):
            report.warnings += 1
            report.problems.append(
                _problem(
                    path,
                    number,
                    f"waarschuwing: medewerker {sid} ({member['role']}) heeft geen team; "
                    "geladen, maar komt in geen teamoverzicht voor",
                    "vul het team-id aan",
                )
            )
        rows.append(staff_values(member))
    with engine.begin() as conn:
        for start in range(0, len(rows), BATCH_SIZE):
            chunk = rows[start : start + BATCH_SIZE]
            conn.execute(delete(staff).where(staff.c.id.in_([r[0] for r in chunk])))
            _insert_many(conn, staff, chunk)
    report.loaded = len(rows)
    return report


def _describe_staff(exc: CaseFileError, raw: Any) -> str:
    where = f"{exc.path}: " if exc.path else ""
    sid = raw.get("id") if isinstance(raw, dict) else None
    prefix = f"medewerker {sid}: " if isinstance(sid, str) and sid and exc.path != "id" else ""
    return f"{prefix}{where}{exc.message}"
