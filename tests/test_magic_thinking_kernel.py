"""In a real kernel: the thinking trace streams into a collapsed block above the answer, and
a structured answer shows as pretty JSON; hostile markup in either never survives, whether
the answer finished, was interrupted or failed."""

from __future__ import annotations

import json

from tests.test_magic_kernel import of_type
from tests.untrusted import audit_html, payloads

SETUP = """
from localmind_jupyter.backends import Usage
from localmind_jupyter.backends._response import Thinking
from localmind_jupyter.errors import GenerationError
from tests.scripted_backend import ScriptedBackend, install
scripted = install(ScriptedBackend(name="scripted"))
S = {"type": "object"}
"""


def outputs(messages: list[dict]) -> dict[str, list[dict]]:
    """Each display's bundles in order, by display_id (the first shown first)."""
    shown: dict[str, list[dict]] = {}
    for msg in of_type(messages, "display_data", "update_display_data"):
        display_id = msg["content"].get("transient", {}).get("display_id") or "footer"
        shown.setdefault(display_id, []).append(msg["content"]["data"])
    return shown


def test_the_trace_and_a_json_answer_stay_inert_in_every_state(kernel):
    kernel.run(SETUP)
    hostile = payloads(9)
    trace = "".join(f"{p}\n\n" for p in hostile) + "</div></details><script>alert(1)</script>"
    answer = json.dumps({"items": hostile})
    endings = {
        "done": "[Usage(3, 9, 'stop', thinking_tokens=4)]",
        "stopped": "[KeyboardInterrupt()]",
        "error": "[GenerationError('the server dropped the stream')]",
    }
    for state, ending in endings.items():
        kernel.run(
            f"scripted.script = [Thinking(t) for t in {[*hostile, trace]!r}]"
            f" + [{answer!r}] + {ending}"
        )
        messages = kernel.run("%%localmind scripted:m --think --schema S -o x\nlist them")
        assert not of_type(messages, "error"), state
        shown = outputs(messages)
        block, answer_display = list(shown)[:2]
        for bundles in shown.values():
            for bundle in bundles:
                assert audit_html(bundle.get("text/html", "")) == [], state
        streamed = [b["text/html"] for b in shown[block][1:-1]]  # after the waiting line
        assert streamed and all("<summary>Thinking…</summary>" in h for h in streamed), state
        final = shown[block][-1]["text/html"]
        title = {"done": "Thinking", "stopped": "Thinking (stopped)"}.get(
            state, "Thinking (the answer failed)"
        )
        assert final.startswith(f"<details><summary>{title}</summary>"), state
        assert final.count("<details>") == 1 and final.endswith("</details>"), state
        last = shown[answer_display][-1]
        if state == "done":
            assert last["application/json"] == {"items": hostile}
            assert last["text/plain"] == json.dumps({"items": hostile}, indent=2)
            assert "<pre>" in last["text/html"]
        else:
            assert last["text/plain"] == answer
        kind = of_type(kernel.run("print(type(x).__name__)"), "stream")[0]["content"]["text"]
        assert kind.strip() == ("dict" if state == "done" else "str"), state  # never the trace


def test_the_footer_counts_thinking_tokens_and_stats_leave_the_text_out(kernel):
    kernel.run(SETUP)
    kernel.run(
        "scripted.script = [Thinking('hm'), 'Paris.', Usage(3, 9, 'stop', thinking_tokens=4)]"
    )
    messages = kernel.run("%%localmind scripted:m --think\nFrance?")
    footer = outputs(messages)["footer"][-1]["text/plain"]
    assert footer.startswith("scripted:m · 9 tokens (4 thinking) · ")
    answer = [d for d in outputs(messages) if d != "footer"][1]
    meta = [
        m["content"]["metadata"]["localmind"]
        for m in of_type(messages, "update_display_data")
        if m["content"].get("transient", {}).get("display_id") == answer
        and m["content"]["metadata"]
    ][-1]
    assert {"text", "parsed", "thinking"}.isdisjoint(meta["stats"])
    assert meta["parameters"]["think"] is True
