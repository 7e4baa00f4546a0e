"""The fake Ollama must be indistinguishable from a real one on the wire.

These tests talk to it with a bare httpx client only, and check what
``../shared/reference/ollama-api.md`` says a real server does: shapes,
status codes, error bodies, streaming framing and pull progress; then that
each fault switch produces the failure a client has to survive.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.ollama_server import DEFAULT_LIBRARY, FakeModel, OllamaTestServer

ROOT = Path(__file__).resolve().parents[1]
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
STATS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


@pytest.fixture
def server() -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as srv:
        yield srv


@pytest.fixture
def client(server: OllamaTestServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5) as c:
        yield c


def chat_body(text: str = "hello world", **extra: Any) -> dict[str, Any]:
    return {"model": "smollm:135m", "messages": [{"role": "user", "content": text}], **extra}


def stream_lines(client: httpx.Client, path: str, body: Any, into: list[Any]) -> httpx.Response:
    """Collect NDJSON lines into ``into`` so they survive an exception mid-stream."""
    with client.stream("POST", path, json=body) as response:
        for line in response.iter_lines():
            if line:
                into.append(json.loads(line))
    return response


# ----------------------------------------------------------------------------- basics


def test_liveness_version_and_unknown_routes(client: httpx.Client) -> None:
    head = client.head("/")
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/plain; charset=utf-8"
    assert head.headers["content-length"] == "17"
    assert head.content == b""
    assert client.get("/").text == "Ollama is running"

    version = client.get("/api/version")
    assert version.headers["content-type"] == "application/json; charset=utf-8"
    assert version.content == b'{"version":"0.12.6"}'

    missing = client.get("/api/nothing")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert missing.headers["content-type"].startswith("text/plain")
    assert client.get("/api/show").status_code == 405
    assert client.get("/api/chat").status_code == 405


def test_tags_shape(client: httpx.Client) -> None:
    models = client.get("/api/tags").json()["models"]
    assert [m["name"] for m in models] == ["smollm:135m", "qwen2.5:0.5b"]
    for entry in models:
        assert set(entry) == {"name", "model", "modified_at", "size", "digest", "details"}
        assert entry["model"] == entry["name"]
        assert re.fullmatch(r"[0-9a-f]{64}", entry["digest"])
        assert isinstance(entry["size"], int)
        assert re.fullmatch(r"\d{4}-.*T.*(Z|[+-]\d\d:\d\d)", entry["modified_at"])
        assert set(entry["details"]) == {
            "parent_model",
            "format",
            "family",
            "families",
            "parameter_size",
            "quantization_level",
        }
        assert entry["details"]["format"] == "gguf"


def test_custom_models_and_tag_defaults() -> None:
    models = [FakeModel("Tiny", size=1234, reply=lambda messages: ["a", "b"])]
    with OllamaTestServer(models=models) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/api/tags").json()["models"][0]["name"] == "Tiny:latest"
        # Case-insensitive match; the response echoes the name as the client sent it.
        reply = c.post("/api/chat", json={**chat_body(), "model": "tiny", "stream": False})
        assert reply.json()["model"] == "tiny"
        assert reply.json()["message"]["content"] == "ab"


# ----------------------------------------------------------------------------- chat / generate


def test_streamed_chat_pieces_and_final_stats(client: httpx.Client) -> None:
    lines: list[dict[str, Any]] = []
    response = stream_lines(client, "/api/chat", chat_body(), lines)
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["transfer-encoding"] == "chunked"
    *pieces, final = lines
    assert [p["message"]["content"] for p in pieces] == ["You ", "said: ", "hello ", "world"]
    for piece in pieces:
        assert set(piece) == {"model", "created_at", "message", "done"}
        assert piece["message"]["role"] == "assistant"
        assert piece["done"] is False
        assert CREATED_AT.fullmatch(piece["created_at"])
    assert final["done"] is True
    assert final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert "context" not in final
    assert all(isinstance(final[k], int) and final[k] > 0 for k in STATS)
    assert final["eval_count"] == 4
    assert final["total_duration"] >= final["load_duration"]


def test_non_stream_chat(client: httpx.Client, server: OllamaTestServer) -> None:
    options = {"temperature": 0.2, "top_p": 0.9, "seed": 42}
    response = client.post("/api/chat", json=chat_body(stream=False, options=options))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["message"] == {"role": "assistant", "content": "You said: hello world"}
    assert body["done"] is True and body["done_reason"] == "stop"
    assert all(k in body for k in STATS)
    assert server.requests[-1] == ("POST", "/api/chat", chat_body(stream=False, options=options))


def test_generate_stream_has_context(client: httpx.Client) -> None:
    lines: list[dict[str, Any]] = []
    stream_lines(client, "/api/generate", {"model": "smollm:135m", "prompt": "hi there"}, lines)
    *pieces, final = lines
    assert "".join(p["response"] for p in pieces) == "You said: hi there"
    assert final["response"] == "" and final["done_reason"] == "stop"
    assert isinstance(final["context"], list) and final["context"]


def test_num_predict_and_stop(client: httpx.Client) -> None:
    limited = client.post("/api/chat", json=chat_body(stream=False, options={"num_predict": 2}))
    assert limited.json()["message"]["content"] == "You said: "
    assert limited.json()["done_reason"] == "length"
    assert limited.json()["eval_count"] == 2

    stopped = client.post("/api/chat", json=chat_body(stream=False, options={"stop": ["llo"]}))
    assert stopped.json()["message"]["content"] == "You said: he"
    assert stopped.json()["done_reason"] == "stop"

    generated = client.post(
        "/api/generate",
        json={"model": "smollm:135m", "prompt": "a b", "stream": False, "options": {"stop": ["a"]}},
    )
    assert generated.json()["response"] == "You s"


def test_load_unload_and_ps(client: httpx.Client) -> None:
    load = client.post("/api/chat", json={"model": "smollm:135m", "messages": []}).json()
    assert load["done_reason"] == "load" and load["message"]["content"] == ""
    loaded = client.get("/api/ps").json()["models"]
    assert [m["name"] for m in loaded] == ["smollm:135m"]
    assert {"expires_at", "size_vram", "context_length", "details"} <= set(loaded[0])

    unload = client.post("/api/generate", json={"model": "smollm:135m", "keep_alive": 0}).json()
    assert unload["done_reason"] == "unload" and unload["response"] == ""
    assert client.get("/api/ps").json() == {"models": []}


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/chat", b"", 400, "missing request body"),
        ("/api/chat", b"{}", 400, "model is required"),
        ("/api/chat", b'{"model": "nope"}', 404, "model 'nope' not found"),
        ("/api/chat", b'{"model": "bad name!"}', 400, "invalid model name"),
        ("/api/chat", b'{"model": "smollm"}', 404, "model 'smollm' not found"),
        ("/api/generate", b"null", 404, "model '' not found"),
        ("/api/generate", b'{"model": "nope:7b"}', 404, "model 'nope:7b' not found"),
        (
            "/api/chat",
            b'{"model": "smollm:135m", "options": {"temperature": "hot"}}',
            500,
            'option "temperature" must be of type float32',
        ),
        (
            "/api/chat",
            b'{"model": "smollm:135m", "think": true}',
            400,
            '"smollm:135m" does not support thinking',
        ),
        ("/api/pull", b'{"model": ""}', 400, "invalid model name"),
        ("/api/show", b'{"model": "nope"}', 404, "model 'nope:latest' not found"),
        ("/api/delete", b'{"model": "nope"}', 404, "model 'nope' not found"),
    ],
)
def test_error_bodies(
    client: httpx.Client, path: str, body: bytes, status: int, error: str
) -> None:
    method = "DELETE" if path == "/api/delete" else "POST"
    response = client.request(method, path, content=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {"error": error}


def test_malformed_json_is_400_with_go_error(client: httpx.Client) -> None:
    response = client.post("/api/chat", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid character 'n'")


# ----------------------------------------------------------------------------- faults


def test_in_band_error_after_chunks(client: httpx.Client, server: OllamaTestServer) -> None:
    server.error_after = 2
    lines: list[dict[str, Any]] = []
    response = stream_lines(client, "/api/chat", chat_body(), lines)
    assert response.status_code == 200
    assert [line["message"]["content"] for line in lines[:2]] == ["You ", "said: "]
    assert lines[2:] == [{"error": server.error_message}]


def test_drop_mid_stream_raises_remote_protocol_error(
    client: httpx.Client, server: OllamaTestServer
) -> None:
    server.drop_after = 2
    lines: list[dict[str, Any]] = []
    with pytest.raises(httpx.RemoteProtocolError):
        stream_lines(client, "/api/chat", chat_body(), lines)
    assert len(lines) == 2
    server.reset_faults()
    assert client.post("/api/chat", json=chat_body(stream=False)).status_code == 200


def test_fail_status_before_first_byte(client: httpx.Client, server: OllamaTestServer) -> None:
    server.fail_status = 503
    server.error_message = "model is overloaded"
    with client.stream("POST", "/api/chat", json=chat_body()) as response:
        response.read()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "model is overloaded"}
    non_stream = client.post(
        "/api/generate", json={"model": "smollm:135m", "prompt": "x", "stream": False}
    )
    assert non_stream.status_code == 503


def test_client_disconnect_is_detected(client: httpx.Client, server: OllamaTestServer) -> None:
    server.reply_pieces = [f"w{i} " for i in range(200)]
    server.token_delay = 0.05
    with client.stream("POST", "/api/chat", json=chat_body()) as response:
        lines = response.iter_lines()
        next(lines), next(lines)
    assert server.disconnected.wait(3)
    assert server.disconnects == 1
    assert 2 <= server.chunks_sent < 10


def test_stall_provokes_read_timeout_and_stop_is_prompt(server: OllamaTestServer) -> None:
    server.stall_after = 1
    timeout = httpx.Timeout(5, read=0.3)
    with httpx.Client(base_url=server.url, timeout=timeout) as c:
        lines: list[dict[str, Any]] = []
        with pytest.raises(httpx.ReadTimeout):
            stream_lines(c, "/api/chat", chat_body(), lines)
        assert len(lines) == 1
        began = time.monotonic()
        server.stop()
        server.stop()  # idempotent
        assert time.monotonic() - began < 2
        with pytest.raises(httpx.ConnectError):
            c.get("/")


# ----------------------------------------------------------------------------- pull


def pull(client: httpx.Client, model: str, into: list[dict[str, Any]] | None = None) -> list[Any]:
    lines: list[dict[str, Any]] = [] if into is None else into
    response = stream_lines(client, "/api/pull", {"model": model}, lines)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    return lines


def test_pull_status_sequence(client: httpx.Client) -> None:
    lines = pull(client, "tinyllama")
    assert lines[0] == {"status": "pulling manifest"}
    assert [line["status"] for line in lines[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    progress = lines[1:-3]
    layers = DEFAULT_LIBRARY["tinyllama:latest"]
    assert list(dict.fromkeys(line["digest"] for line in progress)) == [d for d, _ in layers]
    for digest, size in layers:
        group = [line for line in progress if line["digest"] == digest]
        assert {line["status"] for line in group} == {f"pulling {digest[7:19]}"}
        assert {line["total"] for line in group} == {size}
        assert "completed" not in group[0]  # omitempty while 0
        completed = [line["completed"] for line in group[1:]]
        assert completed == sorted(completed) and completed[-1] == size
    assert len(progress) > 10
    assert "tinyllama:latest" in [m["name"] for m in client.get("/api/tags").json()["models"]]

    again = pull(client, "TinyLlama:latest")[1:-3]
    assert [(line["digest"], line["completed"]) for line in again] == layers


def test_pull_shared_layer_is_not_downloaded_twice(
    client: httpx.Client, server: OllamaTestServer
) -> None:
    pull(client, "tinyllama")
    before = server.pull_bytes_sent
    lines = pull(client, "all-minilm")
    shared = DEFAULT_LIBRARY["tinyllama:latest"][2]
    assert [line for line in lines if line.get("digest") == shared[0]] == [
        {
            "status": f"pulling {shared[0][7:19]}",
            "digest": shared[0],
            "total": shared[1],
            "completed": shared[1],
        }
    ]
    fresh = sum(
        size for digest, size in DEFAULT_LIBRARY["all-minilm:latest"] if digest != shared[0]
    )
    assert server.pull_bytes_sent - before == fresh


def test_pull_errors(client: httpx.Client) -> None:
    assert pull(client, "does-not-exist") == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    response = client.post("/api/pull", json={"model": "does-not-exist", "stream": False})
    assert response.status_code == 500
    assert response.json() == {"error": "pull model manifest: file does not exist"}
    assert client.post("/api/pull", json={"model": "a/b/c/d"}).json() == {
        "error": "invalid model name"
    }
    done = client.post("/api/pull", json={"model": "qwen2.5:0.5b", "stream": False})
    assert done.status_code == 200
    assert done.headers["content-type"] == "application/json"
    assert done.json() == {"status": "success"}


def test_dropped_pull_resumes(client: httpx.Client, server: OllamaTestServer) -> None:
    digest = DEFAULT_LIBRARY["tinyllama:latest"][0][0]
    total = sum(size for _, size in DEFAULT_LIBRARY["tinyllama:latest"])
    server.pull_drop_after_bytes = 300_000
    first: list[dict[str, Any]] = []
    with pytest.raises(httpx.RemoteProtocolError):
        pull(client, "tinyllama", first)
    assert first[-1]["completed"] == 300_000
    assert server.pull_bytes_sent == 300_000
    assert "tinyllama:latest" not in [m["name"] for m in client.get("/api/tags").json()["models"]]

    server.reset_faults()
    second = pull(client, "tinyllama")
    assert next(line for line in second if line.get("digest") == digest)["completed"] == 300_000
    assert second[-1] == {"status": "success"}
    assert server.pull_bytes_sent == total


# ----------------------------------------------------------------------------- show / delete


def test_show_and_delete(client: httpx.Client) -> None:
    shown = client.post("/api/show", json={"model": "smollm:135m"}).json()
    assert shown["details"]["family"] == "llama"
    assert shown["model_info"]["general.architecture"] == "llama"
    assert client.post("/api/show", json={}).json() == {"error": "model is required"}

    deleted = client.request("DELETE", "/api/delete", json={"model": "smollm:135m"})
    assert (deleted.status_code, deleted.content) == (200, b"")
    assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ["qwen2.5:0.5b"]
    bad = client.request("DELETE", "/api/delete", json={"model": "bad name!"})
    assert (bad.status_code, bad.json()) == (400, {"error": 'name "bad name!" is invalid'})


# ----------------------------------------------------------------------------- CLI


def test_cli_prints_url_and_serves() -> None:
    command = [sys.executable, "-m", "tests.servers.ollama_server", "--port", "0"]
    with subprocess.Popen(
        [*command, "--reply-chunks", "50", "--lifetime", "60"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
            assert httpx.head(url + "/").status_code == 200
            reply = httpx.post(url + "/api/chat", json=chat_body(stream=False)).json()
            assert reply["eval_count"] == 50
        finally:
            proc.kill()

    short = subprocess.run(
        [*command, "--lifetime", "0.2"], cwd=ROOT, capture_output=True, text=True, timeout=10
    )
    assert short.returncode == 0
    assert short.stdout.startswith("http://127.0.0.1:")
