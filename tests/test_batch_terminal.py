"""A batch in a terminal (a script, no kernel): a text bar on stderr, and Ctrl-C returns the
partial result with a note saying how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import localmind_jupyter as lm
    r = lm.batch([f"row {i}" for i in range(ROWS)], concurrency=2)
    print("RESULT", r.counts, r.cancelled, flush=True)
    """
)


def _start(home: Path, server, rows: int) -> subprocess.Popen[bytes]:
    (home / "config.yaml").write_text(
        "default_model: ollama:smollm:135m\nbackends:\n  ollama:\n"
        f'    settings: {{base_url: "{server.url}"}}\n'
    )
    env = {**os.environ, "LOCALMIND_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT.replace("ROWS", str(rows))],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # bytes: text mode would turn each \r into a newline
    )


def _finish(process: subprocess.Popen[bytes]) -> tuple[str, str]:
    out, err = process.communicate(timeout=60)
    return out.decode(), err.decode()


def test_the_text_bar_draws_counts_on_one_line_of_stderr(isolated_home, ollama_server):
    ollama_server.token_delay = 0.02
    process = _start(isolated_home, ollama_server, 12)
    out, err = _finish(process)
    assert process.returncode == 0, err
    assert "RESULT {'ok': 12, 'error': 0, 'cancelled': 0} False" in out
    assert err.startswith("\rollama:smollm:135m [") and err.endswith("\n")
    assert err.count("\n") == 1, "the bar is one line redrawn in place"
    last = err.rstrip("\n").split("\r")[-1]
    assert "[####################] 12/12 rows" in last and "rows/s" in last and "done in" in last
    assert "You said" not in err, "model output reached the bar"


def test_ctrl_c_returns_the_partial_result_with_a_note(isolated_home, ollama_server):
    ollama_server.token_delay = 0.1
    process = _start(isolated_home, ollama_server, 40)
    deadline = time.monotonic() + 30
    while ollama_server.requests_for("row ") < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    out, err = _finish(process)
    assert time.monotonic() - sent < 4
    assert process.returncode == 0, err
    assert "True" in out.split("RESULT", 1)[1]
    assert "batch interrupted:" in err and "run the same batch() again" in err
    assert "Traceback" not in err
    assert ollama_server.requests_for("row ") < 40
