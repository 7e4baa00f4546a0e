"""The configuration reference cannot drift from the settings schemas.

``docs/configuration.md``'s key table is compared with the config dataclasses, and each
backend's settings table in ``docs/backends.md`` with that backend's ``Settings``
dataclass, both ways: every field is documented and every documented key is a field.
Where a table states a default, it must be the schema's default. The backend types are
those registered in ``pyproject.toml``'s ``localmind.backends`` entry points, so a plugin
installed in the venv is not required to be documented here.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from typing import Any

import pytest
import tomllib

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
REGISTERED = PYPROJECT["project"]["entry-points"]["localmind.backends"]


def _settings_schema(backend_type: str) -> type:
    module, _, attr = REGISTERED[backend_type].partition(":")
    return importlib.import_module(module).__dict__[attr].Settings


def _sections(text: str, level: str = "## ") -> dict[str, str]:
    """Heading -> text up to the next heading of the same level (subsections included)."""
    parts = re.split(rf"^{re.escape(level)}(.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as lists of rows (header first, separator dropped) of stripped cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _names(cell: str) -> list[str]:
    """The backticked names of a first cell: `` `a` / `b` `` -> [a, b]."""
    return re.findall(r"`([^`]+)`", cell)


def _shown(value: Any) -> str:
    """A default as the docs write it: ``true``, ``2``, ``[]``, ``auto``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _check_default(where: str, f: dataclasses.Field[Any], cell: str, documented: Any) -> None:
    """A stated default must be the schema's; ``None`` defaults are described in words."""
    if documented is None:
        return
    assert cell.strip("`") == _shown(documented), (
        f"{where}: the doc says the default is {cell!r}, the schema has {documented!r}"
    )


def _backend_sections() -> dict[str, str]:
    """``type: X`` -> the docs/backends.md section about that type (one section may cover two)."""
    found: dict[str, str] = {}
    for heading, body in _sections((REPO / "docs" / "backends.md").read_text()).items():
        for backend_type in re.findall(r"`type: ([\w-]+)`", heading):
            found[backend_type] = body
    return found


def test_every_registered_backend_type_has_a_section():
    sections = _backend_sections()
    missing = sorted(set(REGISTERED) - set(sections))
    assert not missing, f"docs/backends.md has no '## … (`type: X`)' section for {missing}"


@pytest.mark.parametrize("backend_type", sorted(REGISTERED))
def test_backend_settings_table_matches_the_schema(backend_type):
    from localmind_jupyter.config import Timeouts

    schema = _settings_schema(backend_type)
    body = _backend_sections()[backend_type]
    tables = [t for t in _tables(body) if t[0][0] == "Setting"]
    if not tables:
        same = re.search(r"Settings are the same\s+as for `type: ([\w-]+)`", body)
        assert same, f"`type: {backend_type}` has no settings table and names no other type's"
        assert schema is _settings_schema(same.group(1)), (
            f"docs say {backend_type}'s settings are {same.group(1)}'s; the schemas differ"
        )
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    documented: set[str] = set()
    for row in tables[0][1:]:
        names = _names(row[0])
        assert names, f"{backend_type}: a settings row names no `setting`: {row}"
        for name in names:
            assert name in fields, f"{backend_type}: `{name}` is documented but is no setting"
            documented.add(name)
            default = _default(fields[name])
            where = f"backends ({backend_type}) `{name}`"
            if name.endswith("_timeout"):
                assert "`timeouts:`" in row[1], f"{where}: say it comes from `timeouts:`"
                assert default == getattr(Timeouts(), name.removesuffix("_timeout")), where
            elif len(names) == 1:
                _check_default(where, fields[name], row[1], default)
    missing = sorted(set(fields) - documented)
    assert not missing, f"docs/backends.md (`type: {backend_type}`) does not document {missing}"


def _config_keys() -> dict[str, list[str]]:
    text = (REPO / "docs" / "configuration.md").read_text()
    (table,) = [t for t in _tables(_sections(text)["Keys"]) if t[0][0] == "Key"]
    rows: dict[str, list[str]] = {}
    for row in table[1:]:
        (name,) = _names(row[0])
        rows[name] = row
    return rows


def test_configuration_keys_match_the_schema():
    from localmind_jupyter.config import (
        BackendConfig,
        Display,
        LocalMindConfig,
        Timeouts,
        default_backends,
    )

    rows = _config_keys()
    sections = {"timeouts": Timeouts, "display": Display, "backends": BackendConfig}
    expected: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(LocalMindConfig):
        if f.name in sections:
            prefix = "backends.NAME" if f.name == "backends" else f.name
            for sub in dataclasses.fields(sections[f.name]):
                expected[f"{prefix}.{sub.name}"] = sub
        else:
            expected[f.name] = f
    assert sorted(rows) == sorted(expected), "docs/configuration.md § Keys differs from the schema"
    for name, f in expected.items():
        default = _default(f)
        if name == "default_model":  # None means the embedded model; the doc names it
            # with the built-in backends; llama-cpp-python is installed here (and in CI)
            default = LocalMindConfig(backends=default_backends()).effective_default_model()
        if default is not dataclasses.MISSING:
            _check_default(f"configuration `{name}`", f, rows[name][2], default)


def test_type_lists_every_registered_backend_type():
    meaning = _config_keys()["backends.NAME.type"][3]
    missing = [t for t in sorted(REGISTERED) if f"`{t}`" not in meaning]
    assert not missing, f"configuration.md: backends.NAME.type does not list {missing}"


def test_the_complete_example_is_a_valid_config():
    """The example a user copies parses, and each backend's settings pass its schema."""
    from localmind_jupyter.backends.base import _validate_settings
    from localmind_jupyter.config import parse_config

    text = (REPO / "docs" / "configuration.md").read_text()
    example = _sections(text)["A complete example"]
    (block,) = re.findall(r"```yaml\n(.*?)```", example, flags=re.S)
    config = parse_config(block, known_types=list(REGISTERED))
    assert len(config.backends) == 4
    for name, backend in config.backends.items():
        _validate_settings(_settings_schema(backend.type), backend.settings, name)


def test_py_typed_is_shipped():
    """PEP 561: the marker is in the package folder, which hatch puts in the wheel whole."""
    assert (REPO / "localmind_jupyter" / "py.typed").is_file()
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert "localmind_jupyter" in wheel["packages"]
