"""The Markdown tables of ``docs/performance.md`` from a benchmark's JSON (no copying by hand).

    .venv/bin/python bench/table.py [var/bench/results.json]

Prints a heading line (date, machine, load), the measures per configuration and the
ratios with their targets, for pasting into ``docs/performance.md``. A measure a
configuration did not take (``--no-baselines``) shows as a dash.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

Row = tuple[str, Callable[[dict[str, Any]], str]]


def _n(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value < 100 else f"{value:,.0f}"
    return str(value)


def _get(r: dict[str, Any], *path: str) -> Any:
    value: Any = r
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _pair(r: dict[str, Any], *stages: str, key: str = "wall_s") -> str:
    return " / ".join(_n(_get(r, s, key)) for s in stages)


ROWS: list[Row] = [
    (
        "open cases / signals / messages",
        lambda r: " / ".join(_n(_get(r, "run", k)) for k in ("open_cases", "signals", "messages")),
    ),
    (
        "run --no-mail (extract to outbox), wall / CPU s",
        lambda r: f"{_n(_get(r, 'run', 'wall_s'))} / {_n(_get(r, 'run', 'cpu_s'))}",
    ),
    (
        "stages: extract+evaluate / reconcile / compose s",
        lambda r: " / ".join(
            _n(_get(r, "run", "stages", s)) for s in ("extract_evaluate", "reconcile", "compose")
        ),
    ),
    (
        "cases per second (run)",
        lambda r: _n(
            round(r["run"]["open_cases"] / r["run"]["wall_s"])
            if _get(r, "run", "open_cases")
            else None
        ),
    ),
    ("main-process peak MB (run)", lambda r: _n(_get(r, "run", "main_peak_mb"))),
    (
        "worker peaks MB (run)",
        lambda r: ", ".join(_n(p) for p in _get(r, "run", "worker_peaks_mb") or []) or "–",
    ),
    (
        "plain SELECT * / plain SELECT of the needed columns s",
        lambda r: _pair(r, "plain_select", "plain_select_needed"),
    ),
    (
        "source reader: the run's (needed columns) / whole cases s",
        lambda r: _pair(r, "source_read", "source_read_full"),
    ),
    (
        "starter rules: preview / SQL / plain Python s",
        lambda r: _pair(r, "starter_preview", "starter_sql", "starter_python"),
    ),
    (
        "starter rules: same (case, rule) pairs",
        lambda r: (
            f"{_n(r['starter_same_pairs'])} ({_n(_get(r, 'starter_sql', 'pairs'))})"
            if "starter_same_pairs" in r
            else "–"
        ),
    ),
    (
        "deliver / its start-up (nothing to send) / plain aiosmtplib sender s",
        lambda r: _pair(r, "deliver", "deliver_idle", "plain_sender"),
    ),
    ("messages received (deliver)", lambda r: _n(_get(r, "deliver", "received"))),
    ("main-process peak MB (deliver)", lambda r: _n(_get(r, "deliver", "main_peak_mb"))),
]


def render(report: dict[str, Any]) -> str:
    """The heading line and both tables for ``report`` (the JSON ``benchmark.py`` writes)."""
    results = report["results"]
    m = report["machine"]
    load = ", ".join(f"{x:.1f}" for x in m.get("load_average", []))
    out = [
        f"Run ending {report['date']}; {m['cpus']} cores, {m['memory_gb']} GB, Python "
        f"{m['python']}, {m['platform']}; load average at the end {load}.",
        "",
    ]
    heads = [f"{r['db']} {r['cases']:,}" for r in results]
    out.append("| | " + " | ".join(heads) + " |")
    out.append("|---" * (len(heads) + 1) + "|")
    for label, cell in ROWS:
        out.append(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    out.append("")
    targets = report.get("targets", {})
    keys: list[str] = []
    for row in report["ratios"]:
        keys.extend(k for k in row if k not in ("db", "cases") and k not in keys)
    out.append("| ratio (target) | " + " | ".join(heads) + " |")
    out.append("|---" * (len(heads) + 1) + "|")
    for key in keys:
        target = targets.get(key) or targets.get(key.replace("_vs_smaller", "_100k_vs_10k"))
        label = f"{key} (<= {target})" if target else key
        out.append(
            f"| {label} | " + " | ".join(_n(row.get(key)) for row in report["ratios"]) + " |"
        )
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "var" / "bench" / "results.json"
    print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
