"""``%%localmind --over DF --into COLUMN`` in a real kernel, against the Ollama test server.

The fake model answers ``"You said: <prompt>"``; a prompt starting with ``Rate:`` gets a
JSON record instead (for ``--schema``), and ``slow …`` ten pieces. Rows are made to fail with
the server's own per-prompt faults (``fault_for_prompt``), which it also counts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_magic_kernel import of_type

pytest.importorskip("jupyter_client")
pytest.importorskip("pandas")


def _reply(messages: list[dict[str, Any]]) -> list[str]:
    from tests.servers.ollama_server import default_reply, split_words

    prompt = str(messages[-1].get("content", ""))
    if prompt.startswith("Rate:"):
        review = prompt.removeprefix("Rate:").strip()
        if review == "garbled":
            return ['{"sentiment": ']  # cut short: does not validate
        record = {"sentiment": "positive" if "good" in review else "negative"}
        record["stars"] = len(review.split())
        record["recommended"] = "good" in review
        return [json.dumps(record)]
    return split_words("w " * 10) if prompt.startswith("slow") else default_reply(messages)


@pytest.fixture
def ollama_server() -> Iterator[Any]:
    """The Ollama test server whose smollm:135m answers through ``_reply``."""
    from tests.servers.ollama_server import FakeModel, OllamaTestServer

    with OllamaTestServer([FakeModel("smollm:135m", reply=_reply)]) as srv:
        yield srv


def chats(server: Any) -> list[dict[str, Any]]:
    return [body for _m, path, body in server.requests if path == "/api/chat"]


def shown(messages: list[dict]) -> str:
    """Every text the cell displayed or printed, one per line."""
    texts = [
        m["content"]["data"].get("text/plain", "")
        for m in of_type(messages, "display_data", "update_display_data")
    ]
    texts += [m["content"]["text"] for m in of_type(messages, "stream")]
    return "\n".join(texts)


def value_of(kernel: Any, expression: str) -> Any:
    """``expression`` evaluated in the kernel, brought back as JSON."""
    out = kernel.run(f"import json as _j; print(_j.dumps({expression}, default=str))")
    printed = "".join(m["content"]["text"] for m in of_type(out, "stream"))
    assert not of_type(out, "error"), printed
    return json.loads(printed)


def test_a_five_row_frame_is_filled_in_order(kernel, ollama_server):
    ollama_server.token_delay = 0.02  # the first rows are the longest: they finish last
    kernel.run(
        "import pandas as pd\n"
        "df = pd.DataFrame({'review': [' '.join(['w%d' % i] * (6 - i)) for i in range(5)],"
        " 'n': range(5)})"
    )
    messages = kernel.run("%%localmind --over df --into answer\nSay back: {review}")
    assert not of_type(messages, "error"), shown(messages)
    text = shown(messages)
    assert "5 of 5 rows answered into df['answer']" in text
    reviews = value_of(kernel, "df['review'].tolist()")
    assert value_of(kernel, "df['answer'].tolist()") == [
        f"You said: Say back: {r}" for r in reviews
    ]
    assert value_of(kernel, "list(df.columns)") == ["review", "n", "answer"]
    bodies = chats(ollama_server)
    assert len(bodies) == 5
    assert all(len(body["messages"]) == 1 for body in bodies), "a row carried chat history"
    assert sorted(b["messages"][0]["content"] for b in bodies) == sorted(
        f"Say back: {r}" for r in reviews
    )
    # The batch result is kept: _localmind holds it, one answer per row.
    assert value_of(kernel, "len(_localmind)") == 5
    # Rows never join the conversation: the next plain cell is sent alone.
    kernel.run("%%localmind\nhello")
    assert len(chats(ollama_server)[-1]["messages"]) == 1


def test_schema_fills_typed_columns_and_failed_rows_stay_empty(kernel, ollama_server):
    kernel.run(
        "import pandas as pd\nfrom pydantic import BaseModel\n"
        "class Review(BaseModel):\n    sentiment: str\n    stars: int\n    recommended: bool\n"
        "df = pd.DataFrame({'text': ['good value', 'bad', 'garbled', 'really good stuff']})"
    )
    messages = kernel.run("%%localmind --over df --into r --schema Review -t 0\nRate: {text}")
    assert not of_type(messages, "error"), shown(messages)
    text = shown(messages)
    assert "3 of 4 rows answered into df['r_sentiment'], df['r_stars'], df['r_recommended']" in text
    assert "1 row failed" in text and "_localmind.errors" in text
    dtypes = value_of(kernel, "{c: str(t) for c, t in df.dtypes.items()}")
    assert dtypes["r_stars"] == "Int64"
    assert dtypes["r_recommended"] == "boolean"
    assert dtypes["r_sentiment"] in ("string", "str")
    assert value_of(kernel, "df['r_stars'].tolist()") == [2, 1, "<NA>", 3]
    assert value_of(kernel, "df['r_sentiment'].isna().tolist()") == [False, False, True, False]
    assert value_of(kernel, "df['r_recommended'].tolist()") == [True, False, "<NA>", True]
    errors = value_of(kernel, "_localmind.errors")
    assert list(errors) == ["2"]
    # The schema went to the server as Ollama's format, for every row.
    assert all(isinstance(body.get("format"), dict) for body in chats(ollama_server))


BAD_CELLS = [
    ("--over nope --into label", "{review}", "--over nope: no variable named 'nope'"),
    ("--over items --into label", "{review}", "items is a list, not a pandas DataFrame"),
    ("--over df", "{review}", "--over df needs --into COLUMN"),
    ("--into label", "{review}", "--into needs --over DF"),
    ('--over df --into "my label"', "{review}", "--into my label: not a valid column name"),
    ("--over df --into 2nd", "{review}", "--into 2nd: not a valid column name"),
    ("--over empty --into label", "{review}", "--over empty: the DataFrame has no rows"),
    ("--over df --into label", "Say {revue}", "the template names {revue}"),
    ("--over df --into label", "Same prompt for all", "the template names no column"),
    ("--over df --into review", "Say {review}", "the template reads {review}"),
    ("--over df --into label -f json", "{review}", "-f json cannot be used with --over"),
    ("--over df --into label --no-interpolate", "{review}", "--no-interpolate cannot be used"),
    ("--over df --into label --schema Nope", "{review}", "--schema Nope: no variable named"),
    ("--concurrency 4", "{review}", "--concurrency 4 needs --over DF --into COLUMN"),
    ("--over df --into label --concurrency 0", "{review}", "concurrency must be at least 1"),
]


def test_bad_input_is_one_message_and_nothing_is_sent(kernel, ollama_server):
    kernel.run(
        "import pandas as pd\ndf = pd.DataFrame({'review': ['a', 'b'], 'n': [1, 2]})\n"
        "empty = df.iloc[:0]\nitems = ['a', 'b']"
    )
    for line, body, expected in BAD_CELLS:
        messages = kernel.run(f"%%localmind {line}\n{body}")
        assert not of_type(messages, "error"), f"{line}: a traceback"
        text = shown(messages)
        assert expected in text, f"{line}: {text!r}"
    missing = shown(kernel.run("%%localmind --over df --into label\nSay {revue}"))
    assert "review, n" in missing, "the message should list the frame's columns"
    assert chats(ollama_server) == [], "a bad cell sent a request"
    assert value_of(kernel, "list(df.columns)") == ["review", "n"], "a bad cell changed df"


def test_an_interrupt_keeps_the_finished_rows_and_says_how_to_resume(kernel, ollama_server):
    ollama_server.token_delay = 0.05  # each row: 10 pieces, half a second
    kernel.run("import pandas as pd\ndf = pd.DataFrame({'p': [f'slow {i}' for i in range(24)]})")
    interrupted: list[int] = []

    def interrupt_when_rows_are_done() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Once more rows were sent than run at once, some have finished.
            if len(chats(ollama_server)) >= 6:
                interrupted.append(len(chats(ollama_server)))
                kernel.manager.interrupt_kernel()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=interrupt_when_rows_are_done, daemon=True)
    watcher.start()
    messages = kernel.run("%%localmind --over df --into label\n{p}")
    watcher.join(10)
    assert interrupted, "the batch never got going"
    assert not of_type(messages, "error"), "the interrupt became a traceback"
    text = shown(messages)
    assert "stopped:" in text and "run the cell again" in text, text
    filled = value_of(kernel, "int(df['label'].notna().sum())")
    assert 1 <= filled < 24
    assert value_of(kernel, "df['label'].dropna().unique().tolist()") == ["w " * 10]
    assert f"{filled} of 24 rows answered into df['label']" in text
    # The rows in flight were stopped at the source, not left to run on the server.
    time.sleep(1)
    assert len(chats(ollama_server)) < 24
    assert ollama_server.disconnects >= 1
    # Running the cell again sends only the rows left empty, and fills them.
    ollama_server.token_delay = 0.0
    before = len(chats(ollama_server))
    rerun = shown(kernel.run("%%localmind --over df --into label\n{p}"))
    assert len(chats(ollama_server)) - before == 24 - filled
    assert "24 of 24 rows answered into df['label']" in rerun
    assert f"({filled} from the answer log)" in rerun
    assert value_of(kernel, "int(df['label'].notna().sum())") == 24


def test_a_rerun_sends_only_the_rows_without_an_answer(kernel, ollama_server):
    kernel.run("import pandas as pd\ndf = pd.DataFrame({'p': [f'row {i}' for i in range(5)]})")
    for row in ("row 1", "row 3"):  # an error after the first piece: not retried
        ollama_server.fault_for_prompt(f"Say: {row}", "in-band error", exact=True, after=1)
    cell = "%%localmind --over df --into label\nSay: {p}"
    first = shown(kernel.run(cell))
    assert "3 of 5 rows answered into df['label']" in first
    assert "2 rows failed (left empty): _localmind.errors says why" in first
    assert value_of(kernel, "df['label'].isna().tolist()") == [False, True, False, True, False]
    assert sorted(value_of(kernel, "_localmind.errors")) == ["1", "3"]

    ollama_server.clear_prompt_faults()
    before = ollama_server.prompt_counts
    second = kernel.run(cell)
    assert not of_type(second, "error")
    sent = ollama_server.prompt_counts - before
    assert sent == Counter({"Say: row 1": 1, "Say: row 3": 1}), "a rerun re-sent answered rows"
    assert "5 of 5 rows answered into df['label']" in shown(second)
    assert "(3 from the answer log)" in shown(second)
    assert value_of(kernel, "df['label'].tolist()") == [f"You said: Say: row {i}" for i in range(5)]
