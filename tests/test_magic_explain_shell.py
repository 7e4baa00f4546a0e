"""``%localmind explain`` in a terminal IPython: its options, the model it picks, the
official OpenAI client sending a traceback that held the key, and bad arguments."""

from __future__ import annotations

from tests.test_magic_shell import chat_bodies, ip, servers  # noqa: F401 - the fixtures, shared

KEY = "sk-test-secret-123456"  # the key the servers fixture configures for "remote"


def openai_chats(server) -> list[dict]:
    return [body for _m, path, _h, body in server.requests if path.endswith("/chat/completions")]


def test_options_and_the_chosen_model_reach_the_request_and_the_key_does_not(
    ip,  # noqa: F811
    servers,  # noqa: F811
    capsys,
):
    ollama_server, openai_server = servers
    ip.run_line_magic("localmind", "use remote:gpt-test")  # explain uses the current model
    ip.run_cell(
        f"api = {{'token': '{KEY}'}}\nraise PermissionError(f'key {{api}} refused')",
        store_history=True,
    )
    capsys.readouterr()
    ip.run_line_magic("localmind", "explain -t 0.5 --max-tokens 60 --seed 7 --no-stats")
    out = capsys.readouterr().out
    body = openai_chats(openai_server)[-1]
    assert body["model"] == "gpt-test"
    assert (body["temperature"], body["seed"]) == (0.5, 7)
    assert 60 in (body.get("max_tokens"), body.get("max_completion_tokens"))
    prompt = body["messages"][-1]["content"]
    assert "PermissionError: key {'token': '****'} refused" in prompt
    assert KEY not in str(body) and KEY not in out
    assert "You said: Explain this error to a learner" in out
    assert "[remote:gpt-test" not in out, "--no-stats"
    assert not chat_bodies(ollama_server)

    ip.run_line_magic("localmind", "explain -m ollama:smollm:135m --no-history")
    assert "PermissionError" in chat_bodies(ollama_server)[-1]["messages"][-1]["content"]


def test_bad_arguments_are_one_line(ip, servers, capsys):  # noqa: F811
    ip.run_cell("1 / 0", store_history=True)
    capsys.readouterr()
    for line, expected in (
        ("explain five", "expected a cell number (the N of In [N], e.g. explain 5), got 'five'"),
        ("explain 0", "expected a cell number"),
        ("explain 1 --into label", "unrecognized arguments: --into label"),
    ):
        ip.run_line_magic("localmind", line)
        captured = capsys.readouterr()
        assert expected in captured.err, (line, captured)
        assert "Traceback" not in captured.err + captured.out
