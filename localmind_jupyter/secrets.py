"""One redactor for every way out: reprs, errors, tables, REST answers, widgets and logs.

Three rules, applied together by :func:`redact`:

1. the user-info part of any URL (``scheme://user:password@host``, ``://token@``,
   ``://:pw@``, passwords that contain ``@``) becomes ``****``;
2. values of secret-named keys (``api_key``, ``X-API-Key``, ``Cookie``, ``?token=``) are
   masked, where a name is secret by its whole words, so ``max_new_tokens`` is not;
3. every *known* secret value is replaced wherever it appears, also JSON-, repr-, URL- or
   HTML-escaped, even inside an SDK's error text. Backends :func:`register` the keys and
   URL passwords they hold, so front ends need not know which backend holds what.

Secret-named environment variables (``OPENAI_API_KEY``, ``HF_TOKEN``…) are known too.
It also decides which key may go to which server (:func:`vendor_key`).
"""

from __future__ import annotations

import base64
import functools
import html
import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

if TYPE_CHECKING:
    from .config import LocalMindConfig

MASK = "****"
#: Shorter values are not replaced as text: they would match everywhere.
_MIN_SECRET = 4
#: Environment values shorter than this are not secrets (``TOKENIZERS_PARALLELISM=false``).
_MIN_ENV_SECRET = 8

# --- which names are secret -------------------------------------------------------------------
_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "authorization",
        "auth",
        "cookie",
        "cookies",
        "bearer",
        "credential",
        "credentials",
        "apikey",
    }
)
#: ``X_key`` is secret for these X (``api_key``, ``x-goog-api-key``, ``private_key``).
_KEY_QUALIFIERS = frozenset(
    {"api", "access", "secret", "private", "auth", "client", "subscription", "master", "signing"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}")


@functools.lru_cache(maxsize=1024)
def is_secret_key(key: str) -> bool:
    """Whether a setting's, header's or variable's name says its value must never be shown.

    Whole words only (split on ``_ - .`` and camelCase): ``token``, ``x-api-key``,
    ``Proxy-Authorization`` and ``set-cookie`` are secret; ``max_new_tokens`` is not.
    """
    words = [w for w in _SEPARATORS.split(_CAMEL.sub("_", str(key)).lower()) if w]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(w == "key" and prev in _KEY_QUALIFIERS for prev, w in itertools.pairwise(words))


# --- the known secrets ------------------------------------------------------------------------
class _Registry:
    """The secret values this process holds; a value once known stays known."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, None] = {}
        self._forms: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        new = [v for v in values if v not in self._values]
        if not new:
            return
        with self._lock:
            self._values.update(dict.fromkeys(new))
            self._forms = _forms(self._values)

    def forms(self) -> tuple[str, ...]:
        return self._forms

    def snapshot(self) -> dict[str, None]:
        return dict(self._values)

    def restore(self, values: Mapping[str, None]) -> None:
        with self._lock:
            self._values = dict(values)
            self._forms = _forms(self._values)


_REGISTRY = _Registry()


def _variants(secret: str) -> set[str]:
    """The secret as it may appear in JSON, a repr, a URL or HTML."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        repr(f"{secret}'\"")[1:-4],  # inside a repr that had to escape its quotes
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        html.escape(secret),
    }


def _forms(secrets: Iterable[str]) -> tuple[str, ...]:
    found: set[str] = set()
    for secret in secrets:
        found |= _variants(secret)
    # Longest first: a key inside "Bearer <key>" must not leave the rest behind.
    return tuple(sorted((f for f in found if len(f) >= _MIN_SECRET), key=len, reverse=True))


def secret_values(value: object) -> list[str]:
    """The secrets one value carries: itself, the credential of ``Bearer X``, URL passwords."""
    if not isinstance(value, str) or not value:
        return []
    found = [value] if len(value) >= _MIN_SECRET else []
    scheme, _, credential = value.strip().partition(" ")
    if credential and scheme.isalpha():  # "Bearer sk-..." -> also the bare token
        found.append(credential.strip())
    found.extend(url_secrets(value))
    return [v for v in found if len(v) >= _MIN_SECRET]


def url_secrets(text: str) -> list[str]:
    """The user-info of the URLs in ``text`` (whole, password, percent-decoded forms)."""
    found: list[str] = []
    for match in _USERINFO.finditer(text):
        userinfo = match.group("userinfo")
        user, _, password = userinfo.partition(":")
        for part in (userinfo, password):
            found.extend(p for p in {part, unquote(part)} if len(p) >= _MIN_SECRET)
        # What httpx sends for them: ``Authorization: Basic base64(user:password)``.
        basic = f"{unquote(user)}:{unquote(password)}".encode()
        found.append(base64.b64encode(basic).decode("ascii"))
    return found


def register(*values: str | None) -> None:
    """Remember secrets (keys, tokens, URLs with passwords) so every output masks them."""
    _REGISTRY.add(s for value in values for s in secret_values(value))


def register_url(url: str | None) -> None:
    """Remember the user name and password in a URL (``http://u:pw@h``, ``u:pw@h:11434``)."""
    if url:
        _REGISTRY.add(url_secrets(url if "://" in url else f"//{url}"))


def register_settings(settings: object, key: str = "") -> None:
    """Remember the values of secret-named keys and the URL passwords anywhere in settings."""
    found: list[str] = []
    _collect(settings, key, found)
    _REGISTRY.add(found)


def _collect(value: object, key: str, out: list[str]) -> None:
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            _collect(sub_value, str(sub_key), out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, key, out)
    elif isinstance(value, str):
        if is_secret_key(key) and not _ENV_REF.fullmatch(value):
            out.extend(secret_values(value))
        else:
            out.extend(url_secrets(value))


def register_config(config: LocalMindConfig) -> None:
    """Remember the secrets of every configured backend, ``${ENV}`` references resolved."""
    for name, spec in config.backends.items():
        try:
            settings = config.resolved_settings(name)
        except Exception:  # noqa: BLE001 - an unresolvable ${ENV} has no value to hide
            settings = spec.settings
        register_settings(settings)


_env_cache: tuple[int, tuple[str, ...]] = (0, ())


def _env_forms() -> tuple[str, ...]:
    """The secret-named environment variables' values; rescanned only when the env changed."""
    global _env_cache
    raw = getattr(os.environ, "_data", None)  # decoding every variable per call is slow
    fingerprint = hash(tuple(raw.items())) if isinstance(raw, dict) else 0
    if fingerprint and fingerprint == _env_cache[0]:
        return _env_cache[1]
    values = [
        v for k, v in list(os.environ.items()) if len(v) >= _MIN_ENV_SECRET and is_secret_key(k)
    ]
    _env_cache = (fingerprint, _forms(values))
    return _env_cache[1]


@functools.lru_cache(maxsize=32)
def _merged_forms(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    """Longest first across both: a key inside a longer secret must not cut that one apart."""
    return tuple(sorted(set(first) | set(second), key=len, reverse=True))


# --- masking ----------------------------------------------------------------------------------
#: ``scheme://USERINFO@``: everything up to the last ``@`` before the host's first ``/ ? #``.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://|^//)(?P<userinfo>[^\s/?#'\"<>]*)@", re.I)
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[A-Za-z0-9_.-]+)=(?P<value>[^&#\s'\"<>]+)")
#: ``Bearer sk-…``: a credential has a digit or a symbol, so "basic settings" stays as it is.
_AUTH_SCHEME = re.compile(
    r"\b(?P<scheme>Bearer|Basic)\s+(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}", re.I
)


def mask_url_password(text: str) -> str:
    """``http://user:secret@host`` -> ``http://****@host``: the user name may be a token."""
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)


def _mask_param(match: re.Match[str]) -> str:
    if is_secret_key(match.group("name")):
        return f"{match.group('lead')}{match.group('name')}={MASK}"
    return match.group(0)


def redact(text: object, *extra: str | None) -> str:
    """``text`` with URL passwords, secret parameters and every known secret masked.

    ``extra``: secrets to mask besides the registered ones (a Jupyter token, a key).
    """
    if text is None:
        return ""
    text = str(text)
    if not text:
        return text
    if "//" in text:
        text = mask_url_password(text)
    if "=" in text:
        text = _QUERY_PARAM.sub(_mask_param, text)
    text = _AUTH_SCHEME.sub(rf"\g<scheme> {MASK}", text)
    forms = _merged_forms(_REGISTRY.forms(), _env_forms())
    if extra:
        forms = _merged_forms(_forms(s for value in extra for s in secret_values(value)), forms)
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def mask_secrets(value: Any, key: str = "") -> Any:
    """A copy for display: secret-named values masked, every string redacted.

    ``${ENV}`` references are not secrets: they stay, so users see where a key comes from.
    """
    if isinstance(value, Mapping):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v, key) for v in value]
    if is_secret_key(key) and value and not (isinstance(value, str) and _ENV_REF.fullmatch(value)):
        return MASK
    if isinstance(value, str):
        return redact(value)
    return value


# --- which key goes where ---------------------------------------------------------------------
def vendor_key(base_url: str, vendor_host: str, env_var: str) -> str | None:
    """The key in ``env_var``, but only for the vendor's own API (https on ``vendor_host``).

    An environment key is meant for one service; any other server (a vLLM or LM Studio
    box on the LAN) gets only a key configured for that backend.
    """
    try:
        parts = urlsplit(base_url)
    except ValueError:
        return None
    if parts.scheme != "https" or parts.hostname != vendor_host:
        return None
    return os.environ.get(env_var) or None


def check_url_credentials(url: str, key: str) -> str | None:
    """Why a URL's user name or password cannot be used as written (raw ``/ ? #``), or None."""
    _, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    _, colon, after = authority.partition(":")
    cut_password = colon and not after.isdigit()  # "user:pa" of "user:pa/ss@host", not a port
    if sep and "@" not in authority and "@" in rest and cut_password:
        return (
            f"{key}: the user name or password in the URL contains '/', '?' or '#'; "
            "percent-encode them (%2F, %3F, %23)"
        )
    return None


# --- logs -------------------------------------------------------------------------------------
class RedactingFilter(logging.Filter):
    """Redacts a log record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        except Exception:  # noqa: BLE001 - a log line must never raise
            pass
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` whose records are redacted (filters are not inherited)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


#: The package's modules that log; their loggers are redacted from the start, wherever
#: the records go (tests/test_secrets.py keeps this list complete).
LOGGING_MODULES = (
    "localmind_jupyter.backends._prefill",
    "localmind_jupyter.backends._retry",
    "localmind_jupyter.backends._timer",
    "localmind_jupyter.backends._transformers_batch",
    "localmind_jupyter.backends.gguf",
    "localmind_jupyter.backends.transformers",
    "localmind_jupyter.core.batch",
    "localmind_jupyter.core.downloads",
    "localmind_jupyter.core.listeners",
    "localmind_jupyter.core.retry",
    "localmind_jupyter.server.handlers",
    "localmind_jupyter.server.state",
    "localmind_jupyter.server.streaming",
    "localmind_jupyter.widgets._background",
)
for _name in ("localmind_jupyter", *LOGGING_MODULES):
    get_logger(_name)
