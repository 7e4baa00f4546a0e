"""Keys and passwords: which server gets which key, and that no way out shows one.

The redactor is tested with generated secrets (hypothesis); then the ways out a user
sees — reprs, backend errors, ``%localmind backends`` / ``config`` and the REST
API — are driven against the loopback servers with passwords in their URLs.
"""

from __future__ import annotations

import ast
import base64
import html
import io
import json
import logging
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import anthropic  # noqa: F401 - imported now, so no probe waits for an SDK's first import
import httpx
import openai  # noqa: F401
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localmind_jupyter import secrets
from localmind_jupyter.backends.anthropic import AnthropicBackend
from localmind_jupyter.backends.openai import OpenAIBackend, TensorRTBackend, VLLMBackend
from localmind_jupyter.errors import ConfigError, LocalMindError
from localmind_jupyter.secrets import is_secret_key, mask_secrets, redact
from tests.conftest import REPO, free_port
from tests.servers.anthropic_server import AnthropicTestServer
from tests.servers.openai_server import OpenAITestServer
from tests.test_magic_shell import ip  # noqa: F401 - the in-process IPython fixture

pytest_plugins = ["pytest_jupyter.jupyter_server"]

ENV_KEY = "sk-env-only-for-the-vendor-0042"
VLLM_KEY = "vllm-configured-key-0077"
PASSWORD = "p@ss:w0rd-hunter2"  # has the '@' and ':' that trip naive maskers


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    """Generated secrets must not stay known to later tests (they would mask their text)."""
    saved = secrets._REGISTRY.snapshot()
    yield
    secrets._REGISTRY.restore(saved)


# --- strategies -------------------------------------------------------------------------------
#: No '*': a secret made of the mask's own characters could reappear next to a mask.
_TEXT = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="*")
#: What a user name or password may hold in a URL as written: '@' and ':' included.
_USERINFO_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc", "Z"), exclude_characters="*/?#'\"<> \\"
)


def _code_words() -> str:
    """Every name and string constant of the package, joined: what its messages may hold."""
    words: set[str] = set()
    for path in (REPO / "localmind_jupyter").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.add(node.value)
            elif isinstance(node, ast.Name):
                words.add(node.id)
            elif isinstance(node, ast.Attribute):
                words.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.arg)):
                words.add(node.name if not isinstance(node, ast.arg) else node.arg)
    return "\0".join(words)


_CODE_WORDS = _code_words()


def _not_a_word(text: str) -> bool:
    """A secret of letters only may be a word the messages hold anyway ('LocalMin' in
    'LocalMindError', 'capabili' in 'capabilities'), and Hypothesis draws pieces of the
    code's own constants ('read_tim' of 'read_timeout', shown in a settings repr): no leak,
    but the assertion can't tell."""
    if text in _CODE_WORDS:
        return False
    return any(c.isdigit() for c in text) or any(not c.isalnum() for c in text)


secret_text = st.text(_TEXT, min_size=8, max_size=40).filter(
    lambda s: s.strip() == s and _not_a_word(s)
)
url_password = st.text(_USERINFO_CHARS, min_size=8, max_size=30).filter(_not_a_word)
context = st.text(_TEXT, max_size=30)


def words_name(words: list[str], seps: list[str], case: str) -> str:
    name = "".join(w + s for w, s in zip(words, seps, strict=False)) + words[-1]
    return {"lower": name.lower(), "upper": name.upper(), "title": name.title()}[case]


def header_names(words: list[list[str]]) -> st.SearchStrategy[str]:
    return st.builds(
        words_name,
        st.sampled_from(words),
        st.lists(st.sampled_from(["-", "_", "."]), min_size=3, max_size=3),
        st.sampled_from(["lower", "upper", "title"]),
    )


SECRET_NAMES = [
    ["x", "api", "key"],
    ["api", "key"],
    ["x", "goog", "api", "key"],
    ["proxy", "authorization"],
    ["authorization"],
    ["cookie"],
    ["set", "cookie"],
    ["access", "token"],
    ["hf", "token"],
    ["client", "secret"],
    ["password"],
    ["ocp", "apim", "subscription", "key"],
]
HARMLESS_NAMES = [
    ["max", "new", "tokens"],
    ["max", "tokens"],
    ["num", "tokens"],
    ["tokenizer", "name"],
    ["keep", "alive"],
    ["top", "k"],
    ["base", "url"],
    ["key", "lines"],
]


# --- the redactor -----------------------------------------------------------------------------
@given(
    scheme=st.sampled_from(["http", "https", "HTTP"]),
    user=st.text(_USERINFO_CHARS, max_size=12).filter(lambda u: ":" not in u),
    password=url_password,
    form=st.sampled_from(["user:pw", ":pw", "token", "user:"]),
    before=context,
)
@settings(max_examples=300)
def test_url_userinfo_never_comes_out(scheme, user, password, form, before):
    userinfo = {
        "user:pw": f"{user}:{password}",
        ":pw": f":{password}",
        "token": password,
        "user:": f"{user or 'u'}:",
    }[form]
    url = f"{scheme}://{userinfo}@127.0.0.1:8000/v1"
    masked = f"{scheme}://****@127.0.0.1:8000/v1"
    text = f"{before} cannot reach {url} — is it running?"
    assert redact(text) == f"{before} cannot reach {masked} — is it running?"
    assert redact(json.dumps({"base_url": url})) == json.dumps({"base_url": masked})
    assert redact(repr({"base_url": url})) == repr({"base_url": masked})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://alice:pw@host:1/v1", "http://****@host:1/v1"),
        ("http://:pw@h", "http://****@h"),
        ("http://token@h/x", "http://****@h/x"),
        ("http://eve:at@sign@h/v1", "http://****@h/v1"),
        ("see https://h/a@b and http://h:1/?q=a@b", "see https://h/a@b and http://h:1/?q=a@b"),
        ("GET /v1?api_key=abc123&max_tokens=5", "GET /v1?api_key=****&max_tokens=5"),
        ("Authorization: Bearer sk-abc123456", "Authorization: Bearer ****"),
        ("the basic settings", "the basic settings"),
    ],
)
def test_url_and_credential_forms(url, shown):
    assert redact(url) == shown


@given(secret=secret_text, before=context, after=context)
@settings(max_examples=300)
def test_known_secrets_never_come_out_in_any_quoting(secret, before, after):
    plain = f"{before}{secret}{after}"
    renderings = {
        "plain": plain,
        "json": json.dumps({"error": plain}),
        "json-utf8": json.dumps({"error": plain}, ensure_ascii=False),
        "repr": repr({"X-API-Key": plain, "quote": "'\""}),
        "url": quote(plain, safe=""),
        "html": html.escape(plain),
        "header": f"Authorization: Bearer {secret}",
    }
    decode = {
        "json": lambda t: json.loads(t)["error"],
        "json-utf8": lambda t: json.loads(t)["error"],
        "repr": lambda t: ast.literal_eval(t)["X-API-Key"],
        "url": unquote,
        "html": html.unescape,
    }
    for name, text in renderings.items():
        out = redact(text, secret)
        assert secret not in out, name
        if name in decode:
            try:
                decoded = decode[name](out)
            except (ValueError, SyntaxError, KeyError):
                continue  # a mask that cut an escape sequence: over-masked, not leaked
            assert secret not in decoded, name


@given(secret=secret_text, before=context)
@settings(max_examples=100)
def test_registered_secrets_are_masked_in_errors_and_logs(secret, before):
    saved = secrets._REGISTRY.snapshot()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # a handler of the package, as an app would add
    package = logging.getLogger("localmind_jupyter")
    package.addHandler(handler)
    try:
        secrets.register(f"Bearer {secret}")
        error = LocalMindError(f"{before} the server said: {secret!r}")
        assert secret not in str(error) and secret not in repr(error)
        log = logging.getLogger("localmind_jupyter.server.handlers")
        log.warning("upstream answered %s", secret)
        try:
            raise RuntimeError(f"boom {secret}")
        except RuntimeError:
            log.error("crashed", exc_info=True)
        logged = stream.getvalue()
        assert "upstream answered ****" in logged and "boom ****" in logged
        assert secret not in logged
    finally:
        package.removeHandler(handler)
        secrets._REGISTRY.restore(saved)


def test_every_module_that_logs_is_redacted():
    found = {
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in (REPO / "localmind_jupyter").rglob("*.py")
        if re.search(r"getLogger\(__name__\)", path.read_text(encoding="utf-8"))
    }
    assert found <= set(secrets.LOGGING_MODULES), found - set(secrets.LOGGING_MODULES)


@given(name=header_names(SECRET_NAMES), value=secret_text)
@settings(max_examples=200)
def test_secret_header_names_are_masked(name, value):
    assert is_secret_key(name), name
    shown = mask_secrets({"headers": {name: value, "Accept": "application/json"}})
    assert shown == {"headers": {name: "****", "Accept": "application/json"}}
    assert value not in repr(shown)


@given(name=header_names(HARMLESS_NAMES))
def test_harmless_names_stay_visible(name):
    assert not is_secret_key(name), name
    assert mask_secrets({name: 512}) == {name: 512}


def test_a_secret_inside_a_longer_one_does_not_cut_it_apart(monkeypatch):
    secrets.register("abcd-1234")
    monkeypatch.setenv("OTHER_API_KEY", "xx-abcd-1234-yy")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false-but-long")  # not a secret name
    assert redact("got xx-abcd-1234-yy, abcd-1234 and false-but-long") == (
        "got ****, **** and false-but-long"
    )


def test_env_references_stay_visible_and_camel_case_is_understood():
    assert mask_secrets({"api_key": "${VLLM_API_KEY}"}) == {"api_key": "${VLLM_API_KEY}"}
    assert is_secret_key("apiKey") and is_secret_key("APIKey") and is_secret_key("accessToken")
    assert not is_secret_key("PWD") and not is_secret_key("TOKENIZERS_PARALLELISM")


# --- which key goes where ---------------------------------------------------------------------
@pytest.fixture
def open_server() -> Iterator[OpenAITestServer]:
    """An OpenAI-compatible server that wants no key (an LM Studio box on the LAN)."""
    with OpenAITestServer(models=["gpt-test"]) as server:
        server.server_version = "0.9.1"
        yield server


def sent_keys(server: Any) -> dict[str, set[str]]:
    """Path -> the credential headers' values that reached it."""
    found: dict[str, set[str]] = {}
    for _method, path, headers in server.credentials:
        found.setdefault(path.split("?")[0], set()).update(headers.values())
    return found


@pytest.mark.parametrize("cls", [OpenAIBackend, VLLMBackend, TensorRTBackend])
def test_environment_key_never_reaches_another_server(cls, open_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    backend = cls({"base_url": open_server.base_url})
    assert backend.check_availability() == (True, None)
    assert backend.generate("hi", "gpt-test").text
    assert backend.get_backend_info()["api_key_set"] is False
    sent = sent_keys(open_server)
    assert {"/v1/models", "/v1/chat/completions"} <= set(sent)
    if cls is not OpenAIBackend:
        assert "/version" in sent and backend.get_backend_info()["server_version"] == "0.9.1"
    assert all(ENV_KEY not in value for values in sent.values() for value in values), sent


@pytest.mark.parametrize("cls", [OpenAIBackend, VLLMBackend, TensorRTBackend])
def test_a_configured_key_reaches_its_server(cls, open_server, isolated_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("VLLM_API_KEY", VLLM_KEY)
    (isolated_home / "config.yaml").write_text(
        f"backends:\n  box:\n    type: {cls.type_name}\n"
        f"    settings: {{base_url: '{open_server.base_url}', api_key: '${{VLLM_API_KEY}}'}}\n"
    )
    from localmind_jupyter.core.model_loader import ModelLoader

    backend = ModelLoader().get("box")
    assert backend.check_availability() == (True, None)
    assert backend.generate("hi", "gpt-test").text
    assert backend.get_backend_info()["api_key_set"] is True
    sent = sent_keys(open_server)
    expected = {"/v1/models", "/v1/chat/completions"}
    if cls is not OpenAIBackend:
        expected.add("/version")
    for path in expected:
        assert sent[path] == {f"Bearer {VLLM_KEY}"}, (path, sent)


def test_the_environment_key_goes_to_openai_itself(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    backend = OpenAIBackend({})
    assert backend.base_url == "https://api.openai.com/v1"
    assert backend.client.api_key == ENV_KEY  # what the SDK will send, nothing sent here
    assert backend.get_backend_info()["api_key_set"] is True
    assert (
        VLLMBackend({"base_url": "https://api.openai.com/v1"}).get_backend_info()["api_key_set"]
        is False
    )  # a preset never takes OPENAI_API_KEY


def test_openai_base_url_does_not_take_the_key_along(open_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", open_server.base_url)
    backend = OpenAIBackend({})
    assert backend.base_url == open_server.base_url
    assert backend.list_models() == ["gpt-test"]
    assert backend.client.api_key == "not-needed"
    assert all(ENV_KEY not in str(headers) for _, _, headers in open_server.credentials)


def test_anthropic_key_goes_only_to_anthropic(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    with AnthropicTestServer(models=["claude-test"]) as server:
        backend = AnthropicBackend({"base_url": server.base_url})
        assert backend.check_availability() == (True, None)
        assert backend.generate("hi", "claude-test").text
        assert backend.get_backend_info()["api_key_set"] is False
        assert server.credentials
        assert all(ENV_KEY not in str(headers) for _, _, headers in server.credentials)
        configured = AnthropicBackend({"base_url": server.base_url, "api_key": VLLM_KEY})
        configured.list_models()
        assert VLLM_KEY in str(server.credentials[-1][2])
    official = AnthropicBackend({})
    assert official.client.api_key == ENV_KEY and official.get_backend_info()["api_key_set"]


# --- backends with passwords in their URLs ----------------------------------------------------
def backend_texts(backend: Any, model: str) -> list[str]:
    """Everything a user may see of a backend: repr, info, availability and its errors."""
    texts = [repr(backend), repr(backend.settings), str(backend.get_backend_info())]
    _available, reason = backend.check_availability()
    texts.append(str(reason))
    for call in (backend.list_models, lambda: backend.generate("hi", model)):
        try:
            texts.append(str(call()))
        except LocalMindError as exc:
            texts += [str(exc), repr(exc)]
    return texts


def with_password(base_url: str, password: str) -> str:
    return base_url.replace("://", f"://alice:{password}@", 1)


CLASSES = [OpenAIBackend, VLLMBackend, TensorRTBackend, AnthropicBackend]


@pytest.mark.parametrize("cls", CLASSES)
@given(password=url_password)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_url_passwords_never_show_server_down(cls, password):
    secrets._REGISTRY.restore({})
    url = with_password(f"http://127.0.0.1:{free_port()}/v1", password)
    backend = cls({"base_url": url, "api_key": VLLM_KEY})
    for text in backend_texts(backend, "gpt-test"):
        assert password not in text and "alice" not in text and VLLM_KEY not in text, text


@pytest.mark.parametrize("cls", CLASSES)
@given(password=url_password, status=st.sampled_from([400, 429, 500]))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_url_passwords_and_keys_never_show_server_up(cls, password, status):
    """The server even quotes the request's headers (the key) in its error messages."""
    secrets._REGISTRY.restore({})
    if cls is AnthropicBackend:
        server: Any = AnthropicTestServer(models=["gpt-test"])
        server.fail_status = status
    else:
        server = OpenAITestServer(models=["gpt-test"])
        server.fail_status = status
        server.echo_credentials = True
    with server:
        base = server.base_url if cls is not AnthropicBackend else server.base_url + "/"
        backend = cls({"base_url": with_password(base, password), "api_key": VLLM_KEY})
        texts = backend_texts(backend, "gpt-test")
    basic = base64.b64encode(f"alice:{password}".encode()).decode()  # httpx sends URL creds
    for text in texts:
        assert password not in text and "alice" not in text and VLLM_KEY not in text, text
        assert basic not in text, text


def test_the_server_really_echoes_the_key():
    """So the test above is not vacuous: the raw answer carries the key."""
    with OpenAITestServer(models=["gpt-test"]) as server:
        server.fail_status = 500
        server.echo_credentials = True
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(
            f"{server.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {VLLM_KEY}"},
        )
    assert VLLM_KEY in answer.text


def test_a_raw_slash_in_a_url_password_is_a_clear_error():
    from localmind_jupyter.backends.ollama import OllamaBackend

    for cls in [*CLASSES, OllamaBackend]:
        with pytest.raises(ConfigError, match="percent-encode") as info:
            cls({"base_url": "http://alice:pa/ss-word@127.0.0.1:1/v1"})
        assert "pa/ss" not in str(info.value) and "ss-word" not in str(info.value)
    assert OpenAIBackend({"base_url": "http://alice:pa%2Fss@127.0.0.1:1/v1"})


# --- the magics -------------------------------------------------------------------------------
@pytest.fixture
def secret_config(isolated_home: Path, open_server, monkeypatch) -> Path:
    monkeypatch.setenv("VLLM_API_KEY", VLLM_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    up = with_password(open_server.base_url, PASSWORD)
    down = with_password(f"http://127.0.0.1:{free_port()}/v1", PASSWORD)
    path = isolated_home / "config.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            default_model: lan:gpt-test
            backends:
              lan: {{type: openai, settings: {{base_url: "{up}"}}}}
              vllm: {{settings: {{base_url: "{up}", api_key: "${{VLLM_API_KEY}}"}}}}
              tensorrt: {{settings: {{base_url: "{down}", api_key: literal-key-0099}}}}
              anthropic: {{settings: {{base_url: "{down.removesuffix("/v1")}"}}}}
              ollama:
                settings:
                  base_url: "http://:{PASSWORD}@127.0.0.1:{free_port()}"
                  headers:
                    X-API-Key: header-key-0001
                    api-key: header-key-0002
                    x-goog-api-key: header-key-0003
                    Cookie: session=header-cookie-0004
                    Proxy-Authorization: Basic header-proxy-0005
                    X-Trace: visible-trace-id
              transformers:
                enabled: false
                settings: {{max_new_tokens: 512}}
            """
        ),
        encoding="utf-8",
    )
    return path


LEAKS = [
    PASSWORD,
    "alice",
    VLLM_KEY,
    ENV_KEY,
    "literal-key-0099",
    "header-key-0001",
    "header-key-0002",
    "header-key-0003",
    "header-cookie-0004",
    "header-proxy-0005",
]


def test_backends_and_config_commands_show_no_secret(ip, secret_config, capsys):  # noqa: F811
    ip.run_line_magic("localmind", "backends")
    ip.run_line_magic("localmind", "config")
    ip.run_cell_magic("localmind", "tensorrt:gpt-test", "hello")
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    for leak in LEAKS:
        assert leak not in shown, leak
    assert "http://****@127.0.0.1" in shown
    assert "max_new_tokens: 512" in shown  # a harmless key is not masked
    assert "X-Trace: visible-trace-id" in shown and "api_key: ${VLLM_API_KEY}" in shown
    assert re.search(r"lan\s+openai\s+available", shown)


def test_widgets_show_no_secret(secret_config):
    from ipywidgets.widgets import widget as widget_module

    from localmind_jupyter.session import reset_session
    from localmind_jupyter.widgets import ModelManager

    reset_session()
    try:
        panel = ModelManager()
        assert panel.wait(15)
        panel.catalog.select("vllm", "gpt-test")
        panel.catalog.use()
        shown = "\n".join(
            repr(value)
            for instance in list(widget_module._instances.values())
            for value in instance.get_state().values()
        )
        assert "http://****@127.0.0.1" in shown and "tensorrt" in shown
        for leak in LEAKS:
            assert leak not in shown, leak
    finally:
        reset_session()
        for instance in list(widget_module._instances.values()):
            instance.close()


# --- the REST API -----------------------------------------------------------------------------
@pytest.fixture
def jp_server_config(secret_config: Path) -> Any:
    from traitlets.config import Config

    return Config({"ServerApp": {"jpserver_extensions": {"localmind_jupyter": True}}})


async def test_rest_answers_show_no_secret(jp_fetch):
    for path in (("backends",), ("models", "available")):
        response = await jp_fetch("localmind", "api", *path, raise_error=False)
        text = response.body.decode()
        assert response.code == 200, text
        for leak in LEAKS:
            assert leak not in text, (path, leak)
        body = json.loads(text)
        assert "lan" in body["backends"]
    response = await jp_fetch(
        "localmind",
        "api",
        "generate",
        method="POST",
        body=json.dumps({"model": "tensorrt:gpt-test", "prompt": "hi"}),
        raise_error=False,
    )
    text = response.body.decode()
    assert response.code >= 400 and "cannot reach" in text
    for leak in LEAKS:
        assert leak not in text, leak
