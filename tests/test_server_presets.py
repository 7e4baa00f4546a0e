"""vLLM and TensorRT-LLM: presets of the OpenAI-compatible backend with their own defaults."""

from __future__ import annotations

import pytest

from localmind_jupyter.backends import backend_types
from localmind_jupyter.backends.openai import TensorRTBackend, VLLMBackend
from localmind_jupyter.config import parse_config
from localmind_jupyter.core.model_loader import ModelLoader
from localmind_jupyter.errors import BackendUnavailable, ModelNotFound


@pytest.mark.parametrize("cls", [VLLMBackend, TensorRTBackend])
def test_defaults_point_at_the_servers_usual_port(cls):
    backend = cls({})
    assert backend.base_url == "http://localhost:8000/v1"
    assert backend.get_backend_info()["type"] == cls.type_name


@pytest.mark.parametrize("cls", [VLLMBackend, TensorRTBackend])
def test_preset_reports_server_version_lists_and_streams(cls, openai_server):
    openai_server.server_version = "0.11.2"
    backend = cls({"base_url": openai_server.base_url, "api_key": "sk-test-secret-123456"})
    assert backend.check_availability() == (True, None)
    info = backend.get_backend_info()
    assert info["server_version"] == "0.11.2"
    assert info["display_name"] in {"vLLM", "TensorRT-LLM"}
    assert backend.list_models() == ["gpt-test", "smol-chat"]
    pieces = list(backend.generate_stream("hello", "gpt-test"))
    assert "".join(pieces) == "You said: hello"
    with pytest.raises(ModelNotFound):
        backend.generate("hello", "not-served")


def test_server_without_version_endpoint(openai_server):
    backend = VLLMBackend({"base_url": openai_server.base_url, "api_key": "sk-test-secret-123456"})
    assert backend.is_available()
    assert backend.get_backend_info()["server_version"] is None


def test_presets_are_built_from_config_through_their_types(openai_server):
    assert {"vllm", "tensorrt"} <= set(backend_types())
    config = parse_config(
        "backends:\n"
        f"  cluster:\n    type: vllm\n    settings: {{base_url: '{openai_server.base_url}', "
        "api_key: sk-test-secret-123456}\n"
        "  trt:\n    type: tensorrt\n    settings: {base_url: 'http://127.0.0.1:1/v1'}\n"
    )
    loader = ModelLoader(config)
    statuses = loader.probe()
    assert statuses["cluster"].available is True
    assert statuses["trt"].available is False and "127.0.0.1:1" in statuses["trt"].reason
    backend, model = loader.resolve("cluster:smol-chat")
    assert backend.generate("hi", model).text == "You said: hi"
    with pytest.raises(BackendUnavailable):
        loader.get("trt").generate("hi", "x")
