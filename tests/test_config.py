"""config.yaml: defaults, validation naming file and line, env interpolation, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from localmind_jupyter.config import EMBEDDED_DEFAULT_MODEL, load_config, mask_secrets
from localmind_jupyter.errors import ConfigError

KNOWN = ["anthropic", "gguf", "ollama", "openai", "transformers"]


def write(home: Path, text: str) -> Path:
    path = home / "config.yaml"
    path.write_text(text)
    return path


def test_absent_file_gives_defaults(isolated_home):
    config = load_config(known_types=KNOWN)
    assert config.source is None
    assert config.backends["ollama"].enabled
    assert config.backends["transformers"].enabled
    assert not config.backends["openai"].enabled
    # llama-cpp-python is installed here: the bundled model answers through llama.cpp
    assert config.backends["gguf"].enabled and not config.off_reasons
    assert config.effective_default_model() == "gguf:smollm2-135m-instruct"
    assert config.timeouts.connect > 0 and config.timeouts.probe > 0


def test_without_llama_cpp_the_default_is_transformers_and_gguf_says_why(
    isolated_home, monkeypatch
):
    import sys

    from tests.llama_cpp_hider import HideLlamaCpp

    monkeypatch.setattr(sys, "meta_path", [HideLlamaCpp(), *sys.meta_path])
    for name in [n for n in sys.modules if n == "llama_cpp" or n.startswith("llama_cpp.")]:
        monkeypatch.delitem(sys.modules, name)  # an earlier test's import: as if never made
    config = load_config(known_types=KNOWN)
    assert not config.backends["gguf"].enabled
    assert config.effective_default_model() == EMBEDDED_DEFAULT_MODEL
    assert "llama-cpp-python is not installed" in config.off_reasons["gguf"]
    assert "pip install 'localmind-jupyter[llamacpp]'" in config.off_reasons["gguf"]


def test_default_model_and_configs_without_gguf_keep_their_default(isolated_home):
    write(isolated_home, "default_model: transformers:smollm2-135m-instruct\n")
    assert load_config(known_types=KNOWN).effective_default_model() == EMBEDDED_DEFAULT_MODEL
    write(isolated_home, "backends:\n  gguf: {enabled: false}\n  transformers: {}\n")
    config = load_config(known_types=KNOWN)
    assert config.effective_default_model() == EMBEDDED_DEFAULT_MODEL
    assert not config.off_reasons, "a config that turns gguf off needs no excuse"
    write(isolated_home, "backends:\n  ollama: {}\n  transformers: {}\n")
    assert load_config(known_types=KNOWN).effective_default_model() == EMBEDDED_DEFAULT_MODEL
    write(isolated_home, "backends:\n  fast: {type: gguf}\n  transformers: {}\n")
    assert load_config(known_types=KNOWN).effective_default_model() == "fast:smollm2-135m-instruct"


def test_remote_backends_enabled_by_default_once_a_key_is_set(isolated_home, monkeypatch):
    assert not load_config(known_types=KNOWN).backends["anthropic"].enabled
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-abc")
    config = load_config(known_types=KNOWN)
    assert config.backends["openai"].enabled and config.backends["anthropic"].enabled


def test_full_file_is_read_from_localmind_home(isolated_home):
    write(
        isolated_home,
        """
default_model: ollama:llama3.2:1b
timeouts:
  connect: 2
  read: 60
backends:
  local:
    type: ollama
    settings:
      base_url: http://127.0.0.1:9999
  transformers:
    enabled: false
""",
    )
    config = load_config(known_types=KNOWN)
    assert config.source == isolated_home / "config.yaml"
    assert config.default_model == "ollama:llama3.2:1b"
    assert config.timeouts.read == 60
    assert config.backends["local"].settings == {"base_url": "http://127.0.0.1:9999"}
    # `type` may be left out when the name is the type.
    assert config.backends["transformers"].type == "transformers"
    assert not config.backends["transformers"].enabled
    assert set(config.backends) == {"local", "transformers"}


def test_localmind_config_env_points_elsewhere(tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("default_model: openai:gpt-test\n")
    monkeypatch.setenv("LOCALMIND_CONFIG", str(other))
    assert load_config(known_types=KNOWN).default_model == "openai:gpt-test"
    monkeypatch.setenv("LOCALMIND_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(known_types=KNOWN)


def test_bad_yaml_names_file_and_line(isolated_home):
    path = write(isolated_home, "backends:\n  ollama:\n    type: ollama\n   enabled: [true\n")
    with pytest.raises(ConfigError) as info:
        load_config(known_types=KNOWN)
    message = str(info.value)
    assert str(path) in message
    assert info.value.line == 4
    assert "line 4" in message and "invalid YAML" in message
    assert "Traceback" not in message


def test_unknown_backend_type_lists_known_types(isolated_home):
    write(isolated_home, "backends:\n  mine:\n    type: olama\n")
    with pytest.raises(ConfigError) as info:
        load_config(known_types=KNOWN)
    message = str(info.value)
    assert "line 3" in message
    assert "'olama'" in message and "ollama, openai, transformers" in message


@pytest.mark.parametrize(
    ("text", "line", "key", "hint"),
    [
        ("timeouts:\n  connect: soon\n", 2, "timeouts.connect", "valid number"),
        ("timeouts:\n  connect: -1\n", 2, "timeouts.connect", "greater than 0"),
        ("backends:\n  ollama:\n    enabled: maybe\n", 3, "backends.ollama.enabled", "boolean"),
        ("default_modle: x\n", 1, "default_modle", "did you mean 'default_model'"),
        ("backends:\n  ollama:\n    settings: [1]\n", 3, "backends.ollama.settings", "dict"),
        ("display:\n  remote_images: maybe\n", 2, "display.remote_images", "boolean"),
        ("display:\n  remote_image: true\n", 2, "display.remote_image", "'remote_images'"),
        ("timeouts:\n  conect: 1\n", 2, "timeouts.conect", "did you mean 'connect'"),
    ],
)
def test_wrong_values_name_line_key_and_fix(isolated_home, text, line, key, hint):
    write(isolated_home, text)
    with pytest.raises(ConfigError) as info:
        load_config(known_types=KNOWN)
    assert info.value.line == line
    assert info.value.key == key
    assert key in str(info.value) and hint in str(info.value)


def test_remote_images_are_off_unless_opted_in(isolated_home):
    assert load_config(known_types=KNOWN).display.remote_images is False
    write(isolated_home, "display:\n  remote_images: true\n")
    config = load_config(known_types=KNOWN)
    assert config.display.remote_images is True
    assert config.to_display_dict()["display"] == {"remote_images": True}


def test_top_level_must_be_a_mapping(isolated_home):
    write(isolated_home, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(known_types=KNOWN)


def test_empty_file_means_defaults(isolated_home):
    write(isolated_home, "")
    assert load_config(known_types=KNOWN).backends["ollama"].enabled


def test_env_interpolation_and_missing_variable(isolated_home, monkeypatch):
    write(
        isolated_home,
        "backends:\n  openai:\n    settings:\n      api_key: ${MY_KEY}\n"
        "      base_url: ${MY_URL:-http://127.0.0.1:1/v1}\n",
    )
    config = load_config(known_types=KNOWN)
    monkeypatch.setenv("MY_KEY", "sk-from-env")
    assert config.resolved_settings("openai") == {
        "api_key": "sk-from-env",
        "base_url": "http://127.0.0.1:1/v1",
    }
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(ConfigError) as info:
        config.resolved_settings("openai")
    assert "MY_KEY is not set" in str(info.value) and info.value.line == 4


def test_secrets_are_masked_in_reprs_and_display(isolated_home):
    write(
        isolated_home,
        "backends:\n  openai:\n    settings:\n      api_key: sk-literal-secret-999\n"
        "      headers: {Authorization: Bearer sk-literal-secret-999}\n",
    )
    config = load_config(known_types=KNOWN)
    for text in (repr(config), str(config.backends["openai"]), str(config.to_display_dict())):
        assert "sk-literal-secret-999" not in text
    assert config.to_display_dict()["backends"]["openai"]["settings"]["api_key"] == "****"
    # An ${ENV} reference is not a secret and stays visible, so users can see where it comes from.
    assert mask_secrets({"api_key": "${OPENAI_API_KEY}"}) == {"api_key": "${OPENAI_API_KEY}"}


def test_passwords_in_urls_are_masked_for_display(isolated_home):
    write(
        isolated_home, "backends:\n  ollama:\n    settings:\n      base_url: http://u:pw123@h:1\n"
    )
    config = load_config(known_types=KNOWN)
    shown = config.to_display_dict()["backends"]["ollama"]["settings"]["base_url"]
    assert shown == "http://****@h:1"  # the user name too: it may be a token (http://TOKEN@h)
    assert "pw123" not in repr(config)
