"""Two rules of the suite that a green run could otherwise hide (a pytest plugin).

- In CI (``CI=true``) a skip fails the run, unless the test is on ``ALLOWED_SKIPS``
  with its reason: a missing engine, model or browser must not hide a feature.
- A test run never rewrites tracked files (screenshots go to an ignored folder), except
  where ``LOCALMIND_SCREENSHOTS`` asks for it (``make screenshots``).

``LOCALMIND_STRICT_SKIPS=1`` applies the skip rule outside CI too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

#: Test id prefix -> why skipping it is fine even in CI. Keep this list short.
ALLOWED_SKIPS: dict[str, str] = {}

_TRUE = {"1", "true", "yes", "on"}


def strict_skips() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("CI", "LOCALMIND_STRICT_SKIPS")
    )


def _allowed(nodeid: str) -> bool:
    return any(nodeid.startswith(prefix) for prefix in ALLOWED_SKIPS)


def _tracked_changes(root: Path) -> str | None:
    """``git status`` of tracked files, or None outside a git checkout."""
    try:
        run = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout if run.returncode == 0 else None


class CIPolicy:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bad_skips: list[str] = []
        self.before = _tracked_changes(root)
        self.written: list[str] = []

    def _asked_for(self, path: str) -> bool:
        """``make screenshots`` rewrites docs/images on purpose (LOCALMIND_SCREENSHOTS)."""
        target = os.environ.get("LOCALMIND_SCREENSHOTS")
        return bool(target) and (self.root / path).resolve().is_relative_to(Path(target).resolve())

    def _note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail") and not _allowed(report.nodeid):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.bad_skips.append(f"{report.nodeid or '<collection>'}: {reason}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._note(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._note(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        after = _tracked_changes(self.root)
        if self.before is not None and after is not None and after != self.before:
            was = set(self.before.splitlines())
            self.written = [
                line
                for line in after.splitlines()
                if line not in was and not self._asked_for(line[3:])
            ]
        failed = (self.bad_skips and strict_skips()) or self.written
        if failed and session.exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.bad_skips and strict_skips():
            terminalreporter.section("skips not allowed in CI", sep="=", red=True, bold=True)
            for line in self.bad_skips:
                terminalreporter.line(line)
            terminalreporter.line(
                "Install what is missing (make install does), or add the test to "
                "ALLOWED_SKIPS in tests/_ci_policy.py with its reason."
            )
        if self.written:
            terminalreporter.section("tests rewrote tracked files", sep="=", red=True, bold=True)
            for line in self.written:
                terminalreporter.line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CIPolicy(Path(str(config.rootpath))), "localmind-ci-policy")
