"""Where the shipped rule pack and its JSON Schemas are.

The repository keeps ``rules/`` (the default rule pack) and ``schema/`` (the JSON Schemas
its ``$schema`` comments point at) beside ``engine/``, ``jobs/`` and the other product
folders; the wheel installs them beside those folders too, inside the one import package
(``regiesignaal/rules``, ``regiesignaal/schema``). So both are found relative to this file,
in a checkout (editable install) as in an installed wheel, without importing them.
"""

from __future__ import annotations

from pathlib import Path

PRODUCT_ROOT = Path(__file__).resolve().parents[2]
"""The folder that holds ``engine/``: the repository, or ``site-packages/regiesignaal``."""

PACKAGED_RULES_DIR = PRODUCT_ROOT / "rules"
"""The default rule pack (read only when installed: ``regiesignaal init`` copies it)."""

PACKAGED_SCHEMA_DIR = PRODUCT_ROOT / "schema"
"""The JSON Schemas of the default rule pack, where its ``$schema`` comments point."""


def schema_dir_for(rules_dir: Path) -> Path:
    """Where the ``$schema`` comments of the rule files in ``rules_dir`` point:
    ``../schema`` beside the folder (``# yaml-language-server: $schema=../schema/...``)."""
    return Path(rules_dir).resolve().parent / "schema"


def inside_installed_product(path: Path) -> bool:
    """True for a path inside an installed product (site-packages), which the product
    never writes; a repository checkout (with its ``pyproject.toml``) may be written."""
    if (PRODUCT_ROOT / "pyproject.toml").is_file():
        return False
    return Path(path).resolve().is_relative_to(PRODUCT_ROOT)
