"""Run every benchmark in turn (``make benchmark``); each prints its own ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_import.py",
    "bench_load_ext.py",
    "bench_ollama_stream.py",
    "bench_magic_stream.py",
    "bench_batch_ollama.py",
    "bench_batch_resume.py",
    "bench_batch_openai.py",
    "bench_compare.py",
    "bench_transformers.py",
    "bench_transformers_dtype.py",
    "bench_structured_transformers.py",
    "bench_batch_transformers.py",
    "bench_gguf.py",
    "bench_first_answer.py",
    "bench_structured.py",
    "bench_schema_validity.py",
]


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"\n=== {script}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script)], cwd=HERE).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
