# ruff: noqa: F811 - pytest fixtures imported from test_server_extension are parameters here
"""REST downloads over time: cancel, then the same model again at once (a real Jupyter server,
Transformers downloads from the Hub loopback server: their cancel takes a moment to unwind)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from traitlets.config import Config

from tests.servers.hub_server import HubTestServer, patch_hub_endpoint
from tests.test_server_extension import api, wait_until  # noqa: F401 - api is a fixture

pytest_plugins = ["pytest_jupyter.jupyter_server"]

BIG = "tests/big"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubTestServer]:
    import numpy as np
    from safetensors.numpy import save_file

    repo = tmp_path / "big-repo"
    repo.mkdir()
    (repo / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    weights = np.random.default_rng(0).random(1024 * 1024, dtype=np.float32)
    save_file({"w": weights}, str(repo / "model.safetensors"))
    with (
        HubTestServer({BIG: repo}) as server,
        patch_hub_endpoint(server.url, cache_dir=tmp_path / "hub"),
    ):
        yield server


@pytest.fixture
def localmind_config(isolated_home: Path, hub: HubTestServer, tmp_path: Path) -> Path:
    path = isolated_home / "config.yaml"
    path.write_text(
        f"backends:\n  transformers:\n    settings: {{hub_cache_dir: '{tmp_path / 'hub'}'}}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def jp_server_config(localmind_config: Path) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"localmind_jupyter": True}}})


async def test_download_right_after_cancel_is_a_new_download_that_finishes(api, hub):
    hub.byte_delay = 0.3  # one 64 KiB block every 0.3 s: a cancel is noticed at the next one
    body = {"model": BIG, "backend": "transformers"}
    _, first, _ = await api("POST", "models", "download", body=body)

    async def transferring():
        _, polled, _ = await api("GET", "downloads", first["id"])
        return polled["download"]["completed"] > 0

    await wait_until(transferring, timeout=30)
    status, _, _ = await api("DELETE", "downloads", first["id"])
    assert status == 202
    status, second, _ = await api("POST", "models", "download", body=body)
    assert status == 202 and second["joined"] is False and second["id"] != first["id"]
    hub.byte_delay = 0

    async def finished(download_id: str):
        _, polled, _ = await api("GET", "downloads", download_id)
        download = polled["download"]
        return download if download["state"] in {"done", "failed", "cancelled"} else None

    assert (await wait_until(lambda: finished(first["id"]), timeout=30))["state"] == "cancelled"
    final = await wait_until(lambda: finished(second["id"]), timeout=60)
    assert final["state"] == "done", final["error"]
    _, listing, _ = await api("GET", "downloads")
    assert [d["id"] for d in listing["downloads"]] == [first["id"], second["id"]]
    _, available, _ = await api("GET", "models", "available")
    assert BIG in available["backends"]["transformers"]["installed"]
