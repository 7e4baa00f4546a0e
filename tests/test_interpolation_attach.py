"""``interpolate(..., attach=...)``: a value the caller takes is not stringified but replaced by
the marker the callback gives; everything else about filling a prompt stays as it was."""

from __future__ import annotations

from typing import Any

import pytest

from localmind_jupyter.core.interpolation import interpolate


class Picture:
    """Stands for an image value: the callback below takes these, nothing else."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        raise AssertionError("an attached value must never be stringified")


class Taker:
    """An ``attach`` callback that records what it was offered and numbers what it takes."""

    def __init__(self) -> None:
        self.offered: list[tuple[Any, str]] = []
        self.taken: list[Picture] = []

    def __call__(self, value: object, expr: str) -> str | None:
        self.offered.append((value, expr))
        if not isinstance(value, Picture):
            return None
        if value not in self.taken:
            self.taken.append(value)
        return f"[image {self.taken.index(value) + 1}]"


def test_taken_value_is_replaced_by_its_marker_others_by_str() -> None:
    fig = Picture("fig")
    taker = Taker()
    result = interpolate("Explain {fig} for {who}.", {"fig": fig, "who": "a class"}, attach=taker)
    assert result.text == "Explain [image 1] for a class."
    assert result.filled == ("fig", "who")
    assert taker.taken == [fig]
    assert [expr for _v, expr in taker.offered] == ["fig", "who"]


def test_same_placeholder_twice_is_offered_once() -> None:
    taker = Taker()
    result = interpolate("{fig} and again {fig}", {"fig": Picture("f")}, attach=taker)
    assert result.text == "[image 1] and again [image 1]"
    assert len(taker.offered) == 1


def test_two_values_get_their_own_markers_in_order() -> None:
    a, b = Picture("a"), Picture("b")
    namespace = {"a": a, "b": b, "Out": {3: b}}
    taker = Taker()
    result = interpolate("{b} then {a} then {Out[3]}", namespace, attach=taker)
    assert result.text == "[image 1] then [image 2] then [image 1]"
    assert taker.taken == [b, a]
    assert ("Out[3]" in [e for _v, e in taker.offered]) and result.missing == ()


def test_attributes_and_subscripts_reach_the_callback_with_their_expression() -> None:
    pic = Picture("p")
    taker = Taker()
    result = interpolate(
        "{plots['q1']} {report.chart}",
        {"plots": {"q1": pic}, "report": type("R", (), {"chart": pic})},
        attach=taker,
    )
    assert result.text == "[image 1] [image 1]"
    assert [e for _v, e in taker.offered] == ["plots['q1']", "report.chart"]


def test_code_unfilled_and_escapes_are_never_offered() -> None:
    taker = Taker()
    template = '{{fig}} {"k": {fig}} f"{fig}" {nope} {fig}'
    result = interpolate(template, {"fig": Picture("f")}, attach=taker)
    assert result.text == '{fig} {"k": {fig}} f"{fig}" {nope} [image 1]'
    assert [e for _v, e in taker.offered] == ["fig"]
    assert result.missing == ("nope",)


def test_err_is_offered_as_its_text() -> None:
    taker = Taker()
    result = interpolate(
        "why {Err[3]}", {}, errors={3: ZeroDivisionError("division by zero")}, attach=taker
    )
    assert result.text == "why ZeroDivisionError: division by zero"
    assert taker.offered == [("ZeroDivisionError: division by zero", "Err[3]")]


def test_what_the_callback_raises_propagates() -> None:
    class BadImage(ValueError):
        pass

    def refuse(value: object, expr: str) -> str | None:
        raise BadImage(f"{expr}: an SVG is a drawing, not a picture")

    with pytest.raises(BadImage, match="fig: an SVG"):
        interpolate("look at {fig}", {"fig": b"<svg/>"}, attach=refuse)


def test_unprintable_value_the_callback_declines_is_still_unfilled() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    result = interpolate("{x}", {"x": Unprintable()}, attach=lambda v, e: None)
    assert result.text == "{x}" and result.missing == ("x",)


def test_without_attach_nothing_changes() -> None:
    result = interpolate("{n} {s}", {"n": 3, "s": "x"})
    assert result.text == "3 x"
