"""Keeping API keys out of reprs, errors, widgets and logs."""

from __future__ import annotations

import re

_SECRET_KEY = re.compile(r"(api_?key|token|secret|password|authorization)", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """Whether a setting's name says its value must never be shown."""
    return bool(_SECRET_KEY.search(key))


def redact(text: str, *secrets: str | None) -> str:
    """Remove every given secret from a message before it reaches a user or a log."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "****")
    return text


_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^/@\s]+@")


def mask_url_password(text: str) -> str:
    """``http://user:secret@host`` -> ``http://user:****@host``."""
    return _URL_PASSWORD.sub(r"\1****@", text)
