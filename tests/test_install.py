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
import zipfile
from pathlib import Path

import pytest

from regiesignaal.engine.language.rulefile.folder import load_rule_dir

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
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "warning" not in (built.stdout + built.stderr).lower(), built.stderr
    (wheel,) = dist.glob("regiesignaal-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"regiesignaal"}, "one import package, no generic top-level names"
    shipped_schemas = {n for n in names if n.startswith("regiesignaal/schema/")}
    assert shipped_schemas == {
        "regiesignaal/schema/rule.schema.json",
        "regiesignaal/schema/derived.schema.json",
    }
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
        [str(python), "-c", "import regiesignaal.jobs.cli as c; print(c.__file__)"],
        cwd=elsewhere, env=_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(venv)), "the installed package, not the checkout"
    module = subprocess.run(
        [str(python), "-m", "regiesignaal", "--help"], cwd=elsewhere, env=_env(),
        capture_output=True, text=True,
    )  # fmt: skip
    assert module.returncode == 0 and "rules" in module.stdout

    checked = cli("rules", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shipped = len(load_rule_dir(ROOT / "rules").rules)
    assert f"In orde: {shipped} regels" in checked.stdout
    shown = cli("config", "show", COLUMNS="400")
    assert str(site / "regiesignaal" / "rules") in shown.stdout
    # the editor support of the packaged rules works installed, and nothing is written there
    schemas = cli("rules", "schema", "--check")
    assert schemas.returncode == 0, schemas.stdout + schemas.stderr
    before = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    current = cli("rules", "schema")
    assert current.returncode == 0 and "actueel" in current.stdout, current.stderr
    refused = cli("rules", "schema", "--out", str(site / "regiesignaal" / "nieuw"))
    assert refused.returncode == 1 and "hoort bij de installatie" in refused.stderr
    after = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == before, "rules schema wrote into site-packages"
    initialised = cli("init", str(elsewhere / "site"))
    assert initialised.returncode == 0, initialised.stdout + initialised.stderr
    assert (elsewhere / "site" / "schema" / "rule.schema.json").is_file()
    site_rules = "--config", str(elsewhere / "site" / "regiesignaal.toml")
    assert cli(*site_rules, "rules", "schema", "--check").returncode == 0

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
