"""Every error message the docs list is one the code can emit.

The matcher is simple. A documented message (the first backticked text of a row in
``docs/troubleshooting.md``'s tables, and each line of the example block in
``docs/configuration.md`` § Errors) is cut into fragments at its placeholders: ``…`` /
``...``, quoted names (``'x'``), ``{x}``, URLs and the word ``URL``, file paths, numbers,
and the one-letter placeholders ``N``, ``M``, ``S``, ``X``, ``x``, ``a``, ``b``. The code's
text is the literal parts of every string constant and f-string in ``localmind_jupyter/``
(found with ``ast``; backticks and runs of spaces ignored). A fragment of at least
``MIN_FRAGMENT`` characters must then read as the code would write it: a run of whole
literal parts with single words (the values of ``{...}`` fields, such as a backend's
name or a key) between them, which may begin inside one literal part and end inside
another, since the docs may shorten a message. Values may make up at most
``MAX_VALUES`` of a fragment, so a reworded message does not pass as a string of values.
A phrase that another library or server writes (quoted inside LocalMind's message) is
on ``FOREIGN`` with its source, and rows that show how output looks rather than a
message are on ``NOT_OURS``.
"""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import REPO

MIN_FRAGMENT = 4
MAX_VALUES = 0.4

#: First backticked text of a row -> why the code does not hold it.
NOT_OURS = {
    "http://****@host…": "not a message: how a masked URL looks in any message",
    "<tag>": "not a message: raw HTML of an answer shown as text",
}

#: Text another program writes, which LocalMind quotes inside its own message -> its source.
FOREIGN = {
    "pull model manifest: file does not exist": "Ollama's server",
    "Requested tokens (N) exceed context window of 2048": "llama.cpp",
    "Exceeds the limit (4300 digits) for integer string conversion": "Python's int()",
    "expected ',' or ']'": "PyYAML's parser",
    "Input should be a valid number": "pydantic",
    "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
    "'json_object'.": "OpenAI's API",
    "Invalid schema for response_format": "OpenAI's API",
}

_PLACEHOLDER = re.compile(
    r"…|\.\.\."  # an elided part
    r"|'[^']*'"  # a quoted name: 'x', 'owner/name'
    r"|\{[^}]*\}"  # a variable in braces: {x}
    r"|https?://\S+|\bURL\b"  # an address
    r"|\S*/\S*\.yaml"  # a config file path
    r"|\d+(?:\.\d+)?"  # a number
    r"|\b[NMSXxab]\b"  # a one-letter placeholder
)


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("`", ""))


def _literal_parts() -> str:
    """Every literal part of the package's strings, each between NULs: ``\0a\0b\0``."""
    parts: set[str] = set()
    for path in sorted((REPO / "localmind_jupyter").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.JoinedStr):
                parts.update(str(v.value) for v in node.values if isinstance(v, ast.Constant))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                parts.add(node.value)
    return "\0" + "\0".join(sorted(_normal(p) for p in parts)) + "\0"


PARTS = _literal_parts()


def _can_be_value(fragment: str, start: int, end: int) -> bool:
    """A whole name or key (``top_k``, ``a.b``), or a word set in punctuation (``.NAME.``).

    A plain word between spaces is not (it is the message's own wording), nor part of a word.
    """
    before = fragment[start - 1] if start > 0 else " "
    after = fragment[end] if end < len(fragment) else " "
    if before.isalnum() or after.isalnum():
        return False
    glued = not before.isspace() or not after.isspace()
    return glued or bool(re.search(r"[._/:=\d-]", fragment[start:end]))


def _value_share(fragment: str) -> float:
    """The smallest share of ``fragment`` that must be values for the code to write it.

    Dynamic programming over positions: a step is a whole literal part, or one value (a
    word that ``_can_be_value`` allows); the fragment may start with the end of a part and
    stop with the start of one. Above 1.0 when the code cannot write it at all.
    """
    if fragment in PARTS:
        return 0.0
    n = len(fragment)
    cost = [float(n + 1)] * (n + 1)
    for end in range(1, n + 1):  # the fragment begins with the end of a literal part
        if fragment[:end] + "\0" in PARTS:
            cost[end] = 0
    cost[0] = 0
    best = float(n + 1)
    for pos in range(n):
        if cost[pos] > n:
            continue
        if "\0" + fragment[pos:] in PARTS:  # ... and ends with the start of one
            best = min(best, cost[pos])
        for end in range(pos + 1, n + 1):
            if "\0" + fragment[pos:end] + "\0" in PARTS:
                cost[end] = min(cost[end], cost[pos])
        end = pos
        while end < n and not fragment[end].isspace():
            end += 1
            if _can_be_value(fragment, pos, end):
                cost[end] = min(cost[end], cost[pos] + end - pos)
    return min(best, cost[n]) / n


def _documented() -> list[str]:
    messages = []
    for line in (REPO / "docs" / "troubleshooting.md").read_text().splitlines():
        first = re.match(r"\| `([^`]+)`", line)
        if first and not line.startswith("| Message"):
            messages.append(first.group(1))
    config = (REPO / "docs" / "configuration.md").read_text()
    (block,) = re.findall(r"## Errors\n.*?```\n(.*?)```", config, flags=re.S)
    messages.extend(block.splitlines())
    return messages


def _fragments(message: str) -> list[str]:
    for phrase in FOREIGN:
        message = message.replace(phrase, "…")
    pieces = (_normal(p).strip() for p in _PLACEHOLDER.split(message))
    return [p for p in pieces if len(p) >= MIN_FRAGMENT]


def test_the_docs_list_messages():
    assert len(_documented()) > 40


@pytest.mark.parametrize(
    "reworded",
    [
        "Ollama is not started at",
        "unknown option(s) top_k; allowed options are",
        "the cell is blank: write the prompt below %%localmind",
        "stopped — the partial answer is kept below",
        "config file missing; create it or unset LOCALMIND_CONFIG",
    ],
)
def test_a_reworded_message_does_not_pass(reworded):
    assert _value_share(reworded) > MAX_VALUES


def test_names_and_keys_may_stand_for_values():
    assert _value_share("Ollama is not running at") == 0
    assert _value_share("default_modle: unknown key; did you mean") <= MAX_VALUES
    assert _value_share("or set backends.ollama.settings.base_url") <= MAX_VALUES


@pytest.mark.parametrize("message", _documented())
def test_documented_message_is_emitted_by_the_code(message):
    if message in NOT_OURS:
        return
    fragments = _fragments(message)
    assert fragments, f"nothing in {message!r} to check: add it to NOT_OURS with the reason"
    drifted = [f for f in fragments if _value_share(f) > MAX_VALUES]
    assert not drifted, f"localmind_jupyter/ cannot write {drifted} (from {message!r})"


def _config_example(prefix: str) -> str:
    config = (REPO / "docs" / "configuration.md").read_text()
    (block,) = re.findall(r"## Errors\n.*?```\n(.*?)```", config, flags=re.S)
    (line,) = [line for line in block.splitlines() if prefix in line]
    return line


@pytest.mark.parametrize(
    ("prefix", "text"),
    [
        ("line 1: default_modle", "default_modle: transformers:smollm2-135m-instruct\n"),
        ("line 2: timeouts.connect", "timeouts:\n  connect: soon\n"),
    ],
)
def test_config_error_examples_are_what_the_reader_says(tmp_path, prefix, text):
    from localmind_jupyter.config import load_config
    from localmind_jupyter.errors import ConfigError

    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    shown = _config_example(prefix).replace("/home/me/.localmind/config.yaml", str(path))
    head, _, tail = shown.partition(" ... ")
    assert str(caught.value).startswith(head) and str(caught.value).endswith(tail)


def test_unknown_type_example_is_what_a_user_sees(tmp_path, monkeypatch):
    """The message names file, line and key, and lists the installed types."""
    from localmind_jupyter.core.model_loader import ModelLoader

    path = tmp_path / "config.yaml"
    path.write_text("backends:\n  mine:\n    type: olama\n")
    monkeypatch.setenv("LOCALMIND_CONFIG", str(path))
    reason = ModelLoader().statuses["mine"].reason
    shown = _config_example("line 3: backends.mine.type")
    head = shown.replace("/home/me/.localmind/config.yaml", str(path)).split("types: ")[0]
    assert reason.startswith(head + "types: ")
    assert reason.endswith("(a plugin package may add more)")
    for backend_type in ("anthropic", "gguf", "ollama", "openai", "tensorrt", "transformers"):
        assert backend_type in reason
