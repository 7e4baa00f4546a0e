"""``%%localmind --schema/--think/--no-think/--option`` and ``-f json``'s JSON mode, in a real
IPython shell (a terminal front end), against a scripted backend put into the session's
loader: what is sent, what is shown, what ``-o`` stores, and each bad input's one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from localmind_jupyter.backends import Usage
from localmind_jupyter.backends._response import Thinking
from tests.scripted_backend import PlainBackend, ScriptedBackend, install

CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}
ANSWER = '{"capital": "Paris", "population_millions": 2.1}'


class Capital(BaseModel):
    capital: str
    population_millions: float


@pytest.fixture
def ip(isolated_home: Path):
    from IPython.testing import globalipapp

    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.run_line_magic("unload_ext", "localmind_jupyter")
    shell.run_line_magic("load_ext", "localmind_jupyter")
    for name in ("answer", "_localmind"):
        shell.user_ns.pop(name, None)
    shell.user_ns.update(Capital=Capital, CAPITAL=CAPITAL)
    yield shell
    shell.run_line_magic("unload_ext", "localmind_jupyter")


@pytest.fixture
def scripted(ip) -> ScriptedBackend:
    backend = install(ScriptedBackend(name="scripted"))
    assert isinstance(backend, ScriptedBackend)
    return backend


def ask(ip, line: str, cell: str = "France?") -> None:
    ip.run_cell_magic("localmind", line, cell)


def test_a_pydantic_schema_is_sent_and_o_stores_the_instance(ip, scripted, capsys):
    scripted.script = ['{"capital": ', '"Paris", "population_millions": 2.1}']
    ask(ip, "scripted:m --schema Capital -o answer")
    assert scripted.sent[0].output_schema.model_class is Capital
    assert ip.user_ns["answer"] == Capital(capital="Paris", population_millions=2.1)
    assert ip.user_ns["_localmind"].parsed == ip.user_ns["answer"]
    out = capsys.readouterr()
    assert ANSWER in out.out and not out.err


def test_a_schema_dict_stores_the_dict(ip, scripted):
    scripted.script = [ANSWER]
    ask(ip, "scripted:m --schema CAPITAL -o answer")
    assert ip.user_ns["answer"] == {"capital": "Paris", "population_millions": 2.1}
    assert scripted.sent[0].output_schema.json_schema == CAPITAL


def test_an_answer_that_does_not_validate_says_why_and_o_keeps_the_raw_text(ip, scripted, capsys):
    scripted.script = ['{"capital": "Paris"}']
    ask(ip, "scripted:m --schema Capital -o answer")
    err = capsys.readouterr().err
    assert "does not match Capital: population_millions" in err
    assert "Traceback" not in err
    assert ip.user_ns["answer"] == '{"capital": "Paris"}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--schema Nowhere", "--schema Nowhere: no variable named 'Nowhere' in the notebook"),
        ("--schema instance", "instance is an instance of Capital; pass the class, not an"),
        ("--schema text", "--schema text: text is a str, not a pydantic BaseModel subclass"),
        ("--schema bad", "not a valid JSON Schema at type"),
        ("--schema Capital -f markdown", "--schema shows the answer as JSON; leave -f markdown"),
        ("--think --no-think", "--think and --no-think contradict each other"),
        ("--think extreme", "invalid choice: 'extreme'"),
        ("--option num_ctx", "--option 'num_ctx': write KEY=VALUE"),
        ("--option num_ctx=1 --option num_ctx=2", "--option num_ctx is given twice"),
        ("--option top_k=3", r"unknown backend option(s) top_k; this backend takes: num_ctx"),
    ],
)
def test_bad_flags_are_one_line_and_nothing_is_sent(ip, scripted, capsys, line, message):
    ip.user_ns.update(
        instance=Capital(capital="x", population_millions=1), text="{}", bad={"type": "objekt"}
    )
    ask(ip, f"scripted:m {line} -o answer")
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert scripted.sent == [] and "answer" not in ip.user_ns


def test_a_backend_that_cannot_enforce_json_or_think_refuses(ip, capsys):
    plain = install(PlainBackend(name="plain"))
    ask(ip, "plain:m --schema Capital")
    assert "cannot constrain its output to JSON" in capsys.readouterr().err
    ask(ip, "plain:m --think")
    assert "has no separate thinking" in capsys.readouterr().err
    assert isinstance(plain, PlainBackend) and plain.sent == []


def test_f_json_asks_for_json_mode_only_where_the_model_has_one(ip, scripted):
    plain = install(PlainBackend(name="plain"))
    assert isinstance(plain, PlainBackend)
    scripted.script = plain.script = ['{"a": [1, 2]}']
    ask(ip, "scripted:m -f json -o answer")
    assert scripted.sent[0].json_mode is True and ip.user_ns["answer"] == {"a": [1, 2]}
    ask(ip, "plain:m -f json -o answer")
    assert plain.sent[0].json_mode is False and ip.user_ns["answer"] == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("line", "think"),
    [("--think", True), ("--think high", "high"), ("--no-think", False), ("", None)],
)
def test_think_flags_reach_the_request(ip, scripted, line, think):
    scripted.script = ["ok"]
    ask(ip, f"scripted:m {line}")
    assert scripted.sent[0].think == think


def test_options_are_parsed_as_json_else_text(ip, scripted):
    scripted.script = ["ok"]
    ask(ip, "scripted:m --option num_ctx=4096 --option 'repeat_penalty={\"a\": true}'")
    assert scripted.sent[0].extra == {"num_ctx": 4096, "repeat_penalty": {"a": True}}
    ask(ip, "scripted:m --option repeat_penalty=high")
    assert scripted.sent[1].extra == {"repeat_penalty": "high"}


def test_thinking_is_shown_apart_and_never_stored(ip, scripted, capsys):
    scripted.script = [
        Thinking("Paris is\x1b]0;pwned\x07 the capital"),
        Thinking("."),
        "Paris.",
        Usage(3, 9, "stop", thinking_tokens=6),
    ]
    ask(ip, "scripted:m --think -o answer")
    out = capsys.readouterr().out
    assert out.index("[thinking]\nParis is]0;pwned the capital.\n[/thinking]\n") < out.index(
        "Paris.\n"
    )
    assert "\x1b" not in out and "\x07" not in out
    assert "9 tokens (6 thinking) · " in out
    assert ip.user_ns["answer"] == "Paris."
    assert ip.user_ns["_localmind"].thinking == "Paris is\x1b]0;pwned\x07 the capital."
    ip.run_line_magic("localmind", "stats")
    table = capsys.readouterr().out
    assert "thinking_tokens" in table and "Paris is" not in table and "parsed" not in table


def test_thinking_that_used_the_budget_warns(ip, scripted, capsys):
    scripted.script = [Thinking("hmm " * 5), Usage(3, 6, "length")]
    ask(ip, "scripted:m --think")
    out = capsys.readouterr().out
    assert "spent the whole token budget (6 tokens) thinking" in out
    assert "--max-tokens" in out


def test_an_interrupt_while_thinking_keeps_the_trace_marked_stopped(ip, scripted, capsys):
    scripted.script = [Thinking("first idea, "), Thinking("second"), KeyboardInterrupt()]
    ask(ip, "scripted:m --think -o answer")
    out = capsys.readouterr().out
    assert "[thinking]\nfirst idea, second\n[/thinking (stopped)]" in out
    assert "stopped — the partial answer is kept above" in out
    response = ip.user_ns["_localmind"]
    assert response.finish_reason == "cancelled"
    assert response.thinking == "first idea, second"


def test_no_stream_shows_the_trace_once_at_the_end(ip, scripted, capsys):
    scripted.script = [Thinking("why"), "because"]
    ask(ip, "scripted:m --think --no-stream")
    out = capsys.readouterr().out
    assert out.count("why") == 1 and out.index("why") < out.index("because")


def test_the_metadata_names_a_pydantic_schema_and_is_json(ip, scripted):
    from localmind_jupyter.magics.magic import _parameters

    params = _parameters({"schema": Capital, "think": "low", "options": {"num_ctx": 1}})
    assert params == {"schema": "Capital", "think": "low", "options": {"num_ctx": 1}}
    json.dumps(params)
