"""Small helpers shared by the benchmark scripts (run from the repository root)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def median(values: list[float]) -> float:
    return statistics.median(values)


def start_server(module: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start a test server in its own process (so it does not share our GIL); return its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", "--lifetime", "900", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"{module} did not start: {url!r}")
    return proc, url


def row(name: str, ours: float, raw: float, unit: str, goal: str) -> str:
    return f"| {name} | {ours:.4g} {unit} | {raw:.4g} {unit} | {ours / raw:.3f} | {goal} |"


def use_ollama_home(url: str, home: Path, default_model: str) -> None:
    """A LocalMind home of our own whose only backend is the Ollama test server at ``url``."""
    (home / "config.yaml").write_text(
        f"default_model: {default_model}\nbackends:\n  ollama:\n    type: ollama\n"
        f'    settings: {{base_url: "{url}"}}\n'
    )
    os.environ["LOCALMIND_HOME"] = str(home)
    os.environ.pop("LOCALMIND_CONFIG", None)
