# ruff: noqa: F811 - pytest fixtures imported from test_widgets are parameters here
"""Download panels see every download of the kernel, restart after cancel, and let go when
closed; Python side, against the Ollama test server (see test_widgets.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from localmind_jupyter.core.downloads import MAX_LISTENERS
from localmind_jupyter.session import get_session
from tests.test_widgets import (  # noqa: F401 - fixtures
    config,
    dead_port,
    fresh_session,
    manager,
    pulls,
    until,
)

TINY = "tinyllama:latest"
MINILM = "all-minilm:latest"


def test_an_open_panel_shows_downloads_started_elsewhere(config):
    from localmind_jupyter.widgets import DownloadProgress

    config.pull_delay = 0.02
    panel = manager()  # opened before anything downloads
    catalog = panel.catalog
    # Started by the kernel's manager, as `%localmind pull` and the REST-less front ends do.
    pulled = get_session().downloads.start("ollama", TINY)
    row = panel.downloads.rows[pulled.id]
    assert "downloading" in catalog._rows[("ollama", TINY)].html.value
    catalog.select("ollama", TINY)
    assert catalog.download_button.disabled and "Downloading" in catalog.download_reason
    # Started from another panel.
    other = DownloadProgress()
    elsewhere = other.start("ollama", MINILM)
    assert list(panel.downloads.rows) == [pulled.id, elsewhere.id]
    assert list(other.rows) == [pulled.id, elsewhere.id]
    assert pulled.wait(15).state == "done" and elsewhere.wait(15).state == "done"
    until(lambda: row.state == "done")
    until(lambda: catalog.model("ollama", TINY)["installed"])
    assert catalog.model("ollama", MINILM)["installed"]
    assert [body["model"] for body in pulls(config)].count(TINY) == 1


def test_pull_magic_shows_in_a_panel_opened_before(config, isolated_home: Path, capsys):
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("unload_ext", "localmind_jupyter")
    shell.run_line_magic("load_ext", "localmind_jupyter")
    try:
        panel = manager()
        shell.run_line_magic("localmind", "reload")  # the panel keeps listening after a reload
        shell.run_line_magic("localmind", f"pull {MINILM}")
        assert "is ready" in capsys.readouterr().out
        (download_id,) = panel.downloads.rows
        until(lambda: panel.downloads.rows[download_id].state == "done")
        until(lambda: panel.catalog.model("ollama", MINILM)["installed"])
    finally:
        shell.run_line_magic("unload_ext", "localmind_jupyter")


def test_download_again_right_after_cancel_starts_afresh(config):
    config.pull_delay = 0.05
    panel = manager()
    catalog, downloads = panel.catalog, panel.downloads
    catalog.select("ollama", TINY)
    first = catalog.download()
    until(lambda: first.snapshot().completed > 0)
    downloads.rows[first.id].button.click()  # Cancel
    # At once the model may be downloaded again, though the transfer is still stopping.
    assert not catalog.download_button.disabled, catalog.download_reason
    config.pull_delay = 0.01
    second = catalog.download()
    assert second is not None and second.id != first.id
    assert first.wait(10).state == "cancelled"
    assert second.wait(15).state == "done"
    until(lambda: downloads.rows[second.id].state == "done")
    assert downloads.rows[first.id].state == "cancelled"
    assert "installed — ready to use" in downloads.rows[second.id].details.value
    until(lambda: catalog.model("ollama", TINY)["installed"])
    assert TINY in config.installed


def test_closed_panels_stop_listening_and_nothing_grows(config):
    from localmind_jupyter.widgets import DownloadProgress, ModelCatalog, ModelManager

    downloads = get_session().downloads
    for _ in range(30):
        ModelManager(autoload=False).close()
        ModelCatalog(autoload=False).close()
        DownloadProgress().close()
    assert downloads.listeners == 0
    # A shared panel forgets a closed catalog's callbacks.
    shared = DownloadProgress()
    for _ in range(MAX_LISTENERS + 10):
        ModelCatalog(downloads=shared, autoload=False).close()
    assert len(shared._listeners) == 0 and len(shared._changed) == 0
    # Finished downloads keep no watcher, whatever the number of panels that showed them.
    panels = [DownloadProgress() for _ in range(5)]
    download = downloads.start("ollama", MINILM)
    assert download.wait(15).state == "done"
    assert download.watchers == 0
    for panel in [shared, *panels]:
        until(lambda panel=panel: panel.rows[download.id].state == "done")
        panel.close()
    assert downloads.listeners == 0


def test_panels_never_closed_are_capped(config, caplog):
    from localmind_jupyter.widgets import DownloadProgress

    downloads = get_session().downloads
    with caplog.at_level(logging.WARNING, logger="localmind_jupyter.core.listeners"):
        panels = [DownloadProgress() for _ in range(MAX_LISTENERS + 6)]
    assert downloads.listeners == MAX_LISTENERS
    assert "close panels you no longer use" in caplog.text
    download = downloads.start("ollama", MINILM)
    assert download.id in panels[-1].rows and download.id not in panels[0].rows
    assert download.wait(15).state == "done"


def test_a_panel_keeps_the_last_finished_rows(config):
    from localmind_jupyter.widgets import DownloadProgress

    panel = DownloadProgress(max_finished_rows=2)
    done: list[Any] = []
    for model in (MINILM, TINY, MINILM, TINY):
        download = panel.start("ollama", model)
        assert download.wait(15).state == "done"
        until(lambda d=download: panel.rows[d.id].state == "done")
        done.append(download.id)
    assert list(panel.rows) == done[-2:]
