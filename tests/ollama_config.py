"""The LocalMind config a test writes to make an Ollama test server the default model."""

from __future__ import annotations

from pathlib import Path


def write_ollama_config(home: Path, url: str, extra: str = "") -> None:
    """``home/config.yaml``: ``ollama:smollm:135m`` on ``url`` as the default, plus ``extra``."""
    (home / "config.yaml").write_text(
        "default_model: ollama:smollm:135m\n"
        "backends:\n"
        "  ollama:\n"
        f'    settings: {{base_url: "{url}"}}\n' + extra
    )
