"""bench/table.py renders the published tables from a benchmark's JSON, dashes for gaps."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_table", ROOT / "bench" / "table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_render_copies_numbers_and_marks_what_was_not_measured() -> None:
    full = {
        "db": "sqlite",
        "cases": 10000,
        "run": {
            "wall_s": 12.5,
            "cpu_s": 20.25,
            "open_cases": 9502,
            "main_peak_mb": 91.3,
            "worker_peaks_mb": [90.0],
            "signals": 19068,
            "messages": 189,
            "stages": {"extract_evaluate": 5.0, "reconcile": 2.0, "compose": 3.0},
        },
        "plain_select": {"wall_s": 0.25},
        "starter_same_pairs": False,
        "starter_sql": {"pairs": 2368},
        "deliver": {"wall_s": 4.0, "received": 189},
    }
    partial = {
        "db": "sqlite",
        "cases": 1000000,
        "run": {"wall_s": 300.0, "cpu_s": 500.0, "open_cases": 949650},
    }
    report = {
        "date": "2026-11-29T20:00:00+00:00",
        "machine": {
            "cpus": 2,
            "memory_gb": 23.5,
            "python": "3.11.7",
            "platform": "Linux",
            "load_average": [1.0, 1.5, 2.0],
        },
        "targets": {"run_vs_plain_select": 10.0},
        "ratios": [
            {"db": "sqlite", "cases": 10000, "run_vs_plain_select": 50.0},
            {"db": "sqlite", "cases": 1000000, "run_vs_plain_select": None},
        ],
        "results": [full, partial],
    }
    text = _table().render(report)
    lines = text.splitlines()
    assert "| | sqlite 10,000 | sqlite 1,000,000 |" in lines
    assert "| open cases / signals / messages | 9,502 / 19,068 / 189 | 949,650 / – / – |" in lines
    assert "| cases per second (run) | 760 | 3,166 |" in lines
    assert "| main-process peak MB (run) | 91.3 | – |" in lines
    assert "| starter rules: same (case, rule) pairs | NO (2,368) | – |" in lines
    assert "| run_vs_plain_select (<= 10.0) | 50 | – |" in lines
