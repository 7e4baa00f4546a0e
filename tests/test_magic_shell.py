"""``%%localmind`` and ``%localmind`` driven through a real IPython InteractiveShell.

A shell without a kernel is a terminal IPython: answers are printed as they stream.
Display behaviour in a notebook is tested through a real kernel in test_magic_kernel.py.
"""

from __future__ import annotations

import _thread
import re
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import free_port


@pytest.fixture
def ip(isolated_home: Path):
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("unload_ext", "localmind_jupyter")
    shell.run_line_magic("load_ext", "localmind_jupyter")
    for name in ("answer", "data", "_localmind"):
        shell.user_ns.pop(name, None)
    shell.rl_next_input = None
    yield shell
    shell.run_line_magic("unload_ext", "localmind_jupyter")


@pytest.fixture
def servers(isolated_home: Path, ollama_server, openai_server):
    (isolated_home / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            default_model: ollama:smollm:135m
            backends:
              ollama:
                settings: {{base_url: "{ollama_server.url}"}}
              remote:
                type: openai
                settings:
                  base_url: "{openai_server.base_url}"
                  api_key: sk-test-secret-123456
            """
        )
    )
    return ollama_server, openai_server


def chat_bodies(server) -> list[dict]:
    return [body for _m, path, body in server.requests if path == "/api/chat"]


def ask(ip, line: str, cell: str) -> None:
    ip.run_cell_magic("localmind", line, cell)


def test_answer_streams_to_the_terminal_with_footer(ip, servers, capsys):
    ask(ip, "", "hello there")
    out = capsys.readouterr().out
    assert "You said: hello there\n" in out
    assert "[ollama:smollm:135m · 4 tokens · first token" in out
    response = ip.user_ns["_localmind"]
    assert response.text == "You said: hello there"
    assert response.backend == "ollama"


def test_footer_counts_pieces_when_the_server_sends_no_usage(ip, servers, capsys):
    _ollama, openai_server = servers
    openai_server.include_usage_ignored = True  # as llama.cpp's server
    openai_server.token_delay = 0.01
    ask(ip, "remote:gpt-test", "one two three")
    out = capsys.readouterr().out
    assert "[remote:gpt-test · ~5 tokens · first token" in out
    assert re.search(r" · ~\d+\.\d tokens/s · ", out)
    assert ip.user_ns["_localmind"].tokens_approximate is True


def test_footer_after_an_interrupt_counts_what_arrived(ip, servers, capsys):
    ollama_server, _openai = servers
    ollama_server.token_delay = 0.05

    def interrupt_after_four_pieces() -> None:
        deadline = time.monotonic() + 5
        while ollama_server.chunks_sent < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        if ollama_server.chunks_sent >= 4:  # mid-answer: the answer takes 3 s in all
            _thread.interrupt_main()  # what Ctrl-C / the kernel's interrupt does

    threading.Thread(target=interrupt_after_four_pieces, daemon=True).start()
    ask(ip, "", " ".join(["word"] * 60))
    out = capsys.readouterr().out
    response = ip.user_ns["_localmind"]
    assert response.finish_reason == "cancelled" and response.tokens_approximate is True
    count = response.completion_tokens
    assert count == len(response.text.split()) >= 2  # one word a piece
    assert f"[ollama:smollm:135m · ~{count} tokens · first token" in out
    assert "stopped" in out


def test_named_model_forms_and_no_stats(ip, servers, capsys):
    ask(ip, "remote:gpt-test --no-stats", "one")
    ask(ip, "-b remote -m smol-chat --no-stats", "two")
    ask(ip, "smol-chat --no-stats", "three")  # a bare name found among installed models
    out = capsys.readouterr().out
    assert out.count("You said:") == 3
    assert "tokens" not in out
    _ollama, openai_server = servers
    models = [body["model"] for _m, path, _h, body in openai_server.requests if body]
    assert models == ["gpt-test", "smol-chat", "smol-chat"]


def test_options_reach_the_backend(ip, servers):
    ollama_server, _ = servers
    ask(
        ip,
        '-t 0.2 --top-p 0.9 --seed 3 --max-tokens 40 --stop END --stop "two words" -s "be brief"',
        "q",
    )
    body = chat_bodies(ollama_server)[-1]
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 3,
        "num_predict": 40,
        "stop": ["END", "two words"],
    }
    assert body["messages"][0] == {"role": "system", "content": "be brief"}


def test_output_variable_and_formats(ip, servers, capsys):
    ollama_server, _ = servers
    ask(ip, "-o answer --no-stats", "store me")
    assert ip.user_ns["answer"] == "You said: store me"

    ollama_server.reply_pieces = ['{"city": ', '"Paris", ', '"n": 2}']
    ask(ip, "-f json -o data --no-stats", "json please")
    assert ip.user_ns["data"] == {"city": "Paris", "n": 2}

    ollama_server.reply_pieces = ["not ", "json ", "at all"]
    ask(ip, "-f json -o data --no-stats", "json please")
    captured = capsys.readouterr()
    assert "not valid JSON" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert ip.user_ns["data"] == "not json at all"

    ollama_server.reply_pieces = ["Here:\n", "```python\n", "print('hi')\n", "```\n", "Done."]
    ask(ip, "-f code -o answer --no-stats", "code please")
    assert ip.user_ns["answer"] == "print('hi')"
    assert ip.rl_next_input == "print('hi')"


def test_json_answer_with_a_number_past_pythons_int_limit_keeps_the_raw_text(ip, servers, capsys):
    """json.loads raises a plain ValueError (no .msg/.lineno) for a 5000-digit integer."""
    ollama_server, _ = servers
    digits = "1" * 5000
    ollama_server.reply_pieces = ['{"n": ', digits, "}"]
    ask(ip, "-f json -o data --no-stats", "a big number")
    captured = capsys.readouterr()
    assert "not valid JSON" in captured.out
    assert "integer string conversion" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert ip.user_ns["data"] == '{"n": ' + digits + "}"


def test_json_answer_nested_too_deep_keeps_the_raw_text(ip, servers, capsys):
    """``[[[[…]]]]`` 100,000 deep makes json.loads raise RecursionError: a note, not a traceback."""
    ollama_server, _ = servers
    depth = 100_000
    ollama_server.reply_pieces = ["[" * depth, "]" * depth]
    ask(ip, "-f json -o data --no-stats", "deep")
    captured = capsys.readouterr()
    assert "not valid JSON" in captured.out and "nested too deep" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert ip.user_ns["data"] == "[" * depth + "]" * depth


def test_interpolation_fills_names_and_keeps_braces(ip, servers, capsys):
    ollama_server, _ = servers
    ip.user_ns["city"] = "Lyon"
    ip.user_ns["cfg"] = {"a": {"b": 1}}
    ask(ip, "--no-stats --no-history", "Tell me about {city} with {cfg} and {{literal}} {nope}")
    sent = chat_bodies(ollama_server)[-1]["messages"][-1]["content"]
    assert sent == "Tell me about Lyon with {'a': {'b': 1}} and {literal} {nope}"
    out = capsys.readouterr().out
    assert "{nope}" in out and out.count("not filled") == 1
    ask(ip, "--no-stats --no-interpolate --no-history", "keep {city}")
    assert chat_bodies(ollama_server)[-1]["messages"][-1]["content"] == "keep {city}"


def test_code_with_braces_is_sent_unchanged(ip, servers):
    ollama_server, _ = servers
    code = "def f(d):\n    return {k: v for k, v in d.items()}  # {comment}\n"
    ask(ip, "--no-stats --no-history", f"Explain:\n{code}")
    assert chat_bodies(ollama_server)[-1]["messages"][-1]["content"] == f"Explain:\n{code}".strip(
        "\n"
    )


def test_history_reset_and_no_history(ip, servers):
    ollama_server, _ = servers
    ask(ip, "--no-stats", "first")
    ask(ip, "--no-stats", "second")
    messages = chat_bodies(ollama_server)[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == "You said: first"
    ask(ip, "--no-stats --no-history", "alone")
    assert len(chat_bodies(ollama_server)[-1]["messages"]) == 1
    ip.run_line_magic("localmind", "reset")
    ask(ip, "--no-stats", "fresh")
    assert len(chat_bodies(ollama_server)[-1]["messages"]) == 1
    # Another model starts its own conversation.
    ask(ip, "ollama:qwen2.5:0.5b --no-stats", "other")
    assert len(chat_bodies(ollama_server)[-1]["messages"]) == 1


def test_history_is_bounded_by_max_history(ip, servers):
    ollama_server, _ = servers
    ip.run_line_magic("config", "LocalMind.max_history = 2")
    for word in ("a", "b", "c", "d"):
        ask(ip, "--no-stats", word)
    messages = chat_bodies(ollama_server)[-1]["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["b", "c", "d"]


def test_use_alias_and_traitlets_default(ip, servers, capsys):
    ollama_server, openai_server = servers
    ip.run_line_magic("localmind", "use remote:gpt-test")
    ask(ip, "--no-stats", "via use")
    ip.run_line_magic("localmind", "alias qw ollama:qwen2.5:0.5b")
    ask(ip, "qw --no-stats", "via alias")
    assert chat_bodies(ollama_server)[-1]["model"] == "qwen2.5:0.5b"
    ip.run_line_magic("localmind", "unalias qw")
    ask(ip, "qw --no-stats", "gone")
    out = capsys.readouterr()
    assert "no enabled backend has a model named 'qw'" in out.err
    assert openai_server.last_params["model"] == "gpt-test"


def test_expected_failures_show_one_message(ip, servers, capsys):
    ollama_server, _ = servers
    ask(ip, "ollama:llama9:70b", "hi")
    ask(ip, "-t hot", "hi")
    ask(ip, "", "   ")
    ollama_server.fail_status = 500
    ask(ip, "", "hi")
    err = capsys.readouterr().err
    assert "model 'llama9:70b' is not installed in Ollama" in err
    assert "%localmind pull llama9:70b" in err
    assert "argument -t/--temperature" in err
    assert "the cell is empty" in err
    assert "HTTP 500" in err
    assert "Traceback" not in err


def test_backend_down_and_broken_config(ip, isolated_home, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    (isolated_home / "config.yaml").write_text(
        f"backends:\n  ollama:\n    settings: {{base_url: '{dead}'}}\n"
    )
    ask(ip, "ollama:smollm:135m", "hi")
    err = capsys.readouterr().err
    assert f"Ollama is not running at {dead}" in err and "ollama serve" in err

    (isolated_home / "config.yaml").write_text("backends:\n  ollama: [oops\n")
    ip.run_line_magic("localmind", "reload")
    ask(ip, "", "hi")
    err = capsys.readouterr().err
    assert "config.yaml, line 3" in err and "invalid YAML" in err
    assert "Traceback" not in err


def test_drop_mid_stream_keeps_partial_answer(ip, servers, capsys):
    ollama_server, _ = servers
    ollama_server.drop_after = 2
    ask(ip, "-o answer", "a b c d e")
    captured = capsys.readouterr()
    assert "You said: " in captured.out
    assert "dropped mid-answer" in captured.err
    assert ip.user_ns["answer"] == "You said: "
    assert ip.user_ns["_localmind"].text == "You said: "


def test_no_stream(ip, servers, capsys):
    ask(ip, "--no-stream --no-stats", "whole")
    assert "You said: whole" in capsys.readouterr().out


def test_line_commands(ip, servers, capsys):
    ip.run_line_magic("localmind", "backends")
    ip.run_line_magic("localmind", "models ollama --installed")
    ip.run_line_magic("localmind", "models --tag code --search coder")
    ip.run_line_magic("localmind", "version")
    ip.run_line_magic("localmind", "stats")
    ip.run_line_magic("localmind", "config")
    ip.run_line_magic("localmind", "help")
    ip.run_line_magic("localmind", "frobnicate")
    ip.run_line_magic("localmind", "models nowhere")
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert "ollama" in out and "available" in out and "disabled" not in out.split("openai")[0]
    assert "smollm:135m" in out and "qwen2.5:0.5b" in out
    assert "qwen2.5-coder" in out
    assert "localmind-jupyter 0.1.0" in out
    assert "no answer yet" in out
    assert "sk-test-secret-123456" not in out
    assert "api_key: '****'" in out
    assert "%localmind pull" in out
    assert "unknown command 'frobnicate'" in err
    assert "no backend named 'nowhere'" in err


def test_pull_shows_progress_and_errors(ip, servers, capsys):
    ollama_server, _ = servers
    ip.run_line_magic("localmind", "pull tinyllama")
    ip.run_line_magic("localmind", "pull no-such-model:1b")
    captured = capsys.readouterr()
    assert "ollama:tinyllama: done · 1.3 MB / 1.3 MB · 100 %" in captured.out
    assert "is ready" in captured.out
    assert "not in the Ollama library" in captured.err
    assert "tinyllama:latest" in [m for m in ollama_server.installed]


def test_help_is_generated_from_the_arguments(ip):
    doc = ip.find_cell_magic("localmind").__doc__
    for option in ("--format", "--max-tokens", "--no-history", "--output", "--stop", "--seed"):
        assert option in doc


def test_load_ext_is_cheap(isolated_home):
    """Loading the extension imports no backend library and builds no backend."""
    import json
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'localmind_jupyter')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    heavy = {"torch", "transformers", "openai", "anthropic", "httpx", "huggingface_hub"}
    # The sanitizer's libraries load with the first answer, not with the extension.
    heavy |= {"nh3", "markdown_it", "mdit_py_plugins"}
    assert not loaded & heavy


def test_embedded_default_model_answers_with_no_server(ip, isolated_home, capsys):
    """A fresh install: no config, no server, no key; llama-cpp-python installed, so the
    bundled model answers through llama.cpp, and its Transformers spec still works."""
    ask(ip, "--max-tokens 24 -o answer", "What is the capital of France? Answer in one sentence.")
    assert "Paris" in ip.user_ns["answer"]
    assert ip.user_ns["_localmind"].backend == "gguf"
    assert "gguf:smollm2-135m-instruct" in capsys.readouterr().out
    prompt = "What is the capital of France? Answer in one sentence."
    ask(ip, "transformers:smollm2-135m-instruct --max-tokens 24 -o answer", prompt)
    assert "Paris" in ip.user_ns["answer"]
    assert ip.user_ns["_localmind"].backend == "transformers"
    assert "transformers:smollm2-135m-instruct" in capsys.readouterr().out


def test_html_math_and_text_formats(ip, servers, capsys):
    from localmind_jupyter.magics.render import finalize

    ollama_server, _ = servers
    ollama_server.reply_pieces = ["<b>bold</b> ", "answer"]
    ask(ip, "-f html -o answer --no-stats", "html please")
    assert ip.user_ns["answer"] == "<b>bold</b> answer"
    assert finalize("<b>x</b>", "html").bundle["text/html"] == "<b>x</b>"  # sanitized, still bold
    assert finalize(r"e^{i\pi} + 1 = 0", "math").bundle["text/latex"] == r"$$e^{i\pi} + 1 = 0$$"
    assert finalize("$x^2$", "math").bundle["text/latex"] == "$x^2$"
    assert "text/markdown" not in finalize("plain", "text").bundle
    assert "<b>bold</b> answer" in capsys.readouterr().out


def test_in_out_and_err_of_earlier_cells(ip, servers):
    ollama_server, _ = servers
    ip.run_cell("40 + 2", store_history=True)
    out_number = ip.execution_count - 1
    ip.run_cell("1 / 0", store_history=True)
    err_number = ip.execution_count - 1
    ask(ip, "--no-stats --no-history", f"Explain {{In[{out_number}]}} = {{Out[{out_number}]}}")
    assert chat_bodies(ollama_server)[-1]["messages"][-1]["content"] == "Explain 40 + 2 = 42"
    ask(ip, "--no-stats --no-history", f"Why {{Err[{err_number}]}}?")
    sent = chat_bodies(ollama_server)[-1]["messages"][-1]["content"]
    assert sent == "Why ZeroDivisionError: division by zero?"


BAD_OUTPUT_NAMES = [
    "__builtins__",
    "__name__",
    "In",
    "Out",
    "get_ipython",
    "exit",
    "quit",
    "_ih",
    "_oh",
    "_",
    "___",
    "_i3",
    "_7",
    "_localmind",
    "class",
    "2fast",
    "a-b",
    "x.y",
]


def test_output_names_that_would_break_the_kernel_are_refused(ip, servers, capsys):
    ollama_server, _ = servers
    builtins, get_ipython = ip.user_ns["__builtins__"], ip.user_ns["get_ipython"]
    for name in BAD_OUTPUT_NAMES:
        ask(ip, f"-o {name} --no-stats", "hi")
        err = capsys.readouterr().err
        assert f"-o {name}" in err and "e.g. -o answer" in err, (name, err)
        assert "Traceback" not in err
    assert not chat_bodies(ollama_server), "a refused -o still generated"
    assert ip.user_ns["__builtins__"] is builtins and ip.user_ns["get_ipython"] is get_ipython
    assert ip.run_cell("len('still works')").result == 11
    ask(ip, "-o _answer2 --no-stats", "fine")
    assert ip.user_ns.pop("_answer2") == "You said: fine"


def test_failure_before_the_first_piece_prints_only_the_error(ip, servers, capsys):
    ollama_server, _ = servers
    ollama_server.fail_status = 500
    ask(ip, "-o answer", "hi")
    captured = capsys.readouterr()
    assert "HTTP 500" in captured.err
    assert captured.out == "", "an empty answer or a footer was printed around the error"
    assert "answer" not in ip.user_ns


def test_seed_out_of_range_is_one_line_with_transformers(ip, isolated_home, capsys):
    """The bundled model through Transformers: torch once raised an 8-frame traceback."""
    model = "transformers:smollm2-135m-instruct"
    ask(ip, f"{model} --seed 1000000000000000000000000000000 -t 0.7 --max-tokens 4", "hi")
    captured = capsys.readouterr()
    assert "seed must be an integer from 0 to 2147483647" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.count("\n") == 1
    ask(ip, f"{model} --seed 2147483647 -t 0.7 --max-tokens 4 --no-stats -o answer", "hi")
    assert ip.user_ns["answer"] and ip.user_ns["_localmind"].backend == "transformers"
