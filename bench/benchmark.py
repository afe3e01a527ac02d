"""Side-by-side benchmark of a full nightly run against plain baselines (``make bench``).

    .venv/bin/python bench/benchmark.py [--cases 10000,100000] [--db sqlite,postgresql]
                                        [--workers 2] [--out var/bench/results.json]
                                        [--no-baselines] [--keep-source]

For every (database, number of cases) it generates synthetic case plans, loads them into a
fresh source, and measures in one go, on the same data:

- ``plain_select``: one plain ``SELECT *`` per source table into tuples (the floor for
  anything that reads the source; the ``run`` ratio is taken against it);
- ``source_read``: the product's reader as the run uses it: over all open cases, batch by
  batch, reading only what the default pack needs (``engine.language.needs``), into in-memory
  cases; ``plain_select_needed`` is its baseline: one plain SELECT per table of the same
  tables and columns (the open cases' rows of ``cases``, every row of the child tables),
  into tuples through the driver, no type conversion. The ratio thus measures the
  reader's own cost (building cases, converting dates), not what it skips; what skipping
  gains shows beside it as ``source_read_full``, the reader of whole cases (``explain``,
  the LKO agenda), against ``plain_select``;
- ``run``: ``regiesignaal run --no-mail`` (extract to outbox) in a process of its own;
  wall time, CPU time of the whole process tree, per-stage durations from the run record,
  and the peak memory (RSS) of the main process and of each worker, sampled from the
  process tree every 20 ms (``ru_maxrss`` cannot tell them apart: spawned children
  inherit the parent's peak);
- the three starter rules (``bench/starter-rules``: CONTACT-30D, MED-CHECK,
  WISH-UNEXPLORED, frozen copies so the baseline does not move with the rule pack) three
  ways: ``regiesignaal preview``, hand-written SQL and plain Python over plain SELECTs;
  the benchmark fails when the three do not give the same (case, rule) pairs;
- delivery: ``regiesignaal deliver`` against a plain aiosmtplib sender that sends the same
  outbox messages over one connection, each to a local mail catcher in its own process;
  the baseline runs inside this process, so the ratio is also given less the start-up of
  ``deliver`` (the same command once more with nothing left to send).

It prints the ratios that issue 11 sets targets for and writes everything as JSON.
For a size where only the product counts (``--cases 1000000 --db sqlite --no-baselines``)
the reader, starter-rule and plain-sender baselines are left out; ``--keep-source`` keeps
the loaded SQLite source beside ``--out`` (loading a million cases takes minutes) and
reuses it, with a fresh store, the next time.
Speed is measured here; no test asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
STARTER_RULES = ROOT / "bench" / "starter-rules"
PG_ADMIN = os.environ.get(
    "REGIESIGNAAL_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CLI = [sys.executable, "-m", "regiesignaal"]

TARGETS = {
    "run_vs_plain_select": 10.0,
    "memory_100k_vs_10k": 1.5,
    "starter_preview_vs_sql": 5.0,
    "source_read_vs_plain_select": 2.0,
    "deliver_vs_plain_sender": 1.1,
    "postgresql_vs_sqlite": 1.5,
}


# ----------------------------------------------------------------- measuring processes


@dataclass
class ProcessMeasure:
    """Wall and CPU seconds of a command and its process tree, and peak RSS per process."""

    wall_s: float
    cpu_s: float
    main_peak_mb: float
    worker_peaks_mb: list[float]
    stdout: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 2),
            "cpu_s": round(self.cpu_s, 2),
            "main_peak_mb": round(self.main_peak_mb, 1),
            "worker_peaks_mb": [round(p, 1) for p in self.worker_peaks_mb],
        }


def measure(
    cmd: list[str], env: dict[str, str], *, ok_codes: tuple[int, ...] = (0,)
) -> ProcessMeasure:
    """Run ``cmd``; sample the RSS of it and its descendants until it ends."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peaks: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                for p in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        rss = p.memory_info().rss
                        if rss > peaks.get(p.pid, 0):
                            peaks[p.pid] = rss
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok_codes:
        raise SystemExit(f"{' '.join(cmd[3:])} exited {proc.returncode}:\n{err[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    main = peaks.pop(proc.pid, 0) / 2**20
    return ProcessMeasure(
        wall, cpu, main, sorted((v / 2**20 for v in peaks.values()), reverse=True), out
    )


@contextlib.contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of a block in this process."""
    out: dict[str, float] = {}
    w, c = time.perf_counter(), time.process_time()
    yield out
    out["wall_s"] = round(time.perf_counter() - w, 3)
    out["cpu_s"] = round(time.process_time() - c, 3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mail_server(directory: Path, env: dict[str, str]) -> Iterator[int]:
    """``regiesignaal mailcatcher`` in a process of its own, on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "mailcatcher", "--dir", str(directory), "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            time.sleep(0.1)
        else:
            raise SystemExit("mail catcher did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


# ----------------------------------------------------------------- baselines


def plain_select(url: str) -> tuple[int, dict[str, float]]:
    """One plain ``SELECT *`` per source table, fetched into tuples. Returns row count."""
    from regiesignaal.engine.source.tables import metadata

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = 0
            with timed() as t:
                for table in metadata.sorted_tables:
                    rows += len(conn.exec_driver_sql(f'SELECT * FROM "{table.name}"').fetchall())
        return rows, t
    finally:
        engine.dispose()


def default_needs(as_of: dt.date) -> Any:
    """What the run reads for the default pack (``rules/``) on ``as_of``."""
    from regiesignaal.engine.language.compiler import compile_rules
    from regiesignaal.engine.language.needs import needs_of
    from regiesignaal.engine.language.rulefile.folder import load_rule_dir

    return needs_of(compile_rules(load_rule_dir(ROOT / "rules"), as_of))


def plain_select_needed(url: str, needs: Any) -> tuple[int, dict[str, float]]:
    """One plain SELECT per table of the columns ``needs`` names (``cases``: open rows
    only, with the ``extra`` column the reader takes the location from; child tables: every
    row, with case_ref), into tuples. Returns row count."""
    from regiesignaal.engine.source.tables import CHILD_TABLES

    def cols(names: Any) -> str:
        return ", ".join('"' + n.replace(".", "_") + '"' for n in sorted(names))

    # ``extra`` too: the reader takes the location every signal carries from it
    queries = [f"SELECT {cols(needs.case)}, extra FROM cases WHERE status = 'open'"]
    for child in CHILD_TABLES:
        if child.group in needs.groups():
            fields = cols(needs.fields(child.group))
            queries.append(f'SELECT case_ref, {fields} FROM "{child.group}"')
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = 0
            with timed() as t:
                for sql in queries:
                    rows += len(conn.exec_driver_sql(sql).fetchall())
        return rows, t
    finally:
        engine.dispose()


def source_read(url: str, batch_size: int, needs: Any = None) -> tuple[int, dict[str, float]]:
    """The product's reader over every open case, batch by batch, reading ``needs``
    (None: whole cases)."""
    from regiesignaal.engine.source.read import iter_case_batches

    engine = sa.create_engine(url)
    try:
        n = 0
        with timed() as t:
            for batch in iter_case_batches(engine, batch_size, needs=needs):
                n += len(batch)
        return n, t
    finally:
        engine.dispose()


def starter_sql(url: str, as_of: dt.date) -> tuple[set[tuple[str, str]], dict[str, float]]:
    """The three starter rules as hand-written SQL (same semantics as the rule files:
    records dated after the as-of date do not count)."""
    d30, d21, d14 = (as_of - dt.timedelta(days=n) for n in (30, 21, 14))
    params = {"asof": as_of, "d30": d30, "d21": d21, "d14": d14}
    types = {k: sa.Date() for k in params}
    queries = {
        "CONTACT-30D": """
            SELECT c.case_ref FROM cases c
            LEFT JOIN (
              SELECT case_ref, MAX(d) AS latest FROM (
                SELECT case_ref, "on" AS d FROM contacts WHERE "on" IS NOT NULL AND "on" <= :asof
                UNION ALL
                SELECT case_ref, "on" AS d FROM interviews WHERE "on" IS NOT NULL AND "on" <= :asof
              ) x GROUP BY case_ref
            ) l ON l.case_ref = c.case_ref
            WHERE c.status = 'open' AND COALESCE(l.latest, c.opened_on) < :d30""",
        "MED-CHECK": """
            SELECT c.case_ref FROM cases c
            WHERE c.status = 'open' AND c.opened_on < :d14 AND NOT EXISTS (
              SELECT 1 FROM medical_checks m
              WHERE m.case_ref = c.case_ref AND (m."on" IS NULL OR m."on" <= :asof))""",
        "WISH-UNEXPLORED": """
            SELECT DISTINCT c.case_ref FROM cases c
            JOIN departure_wishes w ON w.case_ref = c.case_ref
            WHERE c.status = 'open' AND w.explored_on IS NULL
              AND w.recorded_on IS NOT NULL AND w.recorded_on < :d21""",
    }
    engine = sa.create_engine(url)
    pairs: set[tuple[str, str]] = set()
    try:
        with engine.connect() as conn, timed() as t:
            for rule, sql in queries.items():
                used = {k: v for k, v in types.items() if f":{k}" in sql}
                stmt = sa.text(sql).bindparams(*(sa.bindparam(k, type_=v) for k, v in used.items()))
                values = {k: params[k] for k in used}
                pairs.update((r[0], rule) for r in conn.execute(stmt, values))
        return pairs, t
    finally:
        engine.dispose()


def starter_python(url: str, as_of: dt.date) -> tuple[set[tuple[str, str]], dict[str, float]]:
    """The three starter rules in plain Python over plain SELECTs of the columns they use."""
    engine = sa.create_engine(url)
    pairs: set[tuple[str, str]] = set()
    date = sa.Date()
    try:
        with engine.connect() as conn, timed() as t:
            cases = sa.table(
                "cases", sa.column("case_ref"), sa.column("status"), sa.column("opened_on", date)
            )
            opened = {
                r[0]: r[1]
                for r in conn.execute(
                    sa.select(cases.c.case_ref, cases.c.opened_on).where(cases.c.status == "open")
                )
            }
            latest: dict[str, dt.date] = {}
            for name in ("contacts", "interviews"):
                tb = sa.table(name, sa.column("case_ref"), sa.column("on", date))
                for ref, on in conn.execute(sa.select(tb.c.case_ref, tb.c.on)):
                    if on is not None and on <= as_of and (ref not in latest or on > latest[ref]):
                        latest[ref] = on
            checked: set[str] = set()
            tb = sa.table("medical_checks", sa.column("case_ref"), sa.column("on", date))
            for ref, on in conn.execute(sa.select(tb.c.case_ref, tb.c.on)):
                if on is None or on <= as_of:
                    checked.add(ref)
            wishes: set[str] = set()
            tb = sa.table(
                "departure_wishes",
                sa.column("case_ref"),
                sa.column("recorded_on", date),
                sa.column("explored_on", date),
            )
            for ref, rec, exp in conn.execute(
                sa.select(tb.c.case_ref, tb.c.recorded_on, tb.c.explored_on)
            ):
                if exp is None and rec is not None and (as_of - rec).days > 21:
                    wishes.add(ref)
            for ref, op in opened.items():
                last = latest.get(ref, op)
                if last is not None and (as_of - last).days > 30:
                    pairs.add((ref, "CONTACT-30D"))
                if op is not None and (as_of - op).days > 14 and ref not in checked:
                    pairs.add((ref, "MED-CHECK"))
                if ref in wishes:
                    pairs.add((ref, "WISH-UNEXPLORED"))
        return pairs, t
    finally:
        engine.dispose()


async def _plain_send(port: int, messages: list[EmailMessage]) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60, start_tls=False)
    await client.connect()
    try:
        for msg in messages:
            await client.send_message(msg)
    finally:
        await client.quit()


def plain_sender(url: str, port: int, sender: str) -> tuple[int, dict[str, float]]:
    """Read the outbox's messages and send them with plain aiosmtplib over one connection."""
    engine = sa.create_engine(url)
    try:
        with timed() as t:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT recipient_email, subject, body_text, body_html, message_id "
                    "FROM outbox WHERE kind <> 'operator' ORDER BY id"
                ).fetchall()
            messages = []
            for to, subject, text, html, message_id in rows:
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = (
                    sender,
                    to,
                    subject,
                    message_id,
                )
                msg.set_content(text)
                msg.add_alternative(html, subtype="html")
                messages.append(msg)
            asyncio.run(_plain_send(port, messages))
        return len(messages), t
    finally:
        engine.dispose()


# ----------------------------------------------------------------- one configuration


@dataclass
class Case:
    db: str
    cases: int
    results: dict[str, Any] = field(default_factory=dict)


def _pairs_from_preview(stdout: str) -> set[tuple[str, str]]:
    pairs = set()
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            pairs.add((obj["case_ref"], obj["rule"]))
    return pairs


def _runs_record(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [*CLI, "runs", "--limit", "1", "--format", "json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{") or line.startswith("["):
            obj = json.loads(line)
            return obj[0] if isinstance(obj, list) else obj
    return {}


def _reader_and_starter_baselines(
    r: dict[str, Any], source_url: str, batch_size: int, as_of: dt.date, env: dict[str, str]
) -> None:
    """The product's reader and the three starter rules three ways, into ``r``."""
    needs = default_needs(as_of)
    rows, t = plain_select_needed(source_url, needs)
    r["plain_select_needed"] = {**t, "rows": rows}
    read, t = source_read(source_url, batch_size, needs)
    r["source_read"] = {**t, "cases": read}
    read, t = source_read(source_url, batch_size)
    r["source_read_full"] = {**t, "cases": read}

    m = measure(
        [
            *CLI,
            "preview",
            "--rules",
            str(STARTER_RULES),
            "--as-of",
            as_of.isoformat(),
            "--format",
            "json",
        ],
        env,
    )
    preview_pairs = _pairs_from_preview(m.stdout)
    r["starter_preview"] = {**m.as_dict(), "pairs": len(preview_pairs)}
    sql_pairs, t = starter_sql(source_url, as_of)
    r["starter_sql"] = {**t, "pairs": len(sql_pairs)}
    py_pairs, t = starter_python(source_url, as_of)
    r["starter_python"] = {**t, "pairs": len(py_pairs)}
    r["starter_same_pairs"] = preview_pairs == sql_pairs == py_pairs
    if not r["starter_same_pairs"]:
        diff = (preview_pairs ^ sql_pairs) | (preview_pairs ^ py_pairs)
        r["starter_differences"] = sorted(diff)[:20]


@dataclass(frozen=True)
class Options:
    """How ``bench_one`` runs: ``baselines`` False measures only the product (for
    ``--cases 1000000``: the plain SELECT stays, it is what the run is compared with);
    ``keep_source`` keeps a loaded SQLite source for the next benchmark of that size."""

    workers: int = 2
    batch_size: int = 2000
    baselines: bool = True
    keep_source: bool = False


LOADED_MARK = "source.loaded"


def bench_one(db: str, n: int, as_of: dt.date, work: Path, opts: Options) -> dict[str, Any]:
    workers, batch_size = opts.workers, opts.batch_size
    folder = work / f"{db}-{n}"
    reuse = opts.keep_source and db == "sqlite" and (folder / LOADED_MARK).exists()
    if reuse:  # a fresh store, the loaded source kept
        for path in folder.iterdir():
            if path.name not in ("source.sqlite", LOADED_MARK):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    data = work / f"data-{n}"
    admin = name = None
    if db == "sqlite":
        source_url = f"sqlite:///{(folder / 'source.sqlite').resolve()}"
        store_url = f"sqlite:///{(folder / 'store.sqlite').resolve()}"
    else:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"rs_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        source_url = store_url = admin.url.set(database=name).render_as_string(False)
    env = {
        **os.environ,
        "REGIESIGNAAL_SOURCE_URL": source_url,
        "REGIESIGNAAL_STORE_URL": store_url,
        "REGIESIGNAAL_WORKERS": str(workers),
        "REGIESIGNAAL_BATCH_SIZE": str(batch_size),
        "REGIESIGNAAL_SMTP_HOST": "127.0.0.1",
        "REGIESIGNAAL_SMTP_TLS": "none",
        "REGIESIGNAAL_CONFIG": str(folder / "none.toml"),
        "PYTHONPATH": str(ROOT),
    }
    (folder / "none.toml").write_text("")
    r: dict[str, Any] = {"db": db, "cases": n}
    try:
        if not (data / "cases.jsonl").exists():
            data.mkdir(parents=True, exist_ok=True)
            m = measure(
                [
                    *CLI,
                    "fixtures",
                    "generate",
                    "--cases",
                    str(n),
                    "--seed",
                    "1",
                    "--as-of",
                    as_of.isoformat(),
                    "--out",
                    str(data / "cases.jsonl"),
                    "--staff-out",
                    str(data / "staff.jsonl"),
                ],
                env,
            )
            r["generate"] = m.as_dict()
        if reuse:
            r["load"] = {"reused": True}
        else:
            m = measure(
                [
                    *CLI,
                    "fixtures",
                    "load",
                    str(data / "cases.jsonl"),
                    "--staff",
                    str(data / "staff.jsonl"),
                    "--source-url",
                    source_url,
                ],
                env,
            )
            r["load"] = m.as_dict()
            if opts.keep_source and db == "sqlite":
                (folder / LOADED_MARK).write_text(dt.datetime.now(dt.UTC).isoformat())
        subprocess.run([*CLI, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)

        rows, t = plain_select(source_url)
        r["plain_select"] = {**t, "rows": rows}
        if opts.baselines:
            _reader_and_starter_baselines(r, source_url, batch_size, as_of, env)

        m = measure(
            [*CLI, "run", "--as-of", as_of.isoformat(), "--no-mail", "--force"],
            env,
            ok_codes=(0, 3),
        )
        r["run"] = m.as_dict()
        record = _runs_record(env)
        r["run"]["stages"] = record.get("durations")
        r["run"]["open_cases"] = (record.get("counts") or {}).get("cases")
        r["run"]["signals"] = sum(
            ((record.get("counts") or {}).get("signals_per_rule") or {}).values()
        )
        r["run"]["messages"] = sum(
            ((record.get("counts") or {}).get("messages_enqueued") or {}).values()
        )

        if opts.baselines:
            with mail_server(folder / "mail-plain", env) as port:
                sent, t = plain_sender(store_url, port, "regiesignaal@dtv.example")
                r["plain_sender"] = {**t, "messages": sent}
        with mail_server(folder / "mail-product", env) as port:
            m = measure(
                [*CLI, "deliver", "--now"],
                {**env, "REGIESIGNAAL_SMTP_PORT": str(port)},
                ok_codes=(0, 3),
            )
            r["deliver"] = m.as_dict()
            r["deliver"]["received"] = len(list((folder / "mail-product").glob("*.eml")))
            # the same command with nothing left to send: process start-up, imports,
            # settings and the outbox queries, which the in-process baseline does not pay
            m = measure(
                [*CLI, "deliver"], {**env, "REGIESIGNAAL_SMTP_PORT": str(port)}, ok_codes=(0, 3)
            )
            r["deliver_idle"] = m.as_dict()
        return r
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        if (folder / LOADED_MARK).exists():
            for path in folder.iterdir():
                if path.name not in ("source.sqlite", LOADED_MARK):
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _wall(r: dict[str, Any], stage: str) -> float | None:
    """The wall seconds of ``stage`` in one configuration's results (None if not run)."""
    wall = (r.get(stage) or {}).get("wall_s")
    return float(wall) if wall is not None else None


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's measures per configuration, with their targets."""
    rows = []
    by = {(r["db"], r["cases"]): r for r in results}
    for r in results:
        line = {
            "db": r["db"],
            "cases": r["cases"],
            "run_vs_plain_select": ratio(_wall(r, "run"), _wall(r, "plain_select")),
            "starter_preview_vs_sql": ratio(_wall(r, "starter_preview"), _wall(r, "starter_sql")),
            "starter_preview_vs_python": ratio(
                _wall(r, "starter_preview"), _wall(r, "starter_python")
            ),
            "source_read_vs_plain_select": ratio(
                _wall(r, "source_read"), _wall(r, "plain_select_needed")
            ),
            "source_read_full_vs_select_all": ratio(
                _wall(r, "source_read_full"), _wall(r, "plain_select")
            ),
            "deliver_vs_plain_sender": ratio(_wall(r, "deliver"), _wall(r, "plain_sender")),
            "deliver_less_startup_vs_plain_sender": ratio(
                r["deliver"]["wall_s"] - r["deliver_idle"]["wall_s"], _wall(r, "plain_sender")
            )
            if r.get("deliver_idle")
            else None,
            "run_cases_per_s": round(r["run"]["open_cases"] / r["run"]["wall_s"])
            if r["run"].get("open_cases")
            else None,
        }
        small = [k for k in by if k[0] == r["db"] and k[1] < r["cases"]]
        if small:
            base = by[max(small)]
            mem = ratio(r["run"]["main_peak_mb"], base["run"]["main_peak_mb"])
            line["memory_vs_smaller"] = f"{mem} (vs {base['cases']})"
        if r["db"] == "postgresql" and ("sqlite", r["cases"]) in by:
            line["postgresql_vs_sqlite"] = ratio(
                r["run"]["wall_s"], by[("sqlite", r["cases"])]["run"]["wall_s"]
            )
        rows.append(line)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="10000,100000", help="comma-separated case counts")
    ap.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--as-of", default="2026-03-02")
    ap.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "results.json")
    ap.add_argument(
        "--no-baselines",
        action="store_true",
        help="measure only the product (and the plain SELECT it is compared with)",
    )
    ap.add_argument(
        "--keep-source",
        action="store_true",
        help="keep a loaded SQLite source beside --out and reuse it next time (large sizes)",
    )
    args = ap.parse_args()
    opts = Options(args.workers, args.batch_size, not args.no_baselines, args.keep_source)
    as_of = dt.date.fromisoformat(args.as_of)
    counts = sorted(int(c) for c in args.cases.split(","))
    dbs = [d.strip() for d in args.db.split(",")]
    work = args.out.parent
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in counts:
        for db in dbs:
            print(f"== {db}, {n:,} cases", flush=True)
            r = bench_one(db, n, as_of, work, opts)
            print(json.dumps(r, default=str), flush=True)
            results.append(r)
    table = ratios(results)
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "targets": TARGETS,
        "ratios": table,
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(
        "\nratio (target)           " + "  ".join(f"{r['db'][:2]}-{r['cases']:>7}" for r in table)
    )
    keys = [k for k in table[0] if k not in ("db", "cases")]
    for k in sorted(
        {k for row in table for k in row} - {"db", "cases"},
        key=lambda x: keys.index(x) if x in keys else 99,
    ):
        target = TARGETS.get(k)
        label = f"{k} (<= {target})" if target else k
        print(f"{label:<45}" + "  ".join(f"{row.get(k, '-')!s:>10}" for row in table))
    print(f"\nwritten: {args.out}")
    for r in results:
        if "starter_same_pairs" in r and not r["starter_same_pairs"]:
            raise SystemExit(
                f"starter rules disagree on {r['db']} {r['cases']}: {r.get('starter_differences')}"
            )


if __name__ == "__main__":
    main()
