"""``%%localmind --over`` in a terminal IPython: every generation option reaches each row.

The notebook side (progress widget, interrupt, resume) is tested in a real kernel in
test_magic_batch_kernel.py.
"""

from __future__ import annotations

import pytest

from tests.test_magic_shell import ask, chat_bodies, ip, servers  # noqa: F401 - fixtures

pd = pytest.importorskip("pandas")


def test_every_option_reaches_every_row_and_o_keeps_the_result(ip, servers, capsys):  # noqa: F811
    ollama_server, _ = servers
    ip.user_ns["df"] = pd.DataFrame({"p": ["one", "two", "three"]})
    ask(
        ip,
        "--over df --into out -t 0.2 --top-p 0.9 --seed 3 --max-tokens 40 --stop END "
        '-s "be brief" --option num_ctx=512 -o res',
        "Say: {p}",
    )
    captured = capsys.readouterr()
    assert "3 of 3 rows answered into df['out']" in captured.out
    bodies = chat_bodies(ollama_server)
    assert len(bodies) == 3
    for body in bodies:
        assert body["options"] == {
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 3,
            "num_predict": 40,
            "stop": ["END"],
            "num_ctx": 512,
        }
        assert body["messages"][0] == {"role": "system", "content": "be brief"}
        assert len(body["messages"]) == 2, "a row carried chat history"
    assert ip.user_ns["df"]["out"].tolist() == [
        f"You said: Say: {w}" for w in ("one", "two", "three")
    ]
    result = ip.user_ns["res"]
    assert len(result) == 3 and result is ip.user_ns["_localmind"]
    assert result.texts == ip.user_ns["df"]["out"].tolist()


def test_the_kernels_model_and_think_reach_an_openai_backend(ip, servers, capsys):  # noqa: F811
    _, openai_server = servers
    ip.run_line_magic("localmind", "use remote:gpt-test")
    ip.user_ns["df"] = pd.DataFrame({"p": ["a", "b"]})
    ask(ip, "--over df --into out --think low", "Say: {p}")
    assert "2 of 2 rows answered into df['out']" in capsys.readouterr().out
    bodies = [b for _m, path, _h, b in openai_server.requests if path.endswith("/chat/completions")]
    assert len(bodies) == 2
    assert all(b["model"] == "gpt-test" and b["reasoning_effort"] == "low" for b in bodies)
    assert ip.user_ns["df"]["out"].notna().all()


def test_a_bad_cell_in_a_terminal_is_one_line_on_stderr(ip, servers, capsys):  # noqa: F811
    ollama_server, _ = servers
    ip.user_ns["df"] = pd.DataFrame({"p": ["a"]})
    ask(ip, "--over df --into out", "Say {q}")
    err = capsys.readouterr().err
    assert "the template names {q}" in err and "columns: p" in err
    assert "Traceback" not in err
    assert chat_bodies(ollama_server) == []


def test_with_the_log_off_the_summary_does_not_promise_a_resume(ip, servers, capsys):  # noqa: F811
    from localmind_jupyter.paths import config_path

    ollama_server, _ = servers
    path = config_path()  # written by the servers fixture: turn the answer log off in it
    path.write_text("log: false\n" + path.read_text())
    ip.run_line_magic("localmind", "reload")
    capsys.readouterr()
    ollama_server.fault_for_prompt("Say: b", "in-band error", exact=True, after=1)
    ip.user_ns["df"] = pd.DataFrame({"p": ["a", "b"]})
    ask(ip, "--over df --into out", "Say: {p}")
    out = capsys.readouterr().out
    assert "1 of 2 rows answered into df['out']" in out
    assert "1 row failed (left empty): _localmind.errors says why" in out
    assert "run the cell again" not in out
