"""A built wheel installs and works outside the checkout (issue 8).

The wheel is built from this checkout and installed (without dependencies) into a fresh
virtual environment without system site packages. The pinned dependencies come from the
project's own environment through a ``.pth`` line pointing at its site-packages: that
directory holds the dependencies but not the project (the development install there is a
``.pth`` hook that Python does not run for a directory added this way), so a file missing
from the wheel (rules, templates, migrations) fails here as it would for an operator.
``pip check`` then confirms the wheel declares every dependency it needs. All commands
run from a folder outside the checkout, with no REGIESIGNAAL_* variables set.

``REGIESIGNAAL_TEST_FULL_INSTALL=1`` installs the dependencies from the package index
instead (pinned by constraints.txt; slow the first time, then from pip's cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_IGNORE = (
    ".venv", ".git", "build", "dist", "var", "*.egg-info", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".hypothesis", ".ruff_cache",
)  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REGIESIGNAAL_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(extra)
    return env


@pytest.mark.slow
def test_the_wheel_works_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # a clean copy: a build/ folder left in the checkout must not hide missing package data
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*BUILD_IGNORE))
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("regiesignaal-*.whl")
    venv = tmp_path / "venv"
    full = os.environ.get("REGIESIGNAAL_TEST_FULL_INSTALL") == "1"
    venv_args = [] if full else ["--without-pip"]
    subprocess.run([sys.executable, "-m", "venv", *venv_args, str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    if full:  # the real thing: dependencies from the index (pip cache), pinned
        constraints = str(ROOT / "constraints.txt")
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-c", constraints, str(wheel)],
            check=True,
        )
    else:
        (site / "zz_pinned_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        subprocess.run(
            [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
            check=True,
            capture_output=True,
        )
    check = subprocess.run([*pip, "--python", str(python), "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    elsewhere = tmp_path / "elders"
    elsewhere.mkdir()
    exe = str(venv / "bin" / "regiesignaal")

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args], cwd=elsewhere, env=_env(**env), capture_output=True, text=True
        )

    where = subprocess.run(
        [str(python), "-c", "import jobs, regiesignaal_rules; print(jobs.__file__)"],
        cwd=elsewhere, env=_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(venv)), "the installed package, not the checkout"

    checked = cli("rules", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "22 regels" in checked.stdout
    shown = cli("config", "show", COLUMNS="400")
    assert str(site / "regiesignaal_rules") in shown.stdout

    demo = cli("demo", "--cases", "120", "--dir", "demo")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stderr
    assert list((elsewhere / "demo" / "mail").glob("*.eml")), "the templates shipped"

    urls = {
        "REGIESIGNAAL_SOURCE_URL": f"sqlite:///{elsewhere / 'demo' / 'source.sqlite'}",
        "REGIESIGNAAL_STORE_URL": f"sqlite:///{elsewhere / 'store.sqlite'}",
    }
    upgraded = cli("db", "upgrade", **urls)
    assert upgraded.returncode == 0, upgraded.stderr
    ran = cli("run", "--no-mail", **urls)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "succeeded" in ran.stdout
    listed = cli(
        "--config", str(elsewhere / "demo" / "regiesignaal.toml"), "runs", "--format", "json"
    )
    assert listed.returncode == 0 and "succeeded" in listed.stdout
