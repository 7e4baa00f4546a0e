"""The docs cannot drift from the code: every option and command is documented."""

from __future__ import annotations

from tests.conftest import REPO


def test_magic_reference_lists_every_option_and_command():
    from localmind_jupyter.magics.commands import LINE_COMMANDS
    from localmind_jupyter.magics.magic import LocalMind

    text = (REPO / "docs" / "magic.md").read_text()
    parser = LocalMind.localmind.parser
    for action in parser._actions:
        for flag in action.option_strings:
            if flag != "-h" and flag != "--help":
                assert f"`{flag}" in text or f"/ `{flag}`" in text, f"{flag} is not documented"
    for command in LINE_COMMANDS:
        assert f"`%localmind {command}" in text, f"%localmind {command} is not documented"
    for trait in LocalMind.class_own_traits(config=True):
        assert f"LocalMind.{trait}" in text, f"LocalMind.{trait} is not documented"


def test_readme_shows_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
