"""This checkout as pip installs it, in a folder: the package and its entry points.

Tests of "just nbval and this package installed" run pytest in a subprocess whose
``PYTHONPATH`` is this folder alone, so the repository's ``tests`` are not on it, and
the entry points are the ones pyproject.toml declares now (the venv's editable install
registered those of the day it was made).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent


def entry_points() -> dict[str, dict[str, str]]:
    """``[project.entry-points]`` of pyproject.toml: group -> name -> object reference."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    groups: dict[str, dict[str, str]] = project.get("entry-points", {})
    return groups


def install(target: Path) -> Path:
    """Copy the package into ``target`` with a dist-info as pip writes it; ``target``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    shutil.copytree(
        REPO / "localmind_jupyter",
        target / "localmind_jupyter",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    info = target / f"localmind_jupyter-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8",
    )
    lines = []
    for group, names in entry_points().items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in names.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    return target
