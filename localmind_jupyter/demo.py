"""Run a notebook headless and print each cell's output as it streams (``make demo``).

Display updates of one output (how ``%%localmind`` streams) are printed as the new
text only, so the terminal shows the answer growing just as the notebook does.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from .safe_display import terminal_text


class _Printer:
    """Turns IOPub messages into terminal text."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.shown: dict[str, str] = {}  # display_id -> text already printed

    def handle(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            self.write(terminal_text(content["text"]))
        elif kind in {"display_data", "execute_result", "update_display_data"}:
            # Model-written: its escape sequences must not reach the terminal.
            text = terminal_text(content.get("data", {}).get("text/plain", ""))
            display_id = content.get("transient", {}).get("display_id")
            if display_id is None:
                self.write(text + "\n")
                return
            before = self.shown.get(display_id)
            self.shown[display_id] = text
            if before is not None and before.startswith("⏳"):
                self.write("\r\033[K" + text)  # replace the waiting line
            elif before is not None and text.startswith(before):
                self.write(text[len(before) :])
            elif before is None and text.startswith("⏳"):
                self.write(text)
            else:
                self.write(("\n" if before else "") + text)
        elif kind == "error":
            self.write("\n".join(content.get("traceback", [])) + "\n")

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


def run(path: Path, out: TextIO = sys.stdout, timeout: float = 600) -> int:
    import nbformat
    from jupyter_client.manager import start_new_kernel

    notebook = nbformat.read(path, as_version=4)
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(path.parent))
    printer = _Printer(out)
    failures = 0
    try:
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                heading = next((ln for ln in cell.source.splitlines() if ln.startswith("#")), None)
                if heading:
                    printer.write(f"\n\033[1m{heading.lstrip('# ')}\033[0m\n")
                continue
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            printer.write(f"\n\033[2m>>> {cell.source.strip()}\033[0m\n")
            msg_id = client.execute(cell.source)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    msg = client.get_iopub_msg(timeout=1)
                except queue.Empty:
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "error":
                    failures += 1
                printer.handle(msg)
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
            printer.write("\n")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localmind_jupyter.demo", description=__doc__)
    parser.add_argument("notebook", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return run(args.notebook)


if __name__ == "__main__":
    sys.exit(main())
