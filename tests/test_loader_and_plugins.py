"""Building backends from config through entry points, probing them, and third-party plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from localmind_jupyter.backends import backend_types, refresh_backend_types
from localmind_jupyter.config import load_config
from localmind_jupyter.core.model_loader import ModelLoader
from localmind_jupyter.errors import BackendUnavailable, ModelNotFound
from tests.conftest import REPO, free_port


def write_config(home: Path, text: str) -> None:
    (home / "config.yaml").write_text(textwrap.dedent(text))


def test_builtins_are_registered_as_entry_points():
    assert {"ollama", "transformers", "openai"} <= set(backend_types())


def test_default_config_builds_ollama_gguf_and_transformers(isolated_home, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    loader = ModelLoader()
    assert set(loader.backends) == {"ollama", "gguf", "transformers"}  # llama_cpp installed
    openai = loader.statuses["openai"]
    assert not openai.enabled and "enabled: true" in openai.reason


def test_unavailable_backend_stays_listed_with_reason(isolated_home, openai_server):
    dead = f"http://127.0.0.1:{free_port()}"
    write_config(
        isolated_home,
        f"""
        backends:
          ollama:
            settings: {{base_url: "{dead}"}}
          remote:
            type: openai
            settings: {{base_url: "{openai_server.base_url}", api_key: sk-test-secret-123456}}
        """,
    )
    statuses = ModelLoader().probe()
    assert statuses["remote"].available is True and statuses["remote"].reason is None
    assert statuses["ollama"].available is False
    assert f"connection refused at {dead}" in statuses["ollama"].reason


def test_probe_is_concurrent_and_bounded(isolated_home):
    """Two servers that never answer cost one probe timeout, not two."""
    import socket

    silent = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # accepts connections, never answers
        silent.append(sock)
    try:
        ports = [s.getsockname()[1] for s in silent]
        write_config(
            isolated_home,
            f"""
            timeouts: {{probe: 1.0}}
            backends:
              a: {{type: ollama, settings: {{base_url: "http://127.0.0.1:{ports[0]}"}}}}
              b: {{type: ollama, settings: {{base_url: "http://127.0.0.1:{ports[1]}"}}}}
            """,
        )
        loader = ModelLoader()
        start = time.perf_counter()
        statuses = loader.probe()
        elapsed = time.perf_counter() - start
    finally:
        for sock in silent:
            sock.close()
    assert elapsed < 1.9
    assert all(not s.available for s in statuses.values())
    assert all("within 1 s" in s.reason for s in statuses.values())


def test_bad_backend_setting_names_file_and_line_and_spares_the_others(isolated_home):
    write_config(
        isolated_home,
        """
        backends:
          ollama:
            settings:
              base_ur: http://127.0.0.1:1
          transformers: {}
        """,
    )
    loader = ModelLoader()
    reason = loader.statuses["ollama"].reason
    assert str(isolated_home / "config.yaml") in reason
    assert "line 5" in reason and "did you mean 'base_url'" in reason
    assert "transformers" in loader.backends
    with pytest.raises(BackendUnavailable, match="base_url"):
        loader.get("ollama")


def test_resolve_model_specs(isolated_home, openai_server):
    write_config(
        isolated_home,
        f"""
        default_model: remote:gpt-test
        backends:
          remote:
            type: openai
            settings: {{base_url: "{openai_server.base_url}", api_key: sk-test-secret-123456}}
        """,
    )
    loader = ModelLoader()
    backend, model = loader.resolve()
    assert (backend.name, model) == ("remote", "gpt-test")
    assert loader.resolve("remote:smol-chat")[1] == "smol-chat"
    # A bare name is looked up among installed models.
    backend, model = loader.resolve("smol-chat")
    assert (backend.name, model) == ("remote", "smol-chat")
    with pytest.raises(ModelNotFound, match="Did you mean gpt-test") as info:
        loader.resolve("gpt-tset")
    assert "backend:model" in str(info.value) and "remote" in str(info.value)
    with pytest.raises(ModelNotFound, match="no model after"):
        loader.resolve("remote:")


def test_bare_name_in_two_backends_is_ambiguous(isolated_home, openai_server, ollama_server):
    write_config(
        isolated_home,
        f"""
        backends:
          a:
            type: openai
            settings: {{base_url: "{openai_server.base_url}", api_key: sk-test-secret-123456}}
          b:
            type: openai
            settings: {{base_url: "{openai_server.base_url}", api_key: sk-test-secret-123456}}
          ollama:
            settings: {{base_url: "{ollama_server.url}"}}
        """,
    )
    loader = ModelLoader()
    with pytest.raises(ModelNotFound, match="a:gpt-test, b:gpt-test"):
        loader.resolve("gpt-test")
    backend, model = loader.resolve("QWEN2.5:0.5b")  # Ollama names match case-insensitively
    assert (backend.name, model) == ("ollama", "qwen2.5:0.5b")


PLUGIN = """
from localmind_jupyter.backends.base import BaseBackend, ResponseStream, StreamTimer


class EchoBackend(BaseBackend):
    type_name = "echo"
    display_name = "Echo"

    def list_models(self):
        return ["parrot"]

    def generate_stream(self, prompt, model, **kwargs):
        opts = self.parse_options(kwargs)
        stream = ResponseStream(model, self.name)
        timer = StreamTimer()

        def pieces():
            for word in prompt.split():
                timer.mark_piece()
                stream.pieces.append(word + " ")
                yield word + " "
            timer.finish(stream, finish_reason="stop", prompt_tokens=1,
                         completion_tokens=len(stream.pieces))

        return stream.bind(pieces())
"""


def test_third_party_plugin_registers_through_entry_point(tmp_path, isolated_home):
    """A package we do not ship adds a backend type with only its own metadata."""
    site = tmp_path / "site"
    (site / "echo_plugin").mkdir(parents=True)
    (site / "echo_plugin" / "__init__.py").write_text(PLUGIN)
    dist = site / "echo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[localmind.backends]\necho = echo_plugin:EchoBackend\n")
    write_config(isolated_home, "backends:\n  parrots:\n    type: echo\n")
    script = """
import json
from localmind_jupyter.core.model_loader import ModelLoader
loader = ModelLoader()
backend, model = loader.resolve("parrots:parrot")
r = backend.generate("hello plugin world", model)
from localmind_jupyter.backends import backend_types
print(json.dumps({"types": backend_types(), "text": r.text, "models": backend.list_models()}))
"""
    env = {"PYTHONPATH": f"{site}:{REPO}", "LOCALMIND_HOME": str(isolated_home), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert "echo" in result["types"]
    assert result["text"] == "hello plugin world "
    assert result["models"] == ["parrot"]


def test_plugin_that_is_not_a_backend_is_reported(tmp_path, isolated_home, monkeypatch):
    site = tmp_path / "site"
    (site / "bad_plugin").mkdir(parents=True)
    (site / "bad_plugin" / "__init__.py").write_text("class NotABackend:\n    pass\n")
    dist = site / "bad_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bad-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[localmind.backends]\nbad = bad_plugin:NotABackend\n")
    monkeypatch.syspath_prepend(str(site))
    refresh_backend_types()
    try:
        write_config(isolated_home, "backends:\n  b:\n    type: bad\n  transformers: {}\n")
        loader = ModelLoader(load_config(known_types=backend_types()))
        assert "not a BaseBackend subclass" in loader.statuses["b"].reason
        assert "transformers" in loader.backends
    finally:
        monkeypatch.undo()
        refresh_backend_types()


def test_builtin_fast_path_matches_the_entry_points():
    """The start-up shortcut for our own backends must name exactly what pyproject registers."""
    from localmind_jupyter.backends import _BUILTIN_BACKENDS, _entry_points

    registered = {
        name: ep.value for name, ep in _entry_points().items() if name in _BUILTIN_BACKENDS
    }
    assert registered == _BUILTIN_BACKENDS


def test_unknown_type_in_file_disables_only_that_backend(isolated_home):
    write_config(isolated_home, "backends:\n  x:\n    type: olama\n  transformers: {}\n")
    loader = ModelLoader()
    reason = loader.statuses["x"].reason
    assert "line 3" in reason and "'olama'" in reason and "ollama" in reason
    assert "transformers" in loader.backends


def test_import_and_default_backends_import_no_heavy_library(isolated_home):
    """``%load_ext`` must stay fast: torch, transformers and openai load on first use only."""
    script = (
        "import json, sys, localmind_jupyter\n"
        "from localmind_jupyter.core.model_loader import ModelLoader\n"
        "loader = ModelLoader()\n"
        "assert sorted(loader.backends) == ['gguf', 'ollama', 'transformers'], loader.statuses\n"
        "assert loader.config.effective_default_model().startswith('gguf:')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {"PYTHONPATH": str(REPO), "LOCALMIND_HOME": str(isolated_home), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"torch", "transformers", "openai", "anthropic", "huggingface_hub"}
    assert "llama_cpp" not in loaded  # found with find_spec, imported on the first answer
    assert not loaded & {"PIL", "numpy", "matplotlib"}  # images: on the first one only
