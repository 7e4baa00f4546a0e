"""What the real-browser tests share: Debian's Chromium, Playwright, and a sandboxed JupyterLab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "localmind-browser-test"
#: Where the browser tests save their screenshots: an ignored folder, so a test run never
#: rewrites tracked files. ``make screenshots`` points this at docs/images on purpose.
SCREENSHOTS = Path(os.environ.get("LOCALMIND_SCREENSHOTS") or REPO / ".cache" / "screenshots")


def code_notebook(*sources: str) -> dict[str, Any]:
    """An unexecuted notebook of code cells, one per source, for ``jupyterlab()``."""
    cells = [
        {
            "cell_type": "code",
            "id": f"cell-{index}",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": source,
        }
        for index, source in enumerate(sources)
    ]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def require_browser() -> Any:
    """Playwright's sync API, or a skip that names what is missing and how to install it.

    Called before JupyterLab is started, so a missing piece skips rather than fails.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        pytest.skip("jupyterlab is not installed (pip install jupyterlab)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return sync_playwright


@contextmanager
def jupyterlab(
    tmp_path: Path, notebooks: dict[str, dict[str, Any]], localmind_home: Path
) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 with token auth, every Jupyter folder under ``tmp_path``.

    Yields the base URL; the kernel reads LocalMind's config from ``localmind_home``.
    """
    root = tmp_path / "notebooks"
    root.mkdir()
    for name, notebook in notebooks.items():
        (root / name).write_text(json.dumps(notebook))
    jupyter = tmp_path / "jupyter"
    dirs = {name: jupyter / name for name in ("config", "data", "runtime", "ipython", "settings")}
    for folder in dirs.values():
        folder.mkdir(parents=True)
    # The "official Jupyter news?" popup would cover the cells in the screenshots.
    (dirs["config"] / "labconfig").mkdir()
    (dirs["config"] / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env = {
        **os.environ,
        "LOCALMIND_HOME": str(localmind_home),
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
        "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"),
        "IPYTHONDIR": str(dirs["ipython"]),
        "PYTHONPATH": str(REPO),
    }
    port = free_port()
    log_path = tmp_path / "lab.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(base, process, log_path)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _wait_for_server(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"JupyterLab did not start within 60 s:\n{log.read_text()[-3000:]}")
