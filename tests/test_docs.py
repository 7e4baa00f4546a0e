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


def test_batch_md_config_examples_are_valid_configs():
    """docs/batch.md's config.yaml snippets parse, with their concurrency and settings."""
    import re

    from localmind_jupyter.backends import backend_types
    from localmind_jupyter.config import parse_config

    text = (REPO / "docs" / "batch.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        config = parse_config(block, known_types=backend_types())
        assert all(b.concurrency for b in config.backends.values()), block
