"""``%localmind explain`` in a real kernel, against the Ollama test server (its client):
a cell's real traceback reaches the server trimmed to the learner's frames, the answer
streams in sanitized, the history keeps the labelled turn, and the command's own
failures (nothing failed, a cell that did not fail, the server down) are one message."""

from __future__ import annotations

import re

import pytest

from tests.test_magic_kernel import answer_messages, of_type

pytest.importorskip("jupyter_client")

PAYLOAD = "<script>alert(1)</script> "


def chat_prompts(server) -> list[list[dict]]:
    """The messages of each chat request the server got."""
    return [body["messages"] for _m, path, body in server.requests if path == "/api/chat"]


def count_of(messages: list[dict]) -> int:
    """The execution count of the cell these messages came from."""
    return next(m["content"]["execution_count"] for m in of_type(messages, "execute_input"))


def shown_texts(messages: list[dict]) -> list[str]:
    return [
        m["content"]["data"].get("text/plain", "")
        for m in of_type(messages, "display_data", "update_display_data")
    ]


def printed(messages: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in of_type(messages, "stream"))


def test_explain_sends_the_real_traceback_and_the_answer_streams_in(kernel, ollama_server):
    defined = count_of(kernel.run("def ratio(a, b):\n    return a / b"))
    failed_run = kernel.run("prices = [4, 0]\ntotal = ratio(10, prices[1])")
    assert of_type(failed_run, "error"), "the cell should fail"
    failed = count_of(failed_run)
    words = "You divided by zero: prices[1] is 0, so check it before dividing."
    ollama_server.reply_pieces = [PAYLOAD, *(f"{w} " for w in words.split())]
    ollama_server.token_delay = 0.08

    messages = kernel.run("%localmind explain")

    assert not of_type(messages, "error")
    prompt = chat_prompts(ollama_server)[-1][-1]["content"]
    assert "total = ratio(10, prices[1])" in prompt and "ZeroDivisionError" in prompt
    traceback = re.search(r"```text\n(.*?)\n```", prompt, re.S)
    assert traceback is not None
    assert traceback.group(1) == (
        "Traceback (most recent call last):\n"
        f"  Cell In[{failed}], line 2, in <module>\n"
        "    total = ratio(10, prices[1])\n"
        f"  Cell In[{defined}], line 2, in ratio\n"
        "    return a / b\n"
        "ZeroDivisionError: division by zero"
    ), "the traceback is trimmed to the learner's frames"
    assert "interactiveshell" not in prompt and "site-packages" not in prompt
    # Streamed through display updates, sanitized: the model's <script> is text.
    answer = answer_messages(messages)
    updates = [m for m in answer if m["msg_type"] == "update_display_data"]
    assert len(updates) >= 3, "the answer did not stream"
    final = updates[-1]["content"]
    expected = "".join(ollama_server.reply_pieces)
    assert final["data"]["text/plain"] == expected
    assert "<script>" not in final["data"]["text/html"]
    assert "&lt;script&gt;" in final["data"]["text/html"]
    assert final["metadata"]["localmind"]["model"] == "smollm:135m"
    assert "ollama:smollm:135m ·" in shown_texts(messages)[-1], "the footer"

    # The history holds the labelled turn, not the whole prompt.
    kernel.run("%%localmind\nHow do I fix it?")
    sent = chat_prompts(ollama_server)[-1]
    assert sent[-3] == {"role": "user", "content": f"explain: cell {failed} ZeroDivisionError"}
    assert sent[-2] == {"role": "assistant", "content": expected}
    # The answer log tells the explanation apart.
    check = kernel.run(
        "from localmind_jupyter import log_entries\nprint(list(log_entries(5)['source']))"
    )
    assert printed(check).strip() == "['magic', 'explain']"


def test_explain_n_and_what_it_says_when_there_is_nothing_to_explain(kernel, ollama_server):
    nothing = kernel.run("%localmind explain")
    assert not of_type(nothing, "error")
    assert any("no cell has failed yet in this kernel" in t for t in shown_texts(nothing))
    fine = count_of(kernel.run("x = 1"))
    name_error = count_of(kernel.run("print(undefined_name)"))
    json_error = count_of(kernel.run("import json\njson.loads('{bad')"))
    assert not chat_prompts(ollama_server)

    kernel.run(f"%localmind explain {name_error} --no-history")
    prompt = chat_prompts(ollama_server)[-1][-1]["content"]
    assert "print(undefined_name)" in prompt and "NameError" in prompt
    assert "json" not in prompt

    kernel.run("%localmind explain")  # the last failed cell
    prompt = chat_prompts(ollama_server)[-1][-1]["content"]
    assert re.search(r"\.\.\. 3 frames in json \(raised in json/decoder\.py", prompt)

    for number, problem in ((99, "cell 99 has not run yet"), (fine, f"cell {fine} did not fail")):
        messages = kernel.run(f"%localmind explain {number}")
        assert not of_type(messages, "error")
        expected = f"{problem}; cells that failed: {name_error}, {json_error}"
        assert any(expected in t for t in shown_texts(messages)), shown_texts(messages)
    assert len(chat_prompts(ollama_server)) == 2, "a refused explain sent something"

    shown = printed(kernel.run(f"%localmind explain {name_error} --prompt"))
    assert shown.strip() == prompt_of(ollama_server, 0).strip()
    assert len(chat_prompts(ollama_server)) == 2, "--prompt sent the prompt"


def prompt_of(server, index: int) -> str:
    return chat_prompts(server)[index][-1]["content"]


def test_explain_with_the_server_down_is_one_message(kernel, ollama_server):
    kernel.run("1 / 0")
    ollama_server.stop()
    messages = kernel.run("%localmind explain")
    assert not of_type(messages, "error"), "the failure became a traceback"
    texts = shown_texts(messages)
    assert any("Ollama is not running at" in t for t in texts), texts
