"""The model manager widgets, Python side, against the Ollama (and OpenAI) test servers.

ipywidgets works without a front end: with no kernel, each widget gets a
``comm.DummyComm`` and its messages go nowhere, so the widgets are built, clicked
(``Button.click()``) and read here like in a notebook. One test runs a real kernel
to show that a download leaves it free and that updates sent from the download
thread reach IOPub.
"""

from __future__ import annotations

import itertools
import queue
import re
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from ipywidgets.widgets import widget as widget_module

from localmind_jupyter.session import get_session, reset_session
from tests.conftest import free_port


# --- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def fresh_session() -> Iterator[None]:
    """Each test reads its own config into a new kernel session and closes its widgets."""
    reset_session()
    yield
    reset_session()
    for instance in list(widget_module._instances.values()):
        instance.close()


def write_config(home: Path, backends: str) -> None:
    (home / "config.yaml").write_text(
        "backends:\n" + textwrap.indent(textwrap.dedent(backends), "  ")
    )


@pytest.fixture
def dead_port() -> int:
    return free_port()


@pytest.fixture
def config(isolated_home: Path, ollama_server: Any, dead_port: int) -> Any:
    """One Ollama at the test server, one at a port nothing listens on."""
    write_config(
        isolated_home,
        f"""
        ollama:
          settings: {{base_url: "{ollama_server.url}"}}
        down:
          type: ollama
          settings: {{base_url: "http://127.0.0.1:{dead_port}"}}
        """,
    )
    return ollama_server


def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"condition not met within {timeout} s")


def pulls(server: Any) -> list[Any]:
    return [body for _m, path, body in server.requests if path == "/api/pull"]


def manager() -> Any:
    from localmind_jupyter.widgets import ModelManager

    panel = ModelManager()
    assert panel.wait(15)
    return panel


def record(widget: widgets.Widget, name: str = "value") -> list[tuple[float, Any]]:
    """Every value a trait takes from now on, with the time it changed."""
    seen: list[tuple[float, Any]] = []
    widget.observe(lambda change: seen.append((time.monotonic(), change["new"])), name)
    return seen


# --- BackendPicker -------------------------------------------------------------------------------
def test_picker_shows_available_and_unavailable_backends_with_reasons(config, dead_port):
    from localmind_jupyter.widgets import BackendPicker

    picker = BackendPicker()
    assert picker.wait(10)
    assert picker.status_of("ollama") == ("available", None)
    state, reason = picker.status_of("down")
    assert state == "unavailable"
    assert f"connection refused at http://127.0.0.1:{dead_port}" in reason
    down = picker.rows["down"]
    assert reason in down.html.value  # as text ...
    assert down.html.tooltip == reason  # ... and as tooltip
    assert "unavailable" in down.html.value
    ok = picker.rows["ollama"].html.value
    assert "available" in ok and "Ollama" in ok and config.url in ok
    assert picker.result is not None and set(picker.result["backends"]) == {"ollama", "down"}


def test_refresh_probes_again_on_a_background_thread(config, dead_port, monkeypatch):
    from localmind_jupyter.backends.ollama import OllamaBackend
    from localmind_jupyter.widgets import BackendPicker
    from tests.servers.ollama_server import OllamaTestServer

    picker = BackendPicker()
    assert picker.wait(10)
    assert picker.status_of("down")[0] == "unavailable"

    gate = threading.Event()
    probing_threads: list[str] = []
    original = OllamaBackend.check_availability

    def slow_check(self: OllamaBackend) -> tuple[bool, str | None]:
        probing_threads.append(threading.current_thread().name)
        gate.wait(1.5)
        return original(self)

    monkeypatch.setattr(OllamaBackend, "check_availability", slow_check)
    with OllamaTestServer(port=dead_port):  # the dead backend comes up
        started = time.monotonic()
        picker.refresh_button.click()
        assert time.monotonic() - started < 0.2, "refresh blocked the caller"
        assert picker.refreshing
        assert picker.refresh_button.disabled and picker.refresh_button.description == "Checking…"
        assert picker.status_of("ollama")[0] == "checking"
        assert not picker.refresh(), "a second refresh must join the running one"
        gate.set()
        assert picker.wait(10)
        assert picker.status_of("down") == ("available", None)
        assert not picker.refresh_button.disabled
    assert probing_threads and threading.main_thread().name not in probing_threads


def test_choosing_a_backend_filters_the_catalog(config):
    panel = manager()
    backends = {b for b, _m in panel.catalog.visible()}
    assert backends == {"ollama", "down"}

    panel.picker.rows["down"].button.click()
    assert panel.picker.value == "down" and panel.catalog.backend == "down"
    assert {b for b, _m in panel.catalog.visible()} == {"down"}
    assert panel.picker.rows["down"].button.button_style == "primary"
    assert panel.picker.rows["ollama"].button.button_style == ""

    panel.picker.all_button.click()
    assert panel.catalog.backend is None
    assert {b for b, _m in panel.catalog.visible()} == {"ollama", "down"}


def test_catalog_lists_installed_first_with_sizes_and_badges(config):
    from localmind_jupyter.widgets import ModelCatalog

    catalog = ModelCatalog()
    assert catalog.wait(10)
    catalog.backend = "ollama"
    visible = catalog.visible()
    installed = [catalog.model(*key)["installed"] for key in visible]
    assert installed == sorted(installed, reverse=True), "installed models must come first"
    assert set(visible[:2]) == {("ollama", "smollm:135m"), ("ollama", "qwen2.5:0.5b")}
    row = catalog._rows[("ollama", "tinyllama:latest")]
    html = row.html.value
    assert "tinyllama:latest" in html and "638.0 MB" in html and "1.1B" in html
    assert "TinyLlama" in html and ">chat<" in html and "installed" not in html
    assert "installed" in catalog._rows[("ollama", "qwen2.5:0.5b")].html.value


def test_catalog_search_and_tag_filter(config):
    from localmind_jupyter.widgets import ModelCatalog

    catalog = ModelCatalog()
    assert catalog.wait(10)
    catalog.backend = "ollama"
    total = len(catalog.visible())

    catalog.search.value = "minilm"
    assert catalog.visible() == [("ollama", "all-minilm:latest")]
    catalog.search.value = "TINY llama"  # words, any case, any order
    assert ("ollama", "tinyllama:latest") in catalog.visible()

    catalog.search.value = ""
    assert "embedding" in [value for _label, value in catalog.tag.options]
    catalog.tag.value = "embedding"
    embedding = catalog.visible()
    assert embedding and ("ollama", "all-minilm:latest") in embedding
    assert all("embedding" in catalog.model(*key)["tags"] for key in embedding)
    catalog.search.value = "minilm"
    assert catalog.visible() == [("ollama", "all-minilm:latest")]
    catalog.search.value = "no such model anywhere"
    assert catalog.visible() == []
    assert "No model matches" in catalog.count.value

    catalog.search.value = ""
    catalog.tag.value = ""
    catalog.installed_only.value = True
    assert {m for _b, m in catalog.visible()} == {"smollm:135m", "qwen2.5:0.5b"}
    catalog.installed_only.value = False
    assert len(catalog.visible()) == total
    assert f"{total} of {total} models" in catalog.count.value


def test_use_sets_the_model_of_the_magic(config):
    panel = manager()
    catalog = panel.catalog
    assert catalog.use_button.disabled  # nothing selected yet
    catalog._rows[("ollama", "qwen2.5:0.5b")].button.click()
    assert catalog.selected == ("ollama", "qwen2.5:0.5b")
    assert not catalog.use_button.disabled
    catalog.use_button.click()
    session = get_session()
    assert session.chosen_model == "ollama:qwen2.5:0.5b"
    assert session.default_spec(None) == "ollama:qwen2.5:0.5b"  # what %%localmind runs
    assert "now uses ollama:qwen2.5:0.5b" in catalog.message.value
    assert "in use" in catalog._rows[("ollama", "qwen2.5:0.5b")].html.value


def test_download_is_disabled_with_a_reason_where_there_is_nothing_to_download(
    isolated_home, ollama_server, openai_server
):
    from localmind_jupyter.widgets import ModelCatalog

    write_config(
        isolated_home,
        f"""
        ollama:
          settings: {{base_url: "{ollama_server.url}"}}
        remote:
          type: openai
          settings: {{base_url: "{openai_server.base_url}", api_key: sk-test-secret-123456}}
        """,
    )
    catalog = ModelCatalog()
    assert catalog.wait(10)
    assert catalog.download_button.disabled
    assert "Select a model" in catalog.download_reason

    for served in ("gpt-test", "smol-chat"):  # a local server offers only what it serves
        catalog.select("remote", served)
        assert catalog.download_button.disabled
        assert "nothing to download" in catalog.download_reason
        assert "nothing to download" in catalog.reason.value
        assert catalog.download_button.tooltip == catalog.download_reason
        assert not catalog.use_button.disabled
        assert catalog.download() is None

    catalog.select("ollama", "qwen2.5:0.5b")
    assert catalog.download_button.disabled
    assert "already installed" in catalog.download_reason
    catalog.select("ollama", "tinyllama:latest")
    assert not catalog.download_button.disabled and catalog.download_reason is None
    assert not pulls(ollama_server)


# --- downloads -----------------------------------------------------------------------------------
def test_download_moves_the_bar_to_100_and_marks_the_model_installed(config):
    config.pull_delay = 0.01
    panel = manager()
    catalog = panel.catalog
    catalog.select("ollama", "tinyllama:latest")
    assert not catalog.model("ollama", "tinyllama:latest")["installed"]
    catalog.download_button.click()
    row = panel.downloads.row_for("ollama", "tinyllama:latest")
    assert row is not None
    seen = record(row.bar)
    assert "downloading" in catalog._rows[("ollama", "tinyllama:latest")].html.value
    assert catalog.download_button.disabled and "Downloading" in catalog.download_reason

    final = row.download.wait(15)
    assert final.state == "done"
    values = [v for _t, v in seen]
    assert values == sorted(values), f"the bar went backwards: {values}"
    assert values[-1] == 100.0 and row.bar.value == 100.0
    assert len([v for v in values if 0 < v < 100]) >= 2, f"no progress shown: {values}"
    assert row.bar.bar_style == "success"
    assert "100 %" in row.percent.value
    assert "installed — ready to use" in row.details.value
    assert row.button.description == "Dismiss"
    # Marked installed by the time the download is over, no refresh needed ...
    assert catalog.model("ollama", "tinyllama:latest")["installed"]
    assert "already installed" in catalog.download_reason
    # ... and still after the background re-read of the backend's list.
    assert catalog.wait(10)
    assert catalog.model("ollama", "tinyllama:latest")["installed"]
    assert "tinyllama:latest" in config.installed
    assert "installed" in catalog._rows[("ollama", "tinyllama:latest")].html.value
    assert catalog.visible().index(("ollama", "tinyllama:latest")) < catalog.visible().index(
        ("ollama", "all-minilm:latest")
    )


def test_running_row_shows_backend_status_speed_and_eta(config):
    from localmind_jupyter.widgets import DownloadProgress

    config.pull_delay = 0.05
    progress = DownloadProgress()
    download = progress.start("ollama", "tinyllama:latest")
    row = progress.rows[download.id]
    until(lambda: download.snapshot().completed > 300_000 and row.status.completed > 300_000)
    details = row.details.value
    assert "pulling " in details  # Ollama's own status text
    assert re.search(r"\d KB / 1\.\d MB", details), details
    assert re.search(r"\d+\.\d (KB|MB)/s", details) and re.search(r"ETA 0:0\d", details)
    assert "display:inline-block;width:" in details  # fixed-width numbers: no layout jumps
    assert row.button.description == "Cancel"
    assert download.wait(15).state == "done"


def test_cancel_stops_the_transfer_and_installs_nothing(config):
    config.pull_delay = 0.05
    panel = manager()
    panel.catalog.select("ollama", "tinyllama:latest")
    download = panel.catalog.download()
    row = panel.downloads.rows[download.id]
    until(lambda: download.snapshot().completed > 0)
    row.button.click()
    assert row.button.description == "Cancelling…" and row.button.disabled
    final = download.wait(5)
    assert final.state == "cancelled"
    until(lambda: row.state == "cancelled")
    assert row.bar.bar_style == "warning"
    assert row.bar.value < 100
    assert "cancelled" in row.details.value and "nothing was installed" in row.details.value
    assert config.disconnected.wait(2), "the server never saw the client go"
    sent = config.pull_bytes_sent
    time.sleep(0.3)
    assert config.pull_bytes_sent == sent < 1_250_000, "the transfer went on after cancel"
    assert "tinyllama:latest" not in config.installed
    assert not panel.catalog.model("ollama", "tinyllama:latest")["installed"]
    assert not panel.catalog.download_button.disabled  # it can be downloaded again
    row.button.click()  # now "Dismiss"
    assert download.id not in panel.downloads.rows


def test_failed_downloads_show_their_error_and_the_panel_keeps_working(config):
    panel = manager()
    catalog, downloads = panel.catalog, panel.downloads

    # A catalog entry the server's library lacks.
    catalog.select("ollama", "smollm2:135m")
    unknown = catalog.download()
    assert unknown.wait(10).state == "failed"
    row = downloads.rows[unknown.id]
    until(lambda: row.state == "failed")
    assert "not in the Ollama library" in row.details.value
    assert row.bar.bar_style == "danger"
    assert not catalog.model("ollama", "smollm2:135m")["installed"]
    assert not catalog.download_button.disabled  # may be tried again

    # The connection drops mid-pull.
    config.pull_drop_after_bytes = 200_000
    catalog.select("ollama", "tinyllama:latest")
    dropped = catalog.download()
    assert dropped.wait(10).state == "failed"
    assert "dropped" in downloads.rows[dropped.id].details.value
    assert not catalog.model("ollama", "tinyllama:latest")["installed"]

    # The panel still works: the same model downloads once the fault is gone.
    config.reset_faults()
    again = catalog.download()
    assert again.id != dropped.id
    assert again.wait(10).state == "done"
    assert [r.state for r in downloads.rows.values()] == ["failed", "failed", "done"]
    assert catalog.model("ollama", "tinyllama:latest")["installed"]

    downloads.clear_button.click()
    assert downloads.rows == {}


def test_a_second_download_of_the_same_model_joins_the_first(config):
    from localmind_jupyter.widgets import DownloadProgress

    config.pull_delay = 0.03
    panel = manager()
    first = panel.downloads.start("ollama", "all-minilm:latest")
    second = panel.downloads.start("ollama", "all-minilm:latest")
    assert second is first
    panel.catalog.select("ollama", "all-minilm:latest")
    assert "Downloading" in panel.catalog.download_reason
    assert panel.catalog.download() is None
    # Another panel opened meanwhile shows the running download too, as one row.
    other = DownloadProgress()
    assert list(other.rows) == [first.id]
    assert other.start("ollama", "all-minilm:latest") is first
    assert list(other.rows) == [first.id]
    # A different model downloads alongside.
    parallel = panel.downloads.start("ollama", "tinyllama:latest")
    assert first.wait(10).state == "done" and parallel.wait(10).state == "done"
    assert len(panel.downloads.rows) == 2
    assert [body["model"] for body in pulls(config)].count("all-minilm:latest") == 1
    until(lambda: other.rows[first.id].state == "done")


def test_rows_redraw_at_most_ten_times_a_second_plus_phase_changes(isolated_home):
    from localmind_jupyter.widgets import DownloadProgress
    from tests.servers.ollama_server import PULL_CHUNK_BYTES, OllamaTestServer

    layer = ("sha256:" + "ab" * 32, PULL_CHUNK_BYTES * 150)
    with OllamaTestServer(library={"big:latest": [layer]}) as server:
        server.pull_delay = 0.004  # ~150 progress lines in about a second
        write_config(isolated_home, f'ollama:\n  settings: {{base_url: "{server.url}"}}\n')
        get_session().downloads.throttle = 0.0  # the core passes every line on
        progress = DownloadProgress()
        lines: list[float] = []
        download = progress.start("ollama", "big:latest")
        download.subscribe(lambda _st: lines.append(time.monotonic()))
        row = progress.rows[download.id]
        changes = record(row.bar)
        assert download.wait(20).state == "done"
    until(lambda: row.finished)
    elapsed = lines[-1] - lines[0]
    assert len(lines) > 100, "the test server sent too few lines to test throttling"
    phases = 6  # starting, pulling, verifying, writing manifest, success, done
    assert len(changes) <= elapsed * 10 + phases, f"{len(changes)} bar changes in {elapsed:.2f} s"
    assert row.redraws <= elapsed * 10 + phases + 2
    gaps = [b - a for (a, _x), (b, _y) in itertools.pairwise(changes)]
    assert sum(1 for gap in gaps if gap < 0.09) <= phases, f"redraws too close: {gaps}"
    assert changes[-1][1] == 100.0


def test_secrets_never_reach_a_widget(isolated_home, ollama_server, openai_server, dead_port):
    write_config(
        isolated_home,
        f"""
        ollama:
          settings:
            base_url: "{ollama_server.url}"
            headers: {{Authorization: "Bearer ollama-token-98765"}}
        remote:
          type: openai
          settings: {{base_url: "{openai_server.base_url}", api_key: sk-test-secret-123456}}
        proxied:
          type: ollama
          settings: {{base_url: "http://alice:hunter2-pass@127.0.0.1:{dead_port}"}}
        """,
    )
    panel = manager()
    panel.catalog.select("remote", "gpt-test")
    panel.catalog.use()
    panel.catalog.select("proxied", "tinyllama:latest")
    assert "proxied" in panel.picker.rows and panel.picker.status_of("proxied")[0] == "unavailable"
    assert f"127.0.0.1:{dead_port}" in panel.picker.rows["proxied"].html.value

    texts: list[str] = []
    for instance in list(widget_module._instances.values()):
        for value in instance.get_state().values():
            texts.append(repr(value))
    shown = "\n".join(texts)
    for secret in ("sk-test-secret-123456", "ollama-token-98765", "hunter2-pass", "alice:"):
        assert secret not in shown


# --- entry points --------------------------------------------------------------------------------
def test_model_manager_is_exported_and_is_a_widget(config):
    import localmind_jupyter
    from localmind_jupyter.magics.commands import LINE_COMMANDS
    from localmind_jupyter.widgets import (
        BackendPicker,
        DownloadProgress,
        ModelCatalog,
        ModelManager,
    )

    assert localmind_jupyter.ModelManager is ModelManager
    assert "ModelManager" in localmind_jupyter.__all__
    assert "manager" in LINE_COMMANDS
    panel = manager()
    assert isinstance(panel, widgets.VBox)
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert isinstance(panel.picker, BackendPicker)
    assert isinstance(panel.catalog, ModelCatalog)
    assert isinstance(panel.downloads, DownloadProgress)
    assert panel.catalog.downloads is panel.downloads
    panel.close()
    assert panel.comm is None and panel.picker.comm is None and panel.downloads.comm is None


def test_each_widget_works_alone(config):
    from localmind_jupyter.widgets import ModelCatalog

    catalog = ModelCatalog()  # brings its own downloads panel
    assert catalog.wait(10)
    assert catalog.downloads in catalog.children
    catalog.select("ollama", "all-minilm:latest")
    download = catalog.download()
    assert download.wait(10).state == "done"
    assert catalog.model("ollama", "all-minilm:latest")["installed"]


def test_manager_command_outside_a_notebook_says_what_to_do(config, capsys):
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("unload_ext", "localmind_jupyter")
    shell.run_line_magic("load_ext", "localmind_jupyter")
    try:
        shell.run_line_magic("localmind", "manager")
    finally:
        shell.run_line_magic("unload_ext", "localmind_jupyter")
    assert "run %localmind manager in a notebook" in capsys.readouterr().out


def test_the_kernel_stays_free_while_a_download_runs(config, isolated_home):
    pytest.importorskip("jupyter_client")
    pytest.importorskip("ipykernel")
    from tests.test_magic_kernel import Kernel

    config.pull_delay = 0.1  # about 2.5 s for tinyllama
    kernel = Kernel(isolated_home)
    messages: list[dict] = []

    def run(code: str, timeout: float = 60) -> dict:
        """Execute; keep every IOPub message (the download thread's too); return the result."""
        msg_id = kernel.client.execute(code)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = kernel.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            messages.append(msg)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return kernel.client.get_shell_msg(timeout=5)["content"]
        raise TimeoutError(code)

    def outputs(code: str) -> str:
        start = len(messages)
        run(code)
        return "".join(
            m["content"].get("text", "") for m in messages[start:] if m["msg_type"] == "stream"
        )

    try:
        run("%load_ext localmind_jupyter")
        run("%localmind manager")
        views = [
            m
            for m in messages
            if m["msg_type"] == "display_data"
            and "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
        ]
        assert views, "%localmind manager displayed no widget"
        run(
            "from localmind_jupyter.widgets import ModelManager\n"
            "m = ModelManager(); m.wait()\n"
            "m.catalog.select('ollama', 'tinyllama:latest')\n"
            "d = m.catalog.download()"
        )
        started = time.monotonic()
        assert outputs("print(6 * 7)").strip() == "42"
        assert time.monotonic() - started < 1.5, "the kernel was busy with the download"
        assert outputs("print(d.snapshot().state)").strip() == "running"
        assert outputs("print(d.wait(30).state)").strip() == "done"
        updates = [
            m
            for m in messages
            if m["msg_type"] == "comm_msg"
            and m["content"]["data"].get("method") == "update"
            and "value" in m["content"]["data"].get("state", {})
            and isinstance(m["content"]["data"]["state"]["value"], float)
        ]
        assert len(updates) >= 3, "no progress reached the front end from the download thread"
        assert (
            outputs("print(m.catalog.model('ollama', 'tinyllama:latest')['installed'])").strip()
            == "True"
        )
    finally:
        kernel.stop()
