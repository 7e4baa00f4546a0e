"""config.yaml that would exhaust the kernel (aliases, nesting, size) is refused at once, and an
unchanged file is parsed once, however many commands ask for the config."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from localmind_jupyter.config import load_config
from localmind_jupyter.config_yaml import MAX_DEPTH, cache_info
from localmind_jupyter.errors import ConfigError

KNOWN = ["anthropic", "gguf", "ollama", "openai", "transformers"]


def billion_laughs() -> str:
    """Under 1 KB; expanded, 9**7 (4.8 million) strings under backends.ollama.settings."""
    lines = ["backends:", "  ollama:", "    settings:"]
    lines.append('      a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    previous = "a"
    for name in "bcdefg":
        lines.append(f"      {name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join(lines) + "\n"


def write(home: Path, text: str) -> Path:
    path = home / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> tuple[ConfigError, float]:
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(known_types=KNOWN)
    return info.value, time.perf_counter() - start


def test_billion_laughs_is_refused_at_once_with_file_line_and_fix(isolated_home):
    text = billion_laughs()
    assert len(text.encode()) < 1024
    path = write(isolated_home, text)
    error, took = refused(path)
    assert took < 0.5, f"took {took:.2f} s"
    message = str(error)
    assert message.startswith(f"{path}, line ")
    assert "YAML aliases (*name) expand this file to more than 10000 values" in message
    assert "write the values out" in message
    assert error.line is not None and 4 <= error.line <= 10


@pytest.mark.parametrize(
    "text, expected",
    [
        ("backends: " + "[" * 500 + "]" * 500 + "\n", "nested more than 32 levels"),
        ("backends:\n  x: " + "{a: " * 300 + "1" + "}" * 300 + "\n", "nested more than 32"),
        ("backends: " + "[" * 400 + "\n", "nested more than 32 levels"),  # never closed
        ("backends:\n  ollama:\n    settings: &s {loop: *s}\n", "refers to a value that contains"),
        ("timeouts:\n  read: " + "9" * 5000 + "\n", "invalid value: Exceeds the limit"),
    ],
    ids=["deep-flow-list", "deep-flow-map", "unclosed", "alias-loop", "huge-integer"],
)
def test_other_exhausting_shapes_get_a_clear_error(isolated_home, text, expected):
    path = write(isolated_home, text)
    error, took = refused(path)
    assert took < 1.0, f"took {took:.2f} s"
    assert expected in str(error) and str(path) in str(error)
    assert error.line is not None


def test_aliases_nest_no_deeper_than_the_limit(isolated_home):
    inner = "[" * 20 + "1" + "]" * 20
    outer = "[" * 14 + "*a" + "]" * 14
    path = write(isolated_home, f"backends:\n  ollama:\n    settings:\n      a: &a {inner}\n")
    assert load_config(known_types=KNOWN).backends["ollama"].settings["a"]
    path.write_text(path.read_text() + f"      b: {outer}\n")
    error, _ = refused(path)
    assert f"nested more than {MAX_DEPTH} levels" in str(error) and error.line == 5


def test_a_huge_file_is_refused_before_it_is_read(isolated_home):
    path = write(isolated_home, "# padding\n" * 120_000)  # 1.2 MB
    error, took = refused(path)
    assert "a config file may have at most 1 MB" in str(error) and took < 0.5


def test_ordinary_anchors_and_merge_keys_still_work(isolated_home):
    write(
        isolated_home,
        textwrap.dedent(
            """
            backends:
              near: &local
                type: ollama
                settings: {base_url: "http://127.0.0.1:1", headers: &h {X-Team: ml}}
              far:
                <<: *local
                enabled: false
              other:
                type: ollama
                settings: {headers: *h}
            """
        ),
    )
    config = load_config(known_types=KNOWN)
    assert config.backends["far"].type == "ollama" and not config.backends["far"].enabled
    assert config.backends["far"].settings["base_url"] == "http://127.0.0.1:1"
    assert config.backends["other"].settings == {"headers": {"X-Team": "ml"}}
    # Each load gets its own values: changing one config does not change the next.
    config.backends["other"].settings["headers"]["X-Team"] = "changed"
    assert load_config(known_types=KNOWN).backends["other"].settings["headers"]["X-Team"] == "ml"


def test_an_unchanged_file_is_parsed_once_and_an_edit_is_seen(isolated_home):
    path = write(isolated_home, "default_model: ollama:aaaa\n")
    before = cache_info()["parses"]
    assert load_config(known_types=KNOWN).default_model == "ollama:aaaa"
    assert load_config(known_types=KNOWN).default_model == "ollama:aaaa"
    assert cache_info()["parses"] == before + 1
    # Same size, same modification time: still seen, the cache is keyed by the text.
    stat = path.stat()
    path.write_text("default_model: ollama:bbbb\n", encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_config(known_types=KNOWN).default_model == "ollama:bbbb"
    assert cache_info()["parses"] == before + 2


# --- through the magic: every command asks for the config ------------------------------------


@pytest.fixture
def ip(isolated_home: Path):
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("unload_ext", "localmind_jupyter")
    shell.run_line_magic("load_ext", "localmind_jupyter")
    yield shell
    shell.run_line_magic("unload_ext", "localmind_jupyter")


def test_commands_with_a_billion_laughs_config_answer_at_once(ip, isolated_home, capsys):
    path = write(isolated_home, billion_laughs())
    before = cache_info()["parses"]
    start = time.perf_counter()
    for command in ("backends", "config", "models", "backends"):
        ip.run_line_magic("localmind", command)
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert took < 2.0, f"four commands took {took:.2f} s"
    assert err.count("YAML aliases (*name) expand this file") == 4 and "Traceback" not in err
    assert cache_info()["parses"] == before + 1, "an unchanged file was parsed again"
    # Fixed: the next command reads the new file, no reload needed.
    path.write_text("default_model: ollama:fixed\n", encoding="utf-8")
    ip.run_line_magic("localmind", "config")
    assert "ollama:fixed" in capsys.readouterr().out
    assert cache_info()["parses"] == before + 2


def test_reload_parses_only_an_edited_file(ip, isolated_home, capsys):
    path = write(isolated_home, "default_model: ollama:first\n")
    ip.run_line_magic("localmind", "config")
    before = cache_info()["parses"]
    ip.run_line_magic("localmind", "reload")
    ip.run_line_magic("localmind", "config")
    assert cache_info()["parses"] == before
    path.write_text("default_model: ollama:second\n", encoding="utf-8")
    ip.run_line_magic("localmind", "config")
    assert "ollama:second" not in capsys.readouterr().out  # a good config stays until reload
    ip.run_line_magic("localmind", "reload")
    ip.run_line_magic("localmind", "config")
    assert "ollama:second" in capsys.readouterr().out
    assert cache_info()["parses"] == before + 1
