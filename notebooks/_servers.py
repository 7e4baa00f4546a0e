"""Stand-ins for Ollama and an OpenAI-compatible server, so the notebooks run offline.

In real use you run ``ollama serve`` (or vLLM, LM Studio, llama.cpp's server) and
LocalMind's defaults just work. The notebooks must also run in CI and in a classroom
without network or GPU, so they start the repository's loopback test servers
(``tests/servers/``) inside the kernel instead. The servers speak the real wire
protocols, but their models are fakes: they answer ``You said: <your prompt>`` and a
download moves about a megabyte of nothing. A stand-in vision model (``vision=``)
answers what it sees in the image it received: its size and its main colour, computed
from the pixels, so the answer depends on the image and is the same every run.

    import _servers

    ollama = _servers.start_ollama()  # ollama.url  -> http://127.0.0.1:PORT
    vllm = _servers.start_openai(["Qwen/Qwen2.5-1.5B-Instruct"])  # vllm.base_url -> .../v1
    home = _servers.temp_home()  # an empty LocalMind home for this run

Everything stops and is deleted when the kernel shuts down.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _servers_package() -> None:
    """Make ``tests.servers`` importable: the notebooks run from a checkout of the repository."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def start_ollama(
    installed: list[str] | None = None, vision: list[str] | None = None, **options: Any
) -> Any:
    """An Ollama stand-in on a free loopback port; ``.url`` is its address.

    ``installed``: the models it has (default ``smollm:135m`` and ``qwen2.5:0.5b``).
    ``vision``: vision models it has too (e.g. ``["llava:7b"]``), whose answer describes
    the image sent. It can download ``tinyllama``, ``qwen2.5:0.5b`` and ``all-minilm``,
    about 1 MB each. Other options go to ``OllamaTestServer`` (e.g. ``pull_delay``).
    """
    _servers_package()
    from tests.servers.ollama_server import (
        FakeModel,
        OllamaTestServer,
        default_models,
        vision_model,
    )

    if installed is not None or vision:
        text = default_models() if installed is None else [FakeModel(n) for n in installed]
        options["models"] = [*text, *(vision_model(name) for name in vision or ())]
    server = OllamaTestServer(**options).start()
    atexit.register(server.stop)
    return server


def start_openai(models: list[str] | None = None, **options: Any) -> Any:
    """An OpenAI-compatible stand-in (think vLLM) on a free loopback port; ``.base_url``."""
    _servers_package()
    from tests.servers.openai_server import OpenAITestServer

    server = OpenAITestServer(models, **options).start()
    atexit.register(server.stop)
    return server


def free_port() -> int:
    """A loopback port where nothing listens: a server that is not running."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def temp_folder(prefix: str = "localmind-notebook-") -> Path:
    """A fresh, empty folder, deleted when the kernel shuts down."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def temp_home() -> Path:
    """A fresh, empty folder for ``LOCALMIND_HOME``, deleted when the kernel shuts down.

    The converted bundled model stays where it already is: ``LOCALMIND_CACHE`` is pinned
    to the current cache folder first, so switching homes never converts it again.
    """
    from localmind_jupyter.paths import cache_dir

    os.environ.setdefault("LOCALMIND_CACHE", str(cache_dir()))
    return temp_folder()
