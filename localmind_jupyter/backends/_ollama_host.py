"""Where Ollama listens: ``OLLAMA_HOST``-style values read the way Ollama's own clients do.

Credentials (``user:password@`` for an Ollama behind a proxy) are split off first: the
base URL that is shown and logged carries none, the pair goes to httpx's ``auth``.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 11434
DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def normalize_host(host: str) -> str:
    """Turn an ``OLLAMA_HOST``-style value into a base URL, as Ollama's own clients do.

    ``example.com`` -> ``http://example.com:11434``; ``:1234`` -> ``http://127.0.0.1:1234``;
    ``https://h`` -> ``https://h:443``; a bind-all address becomes loopback for connecting.
    """
    host = host.strip().strip("\"'").strip()
    if not host:
        return DEFAULT_BASE_URL
    scheme, has_scheme = "http", "://" in host
    if has_scheme:
        scheme, host = host.split("://", 1)
    default_port = (
        {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT) if has_scheme else DEFAULT_PORT
    )
    hostport, _, path = host.partition("/")
    hostport = hostport.rpartition("@")[2]  # credentials go to split_credentials, not the URL
    if hostport.count(":") > 1 and not hostport.startswith("["):
        hostport = f"[{hostport}]"  # a bare IPv6 address, no port
    split = urlsplit(f"//{hostport}")
    hostname = split.hostname or "127.0.0.1"
    try:
        port = split.port or default_port
    except ValueError:
        port = default_port
    if hostname in {"0.0.0.0", ""}:
        hostname = "127.0.0.1"
    elif hostname == "::":
        hostname = "::1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    base = f"{scheme}://{hostname}:{port}"
    path = path.strip("/")
    return f"{base}/{path}" if path else base


def split_credentials(host: str) -> tuple[str, tuple[str, str] | None]:
    """``http://user:pass@host`` -> (``http://host``, (user, pass)): the URL we show has none."""
    scheme, sep, rest = host.strip().strip("\"'").partition("://")
    if not sep:
        scheme, rest = "", scheme
    hostport, slash, path = rest.partition("/")
    userinfo, at, bare = hostport.rpartition("@")
    if not at:
        return host, None
    user, _, password = userinfo.partition(":")
    cleaned = f"{scheme}{sep}{bare}{slash}{path}"
    return cleaned, (unquote(user), unquote(password))
