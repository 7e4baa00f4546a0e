"""The plugin API is a small public surface, documented in docs/plugins.md, apart from internals.

As in httpx: what a plugin may import is listed in ``__all__`` and in the guide; every other
name a public module defines starts with ``_``, so nobody builds on it by mistake.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys

import pytest

import localmind_jupyter.backends
import localmind_jupyter.errors
from tests.conftest import REPO

PACKAGE = REPO / "localmind_jupyter"
#: The modules a plugin imports from; their public names are promises.
PUBLIC_MODULES = {
    "localmind_jupyter.backends": PACKAGE / "backends" / "__init__.py",
    "localmind_jupyter.backends.base": PACKAGE / "backends" / "base.py",
    "localmind_jupyter.backends.capabilities": PACKAGE / "backends" / "capabilities.py",
    "localmind_jupyter.backends.contracts": PACKAGE / "backends" / "contracts.py",
    "localmind_jupyter.errors": PACKAGE / "errors.py",
}


def _guide_section(title: str) -> str:
    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"docs/plugins.md has no '## {title}' section"
    return match.group(1)


def _documented_api() -> list[str]:
    """The names of the guide's API list: one ``- `Name`: what it is`` line each."""
    return re.findall(r"^- `(\w+)`: \S", _guide_section("The plugin API"), re.M)


def test_the_guide_lists_exactly_the_plugin_api():
    documented = _documented_api()
    assert len(documented) == len(set(documented)), "a name is listed twice"
    assert sorted(documented) == sorted(localmind_jupyter.backends.__all__)


def test_the_guide_lists_exactly_the_public_errors():
    section = _guide_section("The plugin API")
    paragraph = section[section.index("localmind_jupyter.errors") :]
    named = set(re.findall(r"`(\w+)`", paragraph))
    assert named == set(localmind_jupyter.errors.__all__)


def test_the_guide_example_imports_only_the_public_api():
    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(.*?)```", text, re.S)
    imports = [node for node in ast.walk(ast.parse(example)) if isinstance(node, ast.ImportFrom)]
    ours = {node.module for node in imports if (node.module or "").startswith("localmind")}
    assert ours == {"localmind_jupyter.backends", "localmind_jupyter.errors"}
    for node in imports:
        public = {
            "localmind_jupyter.backends": localmind_jupyter.backends.__all__,
            "localmind_jupyter.errors": localmind_jupyter.errors.__all__,
        }.get(node.module or "")
        if public is not None:
            assert {alias.name for alias in node.names} <= set(public), node.module


def _alias_comment(name: str) -> str | None:
    """A type alias has no ``__doc__`` of its own: its ``#:`` comment above it is its doc."""
    for path in (PACKAGE / "backends").glob("*.py"):
        found = re.search(rf"^#: (.+)\n{name}(?:: [^=]+)? = ", path.read_text(), re.M)
        if found:
            return found.group(1)
    return None


@pytest.mark.parametrize("module_name", sorted(PUBLIC_MODULES))
def test_every_public_name_resolves_and_has_a_docstring(module_name: str):
    module = importlib.import_module(module_name)
    assert module.__all__, f"{module_name} has no __all__"
    for name in module.__all__:
        obj = getattr(module, name)  # GenerationRequest: through the lazy __getattr__
        if inspect.isclass(obj) or inspect.isfunction(obj):
            doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
            assert doc and doc.strip(), f"{module_name}.{name} has no docstring"
        else:  # a type alias such as Delta
            assert _alias_comment(name), f"{module_name}.{name} has no '#:' comment"


def _defined_names(tree: ast.Module) -> dict[str, int]:
    """Names a module binds at top level other than by importing (``if`` blocks included)."""
    names: dict[str, int] = {}

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names[node.name] = node.lineno
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            names[sub.id] = node.lineno
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(
                node.target, ast.Name
            ):
                names[node.target.id] = node.lineno
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)

    visit(tree.body)
    return names


@pytest.mark.parametrize("module_name", sorted(PUBLIC_MODULES))
def test_internals_of_public_modules_start_with_an_underscore(module_name: str):
    module = importlib.import_module(module_name)
    defined = _defined_names(ast.parse(PUBLIC_MODULES[module_name].read_text()))
    stray = {
        name: line
        for name, line in defined.items()
        if not name.startswith("_") and name not in module.__all__
    }
    assert not stray, f"{module_name}: public but not in __all__ (rename with '_'): {stray}"
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"


def test_the_plugin_api_loads_nothing_heavy_and_generation_request_is_lazy():
    """A plugin's ``import`` costs what ``import localmind_jupyter`` costs: no pydantic."""
    code = (
        "import sys\n"
        "from localmind_jupyter.backends import BaseBackend, Capabilities, Started, Usage\n"
        "from localmind_jupyter.errors import ModelNotFound\n"
        "assert 'pydantic' not in sys.modules, 'pydantic loaded with the plugin API'\n"
        "from localmind_jupyter.backends import GenerationRequest\n"
        "assert GenerationRequest.__module__ == 'localmind_jupyter.backends._request'\n"
        "assert 'pydantic' in sys.modules\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, env={"PYTHONPATH": str(REPO)}
    )


def test_the_old_import_paths_still_work():
    """Plugins written before the API was gathered keep importing from the modules."""
    from localmind_jupyter.backends.base import BaseBackend, ResponseStream, StreamTimer
    from localmind_jupyter.backends.capabilities import Capabilities, ModelNameError

    assert localmind_jupyter.backends.BaseBackend is BaseBackend
    assert localmind_jupyter.backends.Capabilities is Capabilities
    assert ModelNameError is localmind_jupyter.errors.ModelNameError
    assert issubclass(ModelNameError, localmind_jupyter.errors.OptionError)
    assert ResponseStream and StreamTimer


def test_the_guide_imports_only_from_the_plugin_api():
    """Nowhere does the guide send a plugin author to an internal module."""
    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    modules = set(re.findall(r"from (localmind_jupyter[\w.]*) import", text))
    assert modules == {"localmind_jupyter.backends", "localmind_jupyter.errors"}
