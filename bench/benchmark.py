"""Benchmark of a full nightly run: generate, load, then extract -> outbox, timed per stage.

    .venv/bin/python bench/benchmark.py --cases 100000 [--workers 2] [--db sqlite|postgresql]

Writes under var/bench/ (or a fresh PostgreSQL database on 127.0.0.1), mail delivery
goes to a local mail catcher. Prints the stage durations from the run record, the
throughput and the peak memory (RSS) of this process and of the worker processes.
Speed is measured here and reported in the README; no test asserts a time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import resource
import shutil
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from fixtures.generator import generate
from fixtures.loader import load_cases, load_staff_file
from jobs.config import load_settings
from jobs.pipeline import RunOptions, run, upgrade_store
from notifications.mailserver import MailCatcher
from notifications.settings import SmtpSettings

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--as-of", default="2026-03-02")
    args = ap.parse_args()
    as_of = dt.date.fromisoformat(args.as_of)
    root = Path("var/bench")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cases, staff = root / "cases.jsonl", root / "staff.jsonl"
    t = time.perf_counter()
    generate(args.cases, 1, as_of, cases, staff)
    print(f"generate {args.cases} cases: {time.perf_counter() - t:.1f}s")
    admin = None
    if args.db == "sqlite":
        source_url = f"sqlite:///{(root / 'source.sqlite').resolve()}"
        store_url = f"sqlite:///{(root / 'store.sqlite').resolve()}"
    else:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"rs_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        source_url = store_url = admin.url.set(database=name).render_as_string(False)
    try:
        engine = sa.create_engine(source_url)
        t = time.perf_counter()
        load_staff_file(engine, staff)
        report = load_cases(engine, cases)
        engine.dispose()
        print(f"load: {report.loaded} cases in {time.perf_counter() - t:.1f}s")
        with MailCatcher(root / "mail") as catcher:
            settings = dataclasses.replace(
                load_settings(env={}),
                source_url=source_url,
                store_url=store_url,
                workers=args.workers,
                batch_size=args.batch_size,
                smtp=SmtpSettings(host="127.0.0.1", port=catcher.port, tls="none"),
            )
            upgrade_store(settings)
            for label in ("first night", "same night again"):
                t = time.perf_counter()
                summary = run(settings, RunOptions(as_of, case_manager_mail_any_day=True))
                total = time.perf_counter() - t
                print(
                    f"run ({label}): {total:.1f}s for {summary.cases} open cases "
                    f"({summary.cases / total:,.0f} cases/s); signals "
                    f"{sum(summary.signals_per_rule.values())}; stages {summary.durations}; "
                    f"messages enqueued {summary.messages_enqueued}"
                )
            print(f"messages received by the mail catcher: {catcher.messages}")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: main process {own:.0f} MB, largest worker {kids:.0f} MB")
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
