"""Images in a terminal IPython: what was sent as one line per image, the compare cell (the
same images to every model), the batch cell (each row's own image), bad ``--image`` names,
and the Python API's ``images=``; against the Ollama test server's vision model."""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_magic_shell import ask, chat_bodies, ip  # noqa: F401 - fixtures

PIL = pytest.importorskip("PIL.Image")
pd = pytest.importorskip("pandas")

VISION = "ollama:llava:7b"
TEXT_ONLY = "ollama:smollm:135m"


@pytest.fixture
def vision(isolated_home: Path) -> Iterator:
    from tests.servers.ollama_server import OllamaTestServer, default_models, vision_model

    with OllamaTestServer(models=[*default_models(), vision_model("llava:7b")]) as srv:
        (isolated_home / "config.yaml").write_text(
            textwrap.dedent(
                f"""
                default_model: {VISION}
                backends:
                  ollama:
                    settings: {{base_url: "{srv.url}"}}
                """
            )
        )
        yield srv


def png(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    PIL.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def sizes(user_turn: dict) -> list[tuple[int, int]]:
    return [PIL.open(io.BytesIO(base64.b64decode(b))).size for b in user_turn.get("images", [])]


def test_terminal_names_each_image_sent_above_the_answer(ip, vision, capsys):  # noqa: F811
    ip.user_ns["pic"] = PIL.new("RGB", (64, 48), (255, 0, 0))
    ask(ip, "--no-history", "What is in {pic}? Compare with {pic}.")
    out = capsys.readouterr().out
    from localmind_jupyter.core.images import to_image

    sha = to_image(ip.user_ns["pic"], "pic").sha256
    line = f"[image 1: pic, 64×48 PNG, sha256 {sha[:8]}]"
    assert out.startswith(line + "\n"), out
    assert "pure red" in out
    user = chat_bodies(vision)[-1]["messages"][-1]
    assert user["content"] == "What is in [image 1]? Compare with [image 1]."
    assert sizes(user) == [(64, 48)], "the same image twice is sent once"


def test_placeholder_and_image_option_together_and_deduplicated(ip, vision, capsys):  # noqa: F811
    ip.user_ns["a"] = png((255, 0, 0))
    ip.user_ns["b"] = png((0, 0, 255), (20, 10))
    ask(ip, "--no-history --image b --image a", "Look at {a}")
    user = chat_bodies(vision)[-1]["messages"][-1]
    assert user["content"] == "Look at [image 1]"
    assert sizes(user) == [(40, 30), (20, 10)], "{a} first, then --image b; a only once"
    out = capsys.readouterr().out
    assert "[image 1: a, 40×30 PNG" in out and "[image 2: b, 20×10 PNG" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--image nothing_here.png", "--image nothing_here.png: no variable of that name"),
        ("--image number", "number is a int, not an image"),
        ("--image data", "data is an array of float64, not uint8"),
    ],
)
def test_bad_image_options_are_refused_before_sending(ip, vision, capsys, line, message):  # noqa: F811
    np = pytest.importorskip("numpy")
    ip.user_ns["number"] = 3
    ip.user_ns["data"] = np.zeros((4, 4, 3))
    before = len(chat_bodies(vision))
    ask(ip, line, "Describe it")
    captured = capsys.readouterr()
    assert message in captured.err, captured.err
    assert len(chat_bodies(vision)) == before


def test_non_image_values_stay_text(ip, vision, capsys):  # noqa: F811
    np = pytest.importorskip("numpy")
    ip.user_ns["arr"] = np.array([1.5, 2.5])
    ip.user_ns["raw"] = b"hello"
    ask(ip, "--no-history", "Numbers {arr} and {raw}")
    user = chat_bodies(vision)[-1]["messages"][-1]
    assert user["content"] == "Numbers [1.5 2.5] and b'hello'" and not user.get("images")
    assert "[image" not in capsys.readouterr().out


def test_compare_sends_the_same_image_to_every_model(ip, vision, capsys):  # noqa: F811
    ip.user_ns["pic"] = png((0, 255, 0))
    ask(ip, f"{VISION} {TEXT_ONLY} --no-history -o both", "Colour of {pic}?")
    out = capsys.readouterr().out
    assert out.startswith("[image 1: pic, 40×30 PNG, sha256 "), out
    both = ip.user_ns["both"]
    assert "pure green" in both[VISION]
    answers = ip.user_ns["_localmind"]
    assert answers[1].finish_reason == "error" and "cannot read images" in answers[1].error
    bodies = chat_bodies(vision)
    assert len(bodies) == 1 and bodies[0]["model"] == "llava:7b", "the text-only model: unsent"
    assert sizes(bodies[0]["messages"][-1]) == [(40, 30)]


def test_batch_attaches_each_rows_image(ip, vision, capsys, tmp_path):  # noqa: F811
    for name, colour in (("r.png", (255, 0, 0)), ("b.png", (0, 0, 255))):
        (tmp_path / name).write_bytes(png(colour))
    ip.user_ns["df"] = pd.DataFrame(
        {"img": [tmp_path / "r.png", tmp_path / "b.png"], "n": ["one", "two"]}
    )
    ask(ip, "--over df --into answer", "Image {n}: {img}")
    assert "2 of 2 rows answered" in capsys.readouterr().out
    answers = ip.user_ns["df"]["answer"].tolist()
    assert "pure red" in answers[0] and "pure blue" in answers[1]
    users = sorted((b["messages"][-1] for b in chat_bodies(vision)), key=lambda u: u["content"])
    assert [u["content"] for u in users] == ["Image one: [image 1]", "Image two: [image 1]"]
    assert all(sizes(u) == [(40, 30)] for u in users)
    # A rerun answers from the log (the key holds each row's image hash); another image in
    # a row is another request.
    ask(ip, "--over df --into answer", "Image {n}: {img}")
    assert "(2 from the answer log)" in capsys.readouterr().out
    (tmp_path / "g.png").write_bytes(png((0, 255, 0)))
    ip.user_ns["df"].loc[1, "img"] = tmp_path / "g.png"
    ask(ip, "--over df --into answer", "Image {n}: {img}")
    assert "(1 from the answer log)" in capsys.readouterr().out
    assert "pure green" in ip.user_ns["df"]["answer"][1]


def test_batch_image_option_goes_to_every_row_and_a_column_is_named_in_the_template(
    ip,  # noqa: F811
    vision,
    capsys,
):
    ip.user_ns["logo"] = png((0, 0, 0), (8, 8))
    ip.user_ns.pop("photo", None)
    ip.user_ns["df"] = pd.DataFrame({"q": ["a", "b"], "photo": [b"x", b"y"]})
    ask(ip, "--over df --into answer --image logo", "Q {q}")
    assert "2 of 2 rows answered" in capsys.readouterr().out
    assert all(sizes(b["messages"][-1]) == [(8, 8)] for b in chat_bodies(vision))
    before = len(chat_bodies(vision))
    ask(ip, "--over df --into answer2 --image photo", "Q {q}")
    err = capsys.readouterr().err
    assert "--image photo: photo is a column of df; write {photo} in the template" in err
    assert len(chat_bodies(vision)) == before


def test_batch_row_with_a_bad_image_is_named_before_sending(ip, vision, capsys, tmp_path):  # noqa: F811
    (tmp_path / "ok.png").write_bytes(png((1, 2, 3)))
    (tmp_path / "x.svg").write_text("<svg/>")
    ip.user_ns["df"] = pd.DataFrame({"img": [tmp_path / "ok.png", tmp_path / "x.svg"]})
    ask(ip, "--over df --into answer", "Describe {img}")
    err = capsys.readouterr().err
    assert "row 1" in err and "SVG is not supported" in err, err
    assert not chat_bodies(vision)


def test_python_api_takes_images(ip, vision):  # noqa: F811
    import localmind_jupyter as lm
    from localmind_jupyter.errors import OptionError

    pic = PIL.new("RGB", (30, 20), (255, 255, 0))
    [answer] = lm.compare("What colour?", [VISION], images=[pic])
    assert "yellow" in answer.text
    result = lm.batch(["one", "two"], VISION, images=[pic], progress=False)
    assert all("yellow" in t for t in result.texts)
    assert all(sizes(b["messages"][-1]) == [(30, 20)] for b in chat_bodies(vision))
    with pytest.raises(OptionError, match="cannot read images"):
        lm.batch(["one"], TEXT_ONLY, images=[pic], progress=False)
