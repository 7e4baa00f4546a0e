"""The suite's own CI rules hold: a skip fails CI, a rewritten tracked file fails any run,
and `make test` type-checks the package strictly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import tomllib

from tests import _ci_policy
from tests.conftest import REPO


def _run(folder: Path, body: str, **env: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_sample.py").write_text(body)
    (folder / "conftest.py").write_text('pytest_plugins = ["tests._ci_policy"]\n')
    environ = {k: v for k, v in os.environ.items() if k not in {"CI", "LOCALMIND_STRICT_SKIPS"}}
    environ["PYTHONPATH"] = str(REPO)
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


SKIPPING = "import pytest\n\ndef test_engine():\n    pytest.skip('no engine here')\n"


def test_a_skip_fails_ci_and_names_the_test(tmp_path: Path) -> None:
    run = _run(tmp_path, SKIPPING, CI="true")
    assert run.returncode == 1, run.stdout
    assert "skips not allowed in CI" in run.stdout
    assert "test_sample.py::test_engine" in run.stdout and "no engine here" in run.stdout


def test_a_skip_outside_ci_only_reports(tmp_path: Path) -> None:
    run = _run(tmp_path, SKIPPING)
    assert run.returncode == 0, run.stdout
    assert "1 skipped" in run.stdout


def test_a_module_level_skip_fails_ci_too(tmp_path: Path) -> None:
    body = (
        "import pytest\n\npytest.importorskip('no_such_engine_module')\n\ndef test_x():\n    pass\n"
    )
    run = _run(tmp_path, body, CI="true")
    assert run.returncode == 1, run.stdout
    assert "no_such_engine_module" in run.stdout


def test_an_allowed_skip_passes_ci(tmp_path: Path) -> None:
    assert _ci_policy.ALLOWED_SKIPS == {} or all(
        reason.strip() for reason in _ci_policy.ALLOWED_SKIPS.values()
    ), "every allowed skip states its reason"
    # The allow-list is read in the child process: give it one entry through a plugin.
    (tmp_path / "allow.py").write_text(
        "from tests import _ci_policy\n"
        "_ci_policy.ALLOWED_SKIPS['test_sample.py::test_engine'] = 'shown in this test'\n"
    )
    (tmp_path / "test_sample.py").write_text(SKIPPING)
    environ = {k: v for k, v in os.environ.items() if k != "LOCALMIND_STRICT_SKIPS"}
    environ.update(CI="true", PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "allow",
            "-p",
            "tests._ci_policy",
            "-p",
            "no:cacheprovider",
            "test_sample.py",
        ],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout


def test_a_test_that_rewrites_a_tracked_file_fails(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "image.png").write_text("old")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "image.png"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    body = (
        "from pathlib import Path\n\ndef test_writes():\n    Path('image.png').write_text('new')\n"
    )
    run = _run(repo, body)
    assert run.returncode == 1, run.stdout
    assert "tests rewrote tracked files" in run.stdout and "image.png" in run.stdout


def test_make_test_type_checks_the_package_strictly() -> None:
    """``make test`` runs ``mypy --strict`` over the package: dropping it must be a visible edit."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    mypy = pyproject["tool"]["mypy"]
    assert mypy["strict"] is True and mypy["files"] == ["localmind_jupyter"]
    # Overrides may only describe untyped libraries, never silence the package's own errors.
    for override in mypy.get("overrides", []):
        assert not override.get("ignore_errors"), override
    test_extra = pyproject["project"]["optional-dependencies"]["test"]
    assert any(re.match(r"mypy\b", requirement) for requirement in test_extra)
    makefile = (REPO / "Makefile").read_text()
    test_target = re.search(r"^test:(.*)$", makefile, re.MULTILINE)
    assert test_target is not None and "typecheck" in test_target.group(1).split()
    recipe = re.search(r"^typecheck:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe is not None and recipe.group(1).strip() == "$(BIN)/mypy"
