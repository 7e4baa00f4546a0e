"""``%load_ext localmind_jupyter`` vs a bare IPython shell and vs ``%load_ext jupyter_ai_magics``.

Each number is the median of fresh processes. We time ``%load_ext`` in-process (what
a user waits for after the kernel is up) and the whole process (start-up included).
jupyter-ai-magics goes into a throwaway venv under ``.cache/`` (created on first run;
it needs PyPI, ~315 MB). Goal: under 50 ms, and at least 20x faster than jupyter-ai.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from _util import REPO, median

RUNS = 7
PEER_VENV = REPO / ".cache" / "bench-jupyter-ai"

PROBE = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t = time.perf_counter()
{load}
elapsed = time.perf_counter() - t
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'transformers', 'openai'}})
print(json.dumps({{"load_ext": elapsed, "heavy": heavy}}))
"""


def measure(python: str, extension: str | None) -> tuple[float, float, list[str]]:
    load = f"ip.run_line_magic('load_ext', {extension!r})" if extension else "pass"
    in_process, whole, heavy = [], [], []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LOCALMIND_HOME": home, "IPYTHONDIR": home}
        for _ in range(RUNS):
            start = time.perf_counter()
            out = subprocess.run(
                [python, "-c", PROBE.format(load=load)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            whole.append(time.perf_counter() - start)
            data = json.loads(out.stdout.strip().splitlines()[-1])
            in_process.append(data["load_ext"])
            heavy = data["heavy"]
    return median(in_process), median(whole), heavy


def peer_python() -> str | None:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print("creating a throwaway venv with jupyter-ai-magics (first run only)…", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "jupyter-ai-magics"], check=False
        )
        if done.returncode != 0:
            print("  could not install jupyter-ai-magics; skipping the comparison")
            return None
    return str(python)


def main() -> dict[str, float]:
    ours_load, ours_whole, heavy = measure(sys.executable, "localmind_jupyter")
    _, bare_whole, _ = measure(sys.executable, None)
    print(f"%load_ext, median of {RUNS} fresh processes")
    print(f"  bare IPython shell process:            {bare_whole * 1000:7.1f} ms")
    print(
        f"  + %load_ext localmind_jupyter:         {ours_load * 1000:7.1f} ms in-process, "
        f"process {ours_whole * 1000:.1f} ms (+{(ours_whole - bare_whole) * 1000:.1f} ms)"
    )
    print(f"  heavy modules imported: {heavy or 'none'}")
    result = {"ours_ms": ours_load * 1000, "process_overhead_ms": (ours_whole - bare_whole) * 1000}
    python = peer_python()
    if python:
        peer_load, peer_whole, _ = measure(python, "jupyter_ai_magics")
        _, peer_bare_whole, _ = measure(python, None)
        print(
            f"  + %load_ext jupyter_ai_magics:         {peer_load * 1000:7.1f} ms in-process, "
            f"process {peer_whole * 1000:.1f} ms (+{(peer_whole - peer_bare_whole) * 1000:.1f} ms)"
        )
        print(f"  ratio jupyter-ai / ours (in-process): {peer_load / ours_load:.0f}x (goal >= 20x)")
        result["jupyter_ai_ms"] = peer_load * 1000
    print("  goal: under 50 ms")
    return result


if __name__ == "__main__":
    main()
