"""The Jupyter server extension: LocalMind's REST API in a real Jupyter server.

``jp_fetch`` sends the server's token; the auth tests build requests without it.
Ollama and OpenAI-compatible backends are the loopback test servers, plus a
backend nothing listens on, so "unavailable" is exercised everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from jupyter_server.auth import Authorizer
from traitlets.config import Config

import localmind_jupyter
from localmind_jupyter.server.state import ServerState
from tests.conftest import REPO, free_port
from tests.servers.ollama_server import DEFAULT_LIBRARY

pytest_plugins = ["pytest_jupyter.jupyter_server"]

TINY = "tinyllama:latest"
TINY_TOTAL = sum(size for _digest, size in DEFAULT_LIBRARY[TINY])
KEY = "sk-test-secret-123456"  # the openai_server fixture's key
LONG_PROMPT = " ".join(f"word{i}" for i in range(60))  # 62 reply pieces


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def localmind_config(isolated_home: Path, ollama_server, openai_server, monkeypatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = isolated_home / "config.yaml"
    path.write_text(
        "backends:\n"
        f"  ollama:\n    settings: {{base_url: '{ollama_server.url}'}}\n"
        "  openai:\n"
        f"    settings: {{base_url: '{openai_server.base_url}', api_key: '${{OPENAI_API_KEY}}'}}\n"
        "  offline:\n    type: ollama\n"
        f"    settings: {{base_url: 'http://127.0.0.1:{free_port()}'}}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def extra_server_config() -> dict[str, Any]:
    return {}


@pytest.fixture
def extension_config() -> dict[str, Any]:
    """Traitlets of ``LocalMindExtension`` (parametrize to change them)."""
    return {}


@pytest.fixture
def jp_server_config(
    localmind_config: Path, extra_server_config: dict[str, Any], extension_config: dict[str, Any]
) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"localmind_jupyter": True},
                **extra_server_config,
            },
            "LocalMindExtension": extension_config,
        }
    )


@pytest.fixture
def state(jp_serverapp) -> ServerState:
    return jp_serverapp.web_app.settings["localmind_state"]


@pytest.fixture
def api(jp_fetch) -> Callable[..., Awaitable[tuple[int, Any, Any]]]:
    """``await api("GET", "backends")`` -> (status, parsed JSON, response); never raises on 4xx."""

    async def call(method: str, *path: str, body: Any = None, **kwargs: Any):
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body)
        if body is None and method in {"POST", "PUT", "PATCH"}:
            body = b""
        response = await jp_fetch(
            "localmind", "api", *path, method=method, body=body, raise_error=False, **kwargs
        )
        text = response.body.decode()
        assert "Traceback" not in text and KEY not in text
        return response.code, json.loads(text) if text else None, response

    return call


def url(http_server_client, jp_base_url: str, path: str) -> str:
    return http_server_client.get_url(f"{jp_base_url}{path}")


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


# --- packaging and start-up -------------------------------------------------------------------


def test_extension_is_declared_and_auto_enabled():
    (point,) = localmind_jupyter._jupyter_server_extension_points()
    assert point["module"] == "localmind_jupyter.server.app"
    assert point["app"].name == "localmind_jupyter"
    data_file = REPO / "jupyter-config" / "jupyter_server_config.d" / "localmind_jupyter.json"
    assert json.loads(data_file.read_text()) == {
        "ServerApp": {"jpserver_extensions": {"localmind_jupyter": True}}
    }
    # Installed to etc/jupyter so `pip install` enables it (tomllib is 3.11+: read the text).
    pyproject = (REPO / "pyproject.toml").read_text()
    section = pyproject.split("[tool.hatch.build.targets.wheel.shared-data]", 1)[1]
    mapping = '"jupyter-config/jupyter_server_config.d" = "etc/jupyter/jupyter_server_config.d"'
    assert section.split("\n[", 1)[0].strip() == mapping


def test_loading_the_extension_builds_nothing():
    code = (
        "import sys, localmind_jupyter\n"
        "(point,) = localmind_jupyter._jupyter_server_extension_points()\n"
        "from localmind_jupyter.server.state import ServerState\n"
        "ServerState().close()\n"
        "heavy = [m for m in ('torch', 'transformers', 'localmind_jupyter.core.model_loader',"
        " 'localmind_jupyter.backends.ollama') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_backends_are_built_on_the_first_request(api, state):
    assert state._loader is None
    status, _body, _ = await api("GET", "downloads")
    assert status == 200 and state._loader is None  # listing no downloads builds nothing
    await api("GET", "backends")
    assert state._loader is not None


# --- read endpoints ---------------------------------------------------------------------------


async def test_available_has_the_seed_shape(api):
    status, body, response = await api("GET", "models", "available")
    assert status == 200 and response.headers["Content-Type"].startswith("application/json")
    assert body["status"] == "ok"
    assert set(body["backends"]) == {"ollama", "openai", "offline"}
    for entry in body["backends"].values():
        assert set(entry) == {"info", "models", "installed"}
    ollama = body["backends"]["ollama"]
    assert ollama["installed"] == ["smollm:135m", "qwen2.5:0.5b"]
    assert ollama["info"]["available"] is True
    by_name = {m["name"]: m for m in ollama["models"]}
    assert by_name["qwen2.5:0.5b"]["installed"] and not by_name["llama3.2:1b"]["installed"]
    assert body["backends"]["openai"]["installed"] == ["gpt-test", "smol-chat"]
    offline = body["backends"]["offline"]
    assert offline["info"]["available"] is False and "refused" in offline["info"]["reason"]
    assert offline["installed"] == [] and offline["models"]  # the catalog is still offered


async def test_backends_report_status_and_info(api):
    status, body, _ = await api("GET", "backends")
    assert status == 200 and body["status"] == "ok"
    ollama, openai, offline = (body["backends"][n] for n in ("ollama", "openai", "offline"))
    assert ollama["available"] is True and ollama["type"] == "ollama"
    assert ollama["info"]["version"] and ollama["info"]["base_url"].startswith("http://127.0.0.1")
    assert openai["available"] is True and openai["info"]["api_key_set"] is True
    assert offline["available"] is False and "ollama serve" in offline["reason"]


# --- downloads --------------------------------------------------------------------------------


async def test_download_runs_to_completion_and_is_then_installed(api, jp_base_url):
    status, body, response = await api("POST", "models", "download", body={"model": TINY})
    assert status == 202 and body["status"] == "ok" and body["joined"] is False
    download_id = body["id"]
    assert body["download"]["backend"] == "ollama"  # the seed's default backend
    assert response.headers["Location"] == f"{jp_base_url}localmind/api/downloads/{download_id}"

    async def finished():
        _, polled, _ = await api("GET", "downloads", download_id)
        return polled["download"] if polled["download"]["state"] != "running" else None

    final = await wait_until(finished)
    assert final["state"] == "done", final
    assert final["completed"] == final["total"] == TINY_TOTAL and final["error"] is None
    _, listing, _ = await api("GET", "downloads")
    assert [d["id"] for d in listing["downloads"]] == [download_id]
    _, available, _ = await api("GET", "models", "available")
    assert TINY in available["backends"]["ollama"]["installed"]


async def test_same_model_joins_the_running_download_and_cancel_stops_it(api, ollama_server):
    ollama_server.pull_delay = 0.05
    body = {"model": TINY, "backend": "ollama"}
    _, first, _ = await api("POST", "models", "download", body=body)
    status, second, _ = await api("POST", "models", "download", body=body)
    assert status == 202 and second["id"] == first["id"] and second["joined"] is True

    status, cancelled, _ = await api("DELETE", "downloads", first["id"])
    assert status == 202 and cancelled["status"] == "ok"

    async def final_state():
        _, polled, _ = await api("GET", "downloads", first["id"])
        return polled["download"]["state"] in {"cancelled", "done", "failed"} and polled

    polled = await wait_until(final_state)
    assert polled["download"]["state"] == "cancelled"
    assert TINY not in ollama_server.installed
    status, again, _ = await api("DELETE", "downloads", first["id"])
    assert status == 200 and again["download"]["state"] == "cancelled"


async def test_failed_download_reports_its_error(api):
    _, body, _ = await api("POST", "models", "download", body={"model": "no-such-model:7b"})

    async def failed():
        _, polled, _ = await api("GET", "downloads", body["id"])
        return polled["download"]["state"] == "failed" and polled["download"]

    final = await wait_until(failed)
    assert "not in the Ollama library" in final["error"]


# --- generation -------------------------------------------------------------------------------


def ndjson(chunks: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in b"".join(chunks).splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("request_body", "backend", "model"),
    [
        ({"model": "smollm:135m", "backend": "ollama"}, "ollama", "smollm:135m"),
        ({"model": "ollama:qwen2.5:0.5b"}, "ollama", "qwen2.5:0.5b"),  # backend:model
        ({"model": "gpt-test", "backend": "openai"}, "openai", "gpt-test"),
    ],
)
async def test_generate_streams_pieces_then_stats(
    jp_fetch, ollama_server, request_body, backend, model
):
    chunks: list[bytes] = []
    response = await jp_fetch(
        "localmind",
        "api",
        "generate",
        method="POST",
        body=json.dumps({"prompt": "hello there dear friend", "temperature": 0.3, **request_body}),
        streaming_callback=chunks.append,
    )
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    lines = ndjson(chunks)
    assert lines[0] == {"type": "start", "backend": backend, "model": model}
    texts = [line["text"] for line in lines if line["type"] == "text"]
    assert len(texts) >= 4
    assert "".join(texts) == "You said: hello there dear friend"
    assert lines[-1]["type"] == "done"
    stats = lines[-1]["response"]
    assert stats["text"] == "".join(texts) and stats["backend"] == backend
    assert stats["completion_tokens"] and stats["duration"] is not None
    if backend == "ollama":
        chat = [b for _m, path, b in ollama_server.requests if path == "/api/chat"][-1]
        assert chat["options"]["temperature"] == 0.3


async def test_generate_says_when_tokens_were_counted_not_reported(jp_fetch, openai_server):
    openai_server.include_usage_ignored = True  # as llama.cpp's server
    chunks: list[bytes] = []
    await jp_fetch(
        "localmind",
        "api",
        "generate",
        method="POST",
        body=json.dumps({"prompt": "one two three", "model": "gpt-test", "backend": "openai"}),
        streaming_callback=chunks.append,
    )
    stats = ndjson(chunks)[-1]["response"]
    assert stats["completion_tokens"] == 5 and stats["tokens_approximate"] is True


async def test_generate_arrives_incrementally(jp_fetch, ollama_server):
    ollama_server.token_delay = 0.02
    arrivals: list[float] = []
    chunks: list[bytes] = []

    def on_chunk(chunk: bytes) -> None:
        arrivals.append(time.monotonic())
        chunks.append(chunk)

    await jp_fetch(
        "localmind",
        "api",
        "generate",
        method="POST",
        body=json.dumps({"prompt": "one two three four five six", "model": "ollama:smollm:135m"}),
        streaming_callback=on_chunk,
    )
    assert len(arrivals) >= 5, "the answer came in one piece"
    assert arrivals[-1] - arrivals[0] > 0.1
    assert ndjson(chunks)[-1]["type"] == "done"


async def test_closing_the_request_stops_the_generation(
    http_server_client, jp_base_url, jp_auth_header, ollama_server, state
):
    ollama_server.token_delay = 0.05
    target = url(http_server_client, jp_base_url, "localmind/api/generate")
    body = {"prompt": LONG_PROMPT, "model": "smollm:135m", "backend": "ollama"}
    seen = 0
    async with (
        httpx.AsyncClient(headers=jp_auth_header, timeout=10) as client,
        client.stream("POST", target, json=body) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line and json.loads(line)["type"] == "text":
                seen += 1
                if seen == 3:
                    break  # leaving the block closes the connection mid-answer
    assert await in_thread(ollama_server.disconnected.wait, 5), "Ollama kept generating"
    assert ollama_server.chunks_sent < 20  # of 62
    await wait_until(lambda: _no_pumps(state), timeout=5)


async def _no_pumps(state: ServerState) -> bool:
    return not state._pumps


async def test_event_loop_answers_while_download_and_generation_run(
    api, jp_fetch, http_server_client, jp_base_url, jp_auth_header, ollama_server
):
    ollama_server.pull_delay = 0.05
    ollama_server.token_delay = 0.05
    _, started, _ = await api("POST", "models", "download", body={"model": TINY})
    target = url(http_server_client, jp_base_url, "localmind/api/generate")
    body = {"prompt": LONG_PROMPT, "model": "smollm:135m", "backend": "ollama"}
    async with (
        httpx.AsyncClient(headers=jp_auth_header, timeout=10) as client,
        client.stream("POST", target, json=body) as response,
    ):
        lines = response.aiter_lines()
        assert json.loads(await anext(lines))["type"] == "start"
        assert json.loads(await anext(lines))["type"] == "text"
        for path in (("api", "status"), ("localmind", "api", "backends")):
            began = time.monotonic()
            answer = await jp_fetch(*path)
            assert answer.code == 200
            # A blocked loop would answer only after the ~3 s generation.
            assert time.monotonic() - began < 1.0, f"{'/'.join(path)} waited"
        _, progress, _ = await api("GET", "downloads", started["id"])
        assert progress["download"]["state"] == "running"
        assert ollama_server.chunks_sent < 62  # the generation is still running
    await api("DELETE", "downloads", started["id"])


async def test_server_shutdown_stops_generations_and_downloads(
    api, http_server_client, jp_base_url, jp_auth_header, ollama_server, state
):
    ollama_server.pull_delay = 0.05
    ollama_server.token_delay = 0.05
    _, started, _ = await api("POST", "models", "download", body={"model": TINY})
    target = url(http_server_client, jp_base_url, "localmind/api/generate")
    body = {"prompt": LONG_PROMPT, "model": "smollm:135m", "backend": "ollama"}
    async with (
        httpx.AsyncClient(headers=jp_auth_header, timeout=10) as client,
        client.stream("POST", target, json=body) as response,
    ):
        kinds = []
        async for line in response.aiter_lines():
            kinds.append(json.loads(line)["type"])
            if kinds.count("text") == 2:
                state.close()  # what the extension's stop_extension does
    assert "done" not in kinds  # the stream ended early, without a final line
    assert await in_thread(ollama_server.disconnected.wait, 5)
    assert state._downloads is not None
    download = state._downloads.get(started["id"])
    assert download is not None and (await in_thread(download.wait, 5)).state == "cancelled"


# --- a bound on concurrent generations ------------------------------------------------------


class ThreadPeak:
    """The most threads alive in this process while the block ran (sampled every 5 ms)."""

    def __enter__(self) -> ThreadPeak:
        self.peak = threading.active_count()
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, threading.active_count() - 1)  # not counting itself

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._sampler.join()


@pytest.mark.parametrize(
    "extension_config", [{"max_concurrent_generations": 2, "max_queued_generations": 3}]
)
async def test_concurrent_generations_are_bounded_then_refused_with_retry_after(
    api, http_server_client, jp_base_url, jp_auth_header, ollama_server
):
    ollama_server.reply_pieces = [f"w{i} " for i in range(8)]
    ollama_server.token_delay = 0.1  # ~0.8 s a generation: 50 requests arrive well within it
    await api("GET", "backends")  # the backends exist before the threads are counted
    target = url(http_server_client, jp_base_url, "localmind/api/generate")
    body = {"prompt": "go", "model": "smollm:135m", "backend": "ollama"}
    baseline = threading.active_count()
    async with httpx.AsyncClient(
        headers=jp_auth_header, timeout=30, limits=httpx.Limits(max_connections=60)
    ) as client:
        with ThreadPeak() as threads:
            replies = await asyncio.gather(*(client.post(target, json=body) for _ in range(50)))
    statuses = sorted(r.status_code for r in replies)
    served = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 503]
    assert len(served) + len(refused) == 50, statuses
    assert len(served) >= 5 and len(refused) >= 30, statuses  # 2 running + 3 queued, then 503
    for reply in served:  # queued ones waited their turn and got the whole answer
        lines = ndjson([reply.content])
        assert lines[-1]["type"] == "done", lines[-1]
        assert lines[-1]["response"]["text"] == "".join(ollama_server.reply_pieces)
    for reply in refused:
        assert int(reply.headers["Retry-After"]) >= 1
        error = reply.json()
        assert error["status"] == "error" and "the server is busy" in error["message"]
        assert "Retry-After" in error["message"]
        assert "max_concurrent_generations" in error["message"]
    # 2 generating threads + the 2 fake-Ollama threads answering them (50 were 156 before).
    assert threads.peak - baseline <= 2 * 2 + 2, (baseline, threads.peak)


@pytest.mark.parametrize(
    "extension_config", [{"max_concurrent_generations": 1, "max_queued_generations": 1}]
)
async def test_a_client_that_leaves_the_queue_frees_its_place(
    http_server_client, jp_base_url, jp_auth_header, ollama_server, state
):
    ollama_server.reply_pieces = [f"w{i} " for i in range(30)]
    ollama_server.token_delay = 0.05
    target = url(http_server_client, jp_base_url, "localmind/api/generate")
    body = {"prompt": "go", "model": "smollm:135m", "backend": "ollama"}
    gate = state.generations
    async with httpx.AsyncClient(headers=jp_auth_header, timeout=30) as client:
        async with client.stream("POST", target, json=body) as running:
            assert running.status_code == 200
            waiting = asyncio.ensure_future(client.post(target, json=body))
            await wait_until(lambda: _is(gate.waiting == 1))
            busy = await client.post(target, json=body)
            assert busy.status_code == 503 and busy.headers["Retry-After"]
            waiting.cancel()  # this client gives up while in line
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            await wait_until(lambda: _is(gate.waiting == 0))
            queued = asyncio.ensure_future(client.post(target, json=body))
            await wait_until(lambda: _is(gate.waiting == 1))  # its place was free again
            async for _ in running.aiter_lines():
                pass
        assert (await queued).status_code == 200
    await wait_until(lambda: _is(gate.running == 0))


async def _is(value: bool) -> bool:
    return value


# --- bad input --------------------------------------------------------------------------------

BAD_DOWNLOADS: list[tuple[Any, int, str]] = [
    (b"{model: tinyllama", 400, "not valid JSON"),
    (b"", 400, "body is empty"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (["tinyllama"], 400, "must be a JSON object"),
    ({"backend": "ollama"}, 400, "'model' is missing"),
    ({"model": TINY, "force": True}, 400, "unknown field(s) force"),
    ({"model": TINY, "backend": "nope"}, 400, "unknown backend 'nope'"),
    ({"model": TINY, "backend": 3}, 400, "'backend' must be a string"),
    ({"model": 42}, 400, "'model' must be a string"),
    ({"model": "   "}, 400, "'model' is empty"),
    ({"model": "../../etc/passwd"}, 400, "looks like a file path"),
    ({"model": "/etc/passwd"}, 400, "looks like a file path"),
    ({"model": "models\\evil"}, 400, "looks like a file path"),
    ({"model": "llama\x00:1b"}, 400, "control character U+0000"),
    ({"model": "lla\u202ema"}, 400, "control character U+202E"),
    ({"model": "a/b/c/d"}, 400, "not a valid ollama model name"),
    ({"model": "Bad Name!!"}, 400, "not a valid ollama model name"),
    ({"model": TINY, "backend": "offline"}, 503, "start Ollama with `ollama serve`"),
    ({"model": "gpt-test", "backend": "openai"}, 400, "nothing to download; generate with it"),
]


async def test_bad_download_requests_say_what_to_fix(api, state, ollama_server):
    for request_body, expected, snippet in BAD_DOWNLOADS:
        status, body, _ = await api("POST", "models", "download", body=request_body)
        assert status == expected, (request_body, body)
        assert body["status"] == "error" and snippet in body["message"], (request_body, body)
    assert not [p for _m, p, _b in ollama_server.requests if p == "/api/pull"]
    assert state.download_list() == []  # not one was started to fail later


BAD_GENERATIONS: list[tuple[Any, int, str]] = [
    (b"[1, 2", 400, "not valid JSON"),
    ({"model": "smollm:135m"}, 400, "'prompt' is missing"),
    ({"prompt": 5, "model": "smollm:135m"}, 400, "'prompt' must be a string"),
    ({"prompt": "hi"}, 400, "'model' is missing"),
    ({"prompt": "hi", "model": "smollm:135m", "backend": "nope"}, 400, "unknown backend"),
    ({"prompt": "hi", "model": "../x", "backend": "ollama"}, 400, "looks like a file path"),
    ({"prompt": "hi", "model": "..", "backend": "openai"}, 400, "looks like a file path"),
    ({"prompt": "hi", "model": "x\ny"}, 400, "control character U+000A"),
    ({"prompt": "hi", "model": "smollm:135m", "temprature": 1}, 400, "supported options"),
    ({"prompt": "hi", "model": "smollm:135m", "temperature": 7}, 400, "between 0 and 2"),
    ({"prompt": "hi", "model": "nope:1b", "backend": "ollama"}, 404, "not installed"),
    ({"prompt": "hi", "model": "no-such-model-anywhere"}, 404, "no enabled backend"),
    ({"prompt": "hi", "model": "smollm:135m", "backend": "offline"}, 503, "not running"),
]

GEN = b'{"prompt": "hi", "model": "smollm:135m", "backend": "ollama", '
TOO_DEEP = "nests arrays or objects more than 32 levels deep; flatten it"
SEED_RANGE = "seed must be an integer from 0 to 2147483647"
KEEP_ALIVE = 'keep_alive must be a duration like "5m"'
#: Refused before Ollama is asked: each was a 500 or a 502 once.
BAD_OPTIONS: list[tuple[Any, int, str]] = [
    (GEN + b'"stop": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, TOO_DEEP),
    (GEN + b'"stop": ' + b"[" * 40 + b'"x"' + b"]" * 40 + b"}", 400, TOO_DEEP),
    (GEN + b'"format": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}", 400, TOO_DEEP),
    (GEN + b'"seed": 1' + b"0" * 5000 + b"}", 400, "too many digits"),
    ({"prompt": "hi", "model": "smollm:135m", "seed": 10**30}, 400, SEED_RANGE),
    ({"prompt": "hi", "model": "gpt-test", "backend": "openai", "seed": 2**31}, 400, SEED_RANGE),
    ({"prompt": "hi", "model": "smollm:135m", "keep_alive": True}, 400, KEEP_ALIVE),
    ({"prompt": "hi", "model": "smollm:135m", "keep_alive": {"m": 5}}, 400, KEEP_ALIVE),
    ({"prompt": "hi", "model": "smollm:135m", "keep_alive": "five"}, 400, KEEP_ALIVE),
    ({"prompt": "hi", "model": "smollm:135m", "format": "yaml"}, 400, "JSON schema object"),
]


async def test_bad_generate_requests_say_what_to_fix(api, ollama_server, openai_server):
    async def check(cases: list[tuple[Any, int, str]]) -> None:
        for request_body, expected, snippet in cases:
            status, body, _ = await api("POST", "generate", body=request_body)
            assert status == expected, (str(request_body)[:80], body)
            assert body["status"] == "error" and snippet in body["message"], (request_body, body)

    await check(BAD_GENERATIONS)
    chats = [p for _m, p, _b in ollama_server.requests if p == "/api/chat"]
    await check(BAD_OPTIONS)
    assert [p for _m, p, _b in ollama_server.requests if p == "/api/chat"] == chats
    assert not [r for r in openai_server.requests if "chat" in r[1]]


async def test_unknown_ids_paths_and_methods_are_json_errors(api):
    for method, path, expected in [
        ("GET", ("downloads", "0123456789ab"), 404),
        ("DELETE", ("downloads", "nope\x01"), 404),
        ("GET", ("nothing", "here"), 404),
        ("PUT", ("models", "available"), 405),
    ]:
        status, body, _ = await api(method, *path, body=b"{}" if method == "PUT" else None)
        assert status == expected, (method, path, body)
        assert body["status"] == "error" and body["message"], body


async def test_a_bug_is_a_500_without_traceback_or_secret(api, state, monkeypatch):
    def broken() -> None:
        raise RuntimeError(f"boom with {KEY}")

    monkeypatch.setattr(state, "available", broken)
    status, body, _ = await api("GET", "models", "available")  # `api` checks: no key, no traceback
    assert status == 500 and body["status"] == "error"
    assert "RuntimeError" in body["message"] and "boom" not in body["message"]


async def test_a_broken_config_is_a_400_naming_the_file(api, localmind_config):
    localmind_config.write_text("backends:\n  ollama:\n    settngs: {}\n", encoding="utf-8")
    status, body, _ = await api("GET", "backends")
    assert status == 400 and "config.yaml" in body["message"] and "settings" in body["message"]


# --- auth -------------------------------------------------------------------------------------


async def test_requests_without_the_token_are_refused(
    http_server_client, jp_base_url, ollama_server, state
):
    for method, path, body in [
        ("GET", "localmind/api/models/available", None),
        ("GET", "localmind/api/backends", None),
        ("GET", "localmind/api/downloads", None),
        ("POST", "localmind/api/models/download", json.dumps({"model": TINY})),
        ("DELETE", "localmind/api/downloads/0123456789ab", None),
        ("POST", "localmind/api/generate", json.dumps({"prompt": "x", "model": "smollm:135m"})),
    ]:
        for headers in ({}, {"Authorization": "token wrong"}):
            response = await http_server_client.fetch(
                f"{jp_base_url}{path}",
                method=method,
                body=body,
                headers=headers,
                raise_error=False,
                follow_redirects=False,
            )
            assert response.code == 403, (method, path, headers)
            reply = json.loads(response.body)
            assert reply["status"] == "error" and "token" in reply["message"]
    assert state._loader is None  # nothing was even built
    assert not ollama_server.requests


async def test_cookie_authenticated_mutations_need_the_xsrf_token(
    http_server_client, jp_base_url, jp_serverapp, ollama_server
):
    token = jp_serverapp.identity_provider.token
    login = await http_server_client.fetch(
        f"{jp_base_url}localmind/api/downloads?token={token}", raise_error=False
    )
    assert login.code == 200
    cookie = next(
        c.split(";")[0] for c in login.headers.get_list("Set-Cookie") if c.startswith("username-")
    )

    async def send(method: str, path: str, headers: dict[str, str], body: str | None = None):
        return await http_server_client.fetch(
            f"{jp_base_url}localmind/api/{path}",
            method=method,
            body=body,
            headers=headers,
            raise_error=False,
        )

    assert (await send("GET", "backends", {"Cookie": cookie})).code == 200  # reads need no XSRF
    download = json.dumps({"model": TINY})
    missing = await send("POST", "models/download", {"Cookie": cookie}, download)
    assert missing.code == 403 and "_xsrf" in json.loads(missing.body)["message"]
    wrong = await send(
        "POST",
        "models/download",
        {"Cookie": f"{cookie}; _xsrf=0123abcd", "X-XSRFToken": "deadbeef"},
        download,
    )
    assert wrong.code == 403 and "XSRF" in json.loads(wrong.body)["message"]
    cancel = await send("DELETE", "downloads/0123456789ab", {"Cookie": cookie})
    assert cancel.code == 403
    assert not [p for _m, p, _b in ollama_server.requests if p == "/api/pull"]
    right = await send(
        "POST",
        "models/download",
        {"Cookie": f"{cookie}; _xsrf=0123abcd", "X-XSRFToken": "0123abcd"},
        download,
    )
    assert right.code == 202, right.body


class ReadOnlyLocalMind(Authorizer):
    """Lets users read LocalMind's endpoints but not download or generate."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "localmind" or action == "read"


@pytest.mark.parametrize("extra_server_config", [{"authorizer_class": ReadOnlyLocalMind}])
async def test_jupyter_authorizer_decides_per_action(api):
    assert (await api("GET", "backends"))[0] == 200
    status, body, _ = await api("POST", "models", "download", body={"model": TINY})
    assert status == 403 and "not authorized to write on resource: localmind" in body["message"]
    status, body, _ = await api("POST", "generate", body={"prompt": "x", "model": "smollm:135m"})
    assert status == 403 and "execute" in body["message"]
