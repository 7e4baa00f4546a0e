"""The first probe of a fresh process: its parallel threads import nothing for the first time.

Two threads importing httpx / openai / anthropic for the first time at once can be handed a
half-initialised module ("partially initialized module 'httpx' has no attribute
'Response'"), which showed a backend as unavailable in 2 of 5 fresh processes. The loader
imports what the probes need before it fans out; an audit hook sees every first import and
the thread that made it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import REPO, free_port

PROBE = """
import json, sys, threading
HEAVY = {"httpx", "httpx2", "httpcore", "httpcore2", "h11", "h2", "anyio", "openai", "anthropic"}
seen = []
def hook(event, args):
    if event == "import" and args[0].split(".")[0] in HEAVY:
        seen.append((threading.current_thread().name, args[0]))
sys.addaudithook(hook)
from localmind_jupyter.config import load_config
from localmind_jupyter.core.model_loader import ModelLoader
statuses = ModelLoader(load_config(sys.argv[1])).probe(timeout=20)
print(json.dumps({
    "reasons": {name: status.reason for name, status in statuses.items()},
    "probe_imports": sorted({m for t, m in seen if t.startswith("localmind-probe")}),
}))
"""


def _config(folder: Path) -> Path:
    dead = f"http://127.0.0.1:{free_port()}"
    path = folder / "config.yaml"
    path.write_text(
        "backends:\n"
        f"  ollama: {{type: ollama, settings: {{base_url: '{dead}'}}}}\n"
        f"  ollama2: {{type: ollama, settings: {{base_url: '{dead}'}}}}\n"
        f"  openai: {{type: openai, settings: {{base_url: '{dead}/v1', api_key: sk-x}}}}\n"
        f"  vllm: {{type: vllm, settings: {{base_url: '{dead}/v1'}}}}\n"
        f"  anthropic: {{type: anthropic, settings: {{base_url: '{dead}', api_key: sk-ant-x}}}}\n",
        encoding="utf-8",
    )
    return path


def _probe_fresh(config: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_first_probe_in_20_fresh_processes_never_sees_half_a_module(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_probe_fresh, [config] * 20))
    for result in results:
        assert result["probe_imports"] == [], "a probe thread imported a package first"
        for name, reason in result["reasons"].items():
            assert reason is not None and "refused" in reason, (name, reason)
