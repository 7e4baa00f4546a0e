"""The catalog's state without widgets: order, filters, installed marks, why no download."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from localmind_jupyter.widgets.catalog_state import CatalogState, Filters
from tests.conftest import REPO


def row(name: str, installed: bool = False, tags: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"about {name}",
        "size": 10**9,
        "parameters": "1B",
        "tags": list(tags),
        "installed": installed,
        "in_catalog": True,
    }


def answer(downloads: bool = True, available: bool = True) -> dict[str, Any]:
    caps = {"downloads": downloads, "seed": True}
    return {
        "status": "ok",
        "backends": {
            "local": {
                "info": {"display_name": "Local", "available": available, "reason": "down"}
                | {"capabilities": caps},
                "models": [row("b:1b", tags=("chat",)), row("a:1b", True, ("code",))],
            },
            "remote": {
                "info": {"display_name": "Remote", "available": True}
                | {"capabilities": {"downloads": False}},
                "models": [row("gpt-x", tags=("chat",))],
            },
            "broken": {"info": {"type": "plugin", "available": False}, "models": [row("z")]},
        },
    }


def block(state: CatalogState, active: bool = False) -> str | None:
    return state.download_block(downloading=lambda *_: active, problem=lambda b: f"{b} broke")


def test_rows_in_config_order_installed_first_and_filtered():
    state = CatalogState()
    state.set_data(answer())
    assert state.ordered() == [
        ("local", "a:1b"),
        ("local", "b:1b"),
        ("remote", "gpt-x"),
        ("broken", "z"),
    ]
    assert state.visible(Filters(tag="chat")) == [("local", "b:1b"), ("remote", "gpt-x")]
    assert state.visible(Filters(installed_only=True)) == [("local", "a:1b")]
    assert state.visible(Filters(backend="remote", search="GPT")) == [("remote", "gpt-x")]
    assert state.visible(Filters(search="about nothing")) == []
    assert state.tags(None) == ["chat", "code"] and state.tags("remote") == ["chat"]
    assert state.counts("local") == (1, 2) and state.total("local") == 2


def test_a_reload_keeps_the_selection_only_while_the_model_is_listed():
    state = CatalogState()
    state.set_data(answer())
    state.selected = ("remote", "gpt-x")
    state.set_data(answer())
    assert state.selected == ("remote", "gpt-x")
    gone = answer()
    gone["backends"]["remote"]["models"] = []
    state.set_data(gone)
    assert state.selected is None and ("remote", "gpt-x") not in state.models


def test_why_download_is_disabled():
    state = CatalogState()
    assert state.download_block(downloading=lambda *_: False, problem=lambda _b: None)
    state.set_data(answer())
    state.selected = ("local", "b:1b")
    assert block(state) is None
    assert block(state, active=True) == "Downloading: see the progress below."
    state.selected = ("local", "a:1b")
    assert block(state) == "a:1b is already installed."
    state.selected = ("remote", "gpt-x")
    assert "nothing to download" in (block(state) or "")
    state.selected = ("broken", "z")  # no capabilities: the backend could not be built
    assert block(state) == "broken broke"
    state.set_data(answer(available=False))
    state.selected = ("local", "b:1b")
    assert block(state) == "local is unavailable: down"


def test_a_finished_download_marks_the_rows_the_backend_calls_the_same_model():
    state = CatalogState()
    state.set_data(answer())
    state.mark_installed("local", "B:1B", str.lower)  # the backend's model_key
    assert state.models[("local", "b:1b")]["installed"]
    state.mark_installed("local", "new:2b", str.lower)  # not in the catalog: shown at once
    assert state.models[("local", "new:2b")]["description"] == "installed locally"
    names = [m["name"] for m in state.result["backends"]["local"]["models"]]  # type: ignore[index]
    assert set(names) == {"a:1b", "b:1b", "new:2b"}


def test_the_state_loads_without_ipywidgets():
    code = (
        "import sys, localmind_jupyter.widgets.catalog_state\n"
        "assert 'ipywidgets' not in sys.modules, 'the state imported ipywidgets'\n"
        "from localmind_jupyter.widgets import ModelCatalog\n"
        "assert 'ipywidgets' in sys.modules and ModelCatalog.__name__ == 'ModelCatalog'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
