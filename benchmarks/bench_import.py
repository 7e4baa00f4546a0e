"""What ``import localmind_jupyter`` plus building the backends from default config costs.

Each measurement is a fresh interpreter; we time in-process around the import so
interpreter start-up is not counted, once bare and once after ``import IPython``
(the situation of ``%load_ext`` in a kernel). Goal: under 50 ms, and none of torch,
transformers or openai imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from _util import REPO, median

PROBE = """
import json, sys, time
{pre}
t = time.perf_counter()
import localmind_jupyter
from localmind_jupyter.core.model_loader import ModelLoader
loader = ModelLoader()
elapsed = time.perf_counter() - t
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'transformers', 'openai'}})
print(json.dumps({{"seconds": elapsed, "heavy": heavy, "backends": sorted(loader.backends)}}))
"""


def measure(pre: str, runs: int = 7) -> tuple[float, list[str], list[str]]:
    times, heavy, backends = [], [], []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LOCALMIND_HOME": home}
        env.pop("LOCALMIND_CONFIG", None)
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", PROBE.format(pre=pre)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            data = json.loads(out.stdout)
            times.append(data["seconds"])
            heavy, backends = data["heavy"], data["backends"]
    return median(times), heavy, backends


def main() -> dict[str, float]:
    bare, heavy, backends = measure("")
    kernel, heavy_k, _ = measure("import IPython")
    print("import localmind_jupyter + ModelLoader() from default config")
    print(f"  backends built: {', '.join(backends)}")
    print(f"  bare interpreter:      {bare * 1000:6.1f} ms (goal < 50 ms)")
    print(f"  after import IPython:  {kernel * 1000:6.1f} ms (goal < 50 ms)")
    print(f"  heavy modules imported: {heavy or heavy_k or 'none'}")
    if heavy or heavy_k:
        raise SystemExit("a heavy library was imported")
    return {"import_bare_ms": bare * 1000, "import_ipython_ms": kernel * 1000}


if __name__ == "__main__":
    main()
