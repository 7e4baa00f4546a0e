"""A Hugging Face Hub-compatible HTTP server for offline tests and benchmarks.

It serves model repositories from local folders with the endpoints that
``huggingface_hub`` 2.x (``snapshot_download``, ``hf_hub_download``, ``HfApi``)
and ``transformers``' ``from_pretrained`` use, with the headers they check
(``ETag``, ``X-Repo-Commit``, ``X-Linked-Etag``/``X-Linked-Size``, ``X-Error-Code``),
byte ranges for resumed downloads, and switchable faults (cut connections,
slow transfers, error statuses). See ``../shared/reference/stack-notes.md`` (beside the checkout),
section "Offline Hub", for the requests a client makes.

Standard library only (``make_tiny_llama_repo`` aside, which needs torch and
transformers and imports them when called)::

    repo = make_tiny_llama_repo(tmp_path / "src")
    with HubTestServer({"tests/tiny-chat": repo}) as hub:
        ...  # a subprocess with HF_ENDPOINT=hub.url, or patch_hub_endpoint(hub.url)

or as a process::

    python -m tests.servers.hub_server --port 0 --repo tests/tiny-chat=PATH

``huggingface_hub`` reads ``HF_ENDPOINT`` once, when it is imported: either run
the client in a subprocess with ``HF_ENDPOINT`` set, or use
:func:`patch_hub_endpoint` in-process (it patches the import-time constants).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import io
import json
import signal
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.servers._loopback import LoopbackHTTPServer, LoopbackServer

__all__ = [
    "HubFile",
    "HubRepo",
    "HubRequest",
    "HubTestServer",
    "git_blob_sha1",
    "make_tiny_llama_repo",
    "patch_hub_endpoint",
]

BLOCK_BYTES = 64 * 1024
"""Body bytes written per socket write; ``byte_delay`` is slept before each block."""

LFS_PATTERNS: tuple[str, ...] = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5",
    "*.joblib", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
    "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
    "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
)  # fmt: skip
"""The Hub's default ``.gitattributes``: files stored with Git LFS (ETag = sha256)."""

LFS_MIN_BYTES = 10 * 1024 * 1024
"""Files this big are LFS files whatever their name (the Hub refuses bigger plain blobs)."""

RECORDED_HEADERS = ("Range", "If-Range", "If-None-Match", "Accept-Encoding", "Authorization")
"""Request headers kept in :attr:`HubTestServer.requests` (those present, names as here)."""

REPO_TYPE_PREFIXES = ("datasets", "spaces")
_API_VERBS = frozenset({"revision", "tree", "paths-info", "refs", "commits", "xet-read-token"})
_TIMESTAMP = "2024-01-01T00:00:00.000Z"
_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"

GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS)


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: ``sha1(b"blob <size>\\0" + data)``, as the Hub's ``oid``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    return text.encode()


# --------------------------------------------------------------------------- repositories


class HubFile(NamedTuple):
    """One file of a repository, hashed when the repository is built."""

    path: str
    """Repo-relative, ``/``-separated."""
    source: Path
    size: int
    blob_sha1: str
    """Git blob id of the content (the ETag of a regular file)."""
    sha256: str | None
    """Set for LFS files only: their ETag, ``X-Linked-Etag`` and tree ``lfs.oid``."""

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        """Unquoted ETag: what the client names the blob in its cache (``blobs/<etag>``)."""
        return self.sha256 or self.blob_sha1

    @property
    def oid(self) -> str:
        """Tree ``oid``: the git blob id of what git stores (the LFS pointer for LFS files)."""
        if self.sha256 is None:
            return self.blob_sha1
        return git_blob_sha1(_lfs_pointer(self.sha256, self.size))

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": self.path}
        entry.update(oid=self.oid, size=self.size)
        if self.sha256 is not None:
            pointer = _lfs_pointer(self.sha256, self.size)
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(pointer)}
        return entry


class HubRepo:
    """A model repository served from ``folder``; the files are hashed once, here.

    Every regular file under ``folder`` is part of the repository except ``.git``
    and ``.cache`` folders. The commit ``sha`` is a stable 40-hex digest of the
    repo id, paths and contents, so the same folder always gives the same commit.
    Files must not change while served (``add_repo`` the folder again to publish
    a "new commit"). Files matching ``lfs_patterns`` (or of 10 MiB and more) are
    LFS files: as on the Hub, their ETag and ``X-Linked-Etag`` are the sha256 of
    the content (the client's cache names the blob after it), their tree entry
    has ``lfs`` and an ``oid`` that is the git blob id of the LFS pointer; other
    files have the git blob sha1 of their content as ETag and ``oid``.
    ``gated=True`` answers file requests the way the Hub answers an
    unauthenticated client for a gated model (401, ``X-Error-Code: GatedRepo``).
    """

    def __init__(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        lfs_patterns: Sequence[str] = LFS_PATTERNS,
        gated: bool = False,
    ) -> None:
        self.repo_id = repo_id
        self.folder = Path(folder)
        self.gated = gated
        if not self.folder.is_dir():
            raise ValueError(f"repo folder {self.folder} does not exist")
        files: dict[str, HubFile] = {}
        for source in sorted(self.folder.rglob("*")):
            rel = source.relative_to(self.folder).as_posix()
            if not source.is_file() or rel.split("/")[0] in (".git", ".cache"):
                continue
            data = source.read_bytes()
            name = rel.rsplit("/", 1)[-1]
            lfs = len(data) >= LFS_MIN_BYTES or any(fnmatch.fnmatch(name, p) for p in lfs_patterns)
            sha256 = hashlib.sha256(data).hexdigest() if lfs else None
            files[rel] = HubFile(rel, source, len(data), git_blob_sha1(data), sha256)
        self.files = files
        digest = hashlib.sha1(f"commit {repo_id}\n".encode())
        for file in files.values():
            digest.update(f"{file.path}\0{file.etag}\n".encode())
        self.sha = digest.hexdigest()

    @property
    def folders(self) -> list[str]:
        """Every folder that holds a file, ``/``-separated, sorted."""
        found = {p.rsplit("/", 1)[0] for p in self.files if "/" in p}
        for folder in list(found):
            while "/" in folder:
                folder = folder.rsplit("/", 1)[0]
                found.add(folder)
        return sorted(found)

    def folder_oid(self, folder: str) -> str:
        digest = hashlib.sha1(f"tree {folder}\n".encode())
        for file in self.files.values():
            if file.path.startswith(folder + "/"):
                digest.update(f"{file.path}\0{file.oid}\n".encode())
        return digest.hexdigest()

    def info(self, sha: str) -> dict[str, Any]:
        """``GET /api/models/{repo}[/revision/{rev}]`` body (a subset of the Hub's)."""
        owner = self.repo_id.split("/")[0] if "/" in self.repo_id else None
        body: dict[str, Any] = {
            "_id": hashlib.sha1(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": owner,
            "sha": sha,
            "lastModified": _TIMESTAMP,
            "createdAt": _TIMESTAMP,
            "private": False,
            "gated": "auto" if self.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": path} for path in self.files],
        }
        config = self.files.get("config.json")
        if config is not None:
            body["library_name"] = "transformers"
            body["tags"] = ["transformers", "safetensors"]
            with contextlib.suppress(OSError, ValueError):
                parsed = json.loads(config.source.read_bytes())
                if isinstance(parsed, dict):
                    keep = ("architectures", "model_type")
                    body["config"] = {k: parsed[k] for k in keep if k in parsed}
        return body


# --------------------------------------------------------------------------- the server


class HubRequest(NamedTuple):
    """One request as received."""

    method: str
    path: str
    """The request target as sent: percent-encoding intact, query string kept."""
    headers: dict[str, str]
    """Those of :data:`RECORDED_HEADERS` the client sent."""


class _ClientGone(Exception):
    """A write failed: the client went away."""


class _Dropped(Exception):
    """The server cut the connection on purpose (fault injection or shutdown)."""


class HubError(Exception):
    """An error answered with the Hub's ``X-Error-Code``/``X-Error-Message`` headers."""

    def __init__(
        self, status: int, code: str | None, message: str, *, commit: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.commit = commit


class HubTestServer(LoopbackServer):
    """A fake Hugging Face Hub on 127.0.0.1 with switchable faults and observable traffic.

    ``repos`` maps ``repo_id`` ("owner/name") to a folder or a :class:`HubRepo`.
    Faults are plain attributes, read when a file body is sent:

    ``drop_after_bytes``
        One-shot: the next file ``GET`` with more than this many body bytes to send
        (optionally only for ``drop_file``) sends exactly this many and then the
        connection is cut; the attribute is then reset to None. ``drop_with_reset``
        picks how: False (default) closes cleanly (FIN), which ``httpx`` reports as
        ``RemoteProtocolError``; True aborts with a TCP RST (``ReadError``).
    ``byte_delay``
        Seconds slept before each 64 KiB block of a file body (slow transfer).
    ``fail_status``
        Every file ``GET`` (not ``HEAD``, not API calls) is answered with this status
        until reset to None.

    What huggingface_hub 2.x does with a cut download: on ``RemoteProtocolError``
    (FIN) or a timeout, ``http_get`` sleeps 1 s and asks again in the same call with
    ``Range: bytes=<n>-``, n counting whole ``constants.DOWNLOAD_CHUNK_SIZE`` (10 MiB)
    chunks written, so below 10 MiB it re-fetches from 0 without ``Range``. Any other
    error (``ReadError`` on RST) fails the call, and the partial file
    (``blobs/<etag>.<8 hex>.incomplete``) is deleted: nothing resumes across calls.
    """

    def __init__(
        self,
        repos: Mapping[str, str | Path | HubRepo] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._init_loopback(host, port)
        self._repos: dict[str, HubRepo] = {}
        self._requests: list[HubRequest] = []
        self._bytes_sent = 0
        self._bytes_by_file: dict[str, int] = {}
        self._drops = 0

        self.drop_after_bytes: int | None = None
        self.drop_file: str | None = None
        self.drop_with_reset: bool = False
        self.byte_delay: float = 0.0
        self.fail_status: int | None = None

        for repo_id, source in (repos or {}).items():
            self.add_repo(repo_id, source)

    # ------------------------------------------------------------------ lifecycle

    thread_name = "hub-test-server"

    def _new_httpd(self) -> _HTTPServer:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        return httpd

    def add_repo(self, repo_id: str, source: str | Path | HubRepo) -> HubRepo:
        """Serve (or replace: a new commit) a repository; returns it (``.sha``, ``.files``)."""
        repo = source if isinstance(source, HubRepo) else HubRepo(repo_id, source)
        if repo.repo_id != repo_id:
            raise ValueError(f"HubRepo {repo.repo_id!r} added as {repo_id!r}")
        with self._lock:
            self._repos[repo_id] = repo
        return repo

    def repo(self, repo_id: str) -> HubRepo:
        with self._lock:
            return self._repos[repo_id]

    def reset_faults(self) -> None:
        """Switch every fault off."""
        self.drop_after_bytes = None
        self.drop_file = None
        self.drop_with_reset = False
        self.byte_delay = 0.0
        self.fail_status = None

    # ------------------------------------------------------------------ observability

    @property
    def requests(self) -> list[HubRequest]:
        """Snapshot of ``(method, path, headers)`` in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def bytes_sent(self) -> int:
        """File body bytes written to clients, all files together."""
        with self._lock:
            return self._bytes_sent

    @property
    def bytes_sent_by_file(self) -> dict[str, int]:
        """File body bytes written, by repo-relative path (summed over repos)."""
        with self._lock:
            return dict(self._bytes_by_file)

    @property
    def drops(self) -> int:
        """How many times ``drop_after_bytes`` cut a connection."""
        with self._lock:
            return self._drops

    def file_requests(self, method: str = "GET") -> list[HubRequest]:
        """The ``/resolve/`` requests with this method."""
        return [r for r in self.requests if r.method == method and "/resolve/" in r.path]

    def clear_log(self) -> None:
        """Forget recorded requests and byte counters (faults are kept)."""
        with self._lock:
            self._requests.clear()
            self._bytes_sent = 0
            self._bytes_by_file.clear()
            self._drops = 0

    # ------------------------------------------------------------------ internals

    def _record(self, request: HubRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _count(self, path: str, n: int) -> None:
        with self._lock:
            self._bytes_sent += n
            self._bytes_by_file[path] = self._bytes_by_file.get(path, 0) + n

    def _take_drop(self, path: str, to_send: int) -> int | None:
        """Claim the one-shot drop fault for this body, if it applies."""
        with self._lock:
            limit = self.drop_after_bytes
            if limit is None or to_send <= limit:
                return None
            if self.drop_file is not None and self.drop_file != path:
                return None
            self.drop_after_bytes = None
            self._drops += 1
            return max(0, limit)

    def _pause(self, seconds: float) -> None:
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Dropped

    def _find_repo(self, segments: list[str]) -> tuple[str, HubRepo | None, list[str]]:
        """Split ``owner/name/rest...`` (or ``name/rest...``) into a repo and the rest."""
        with self._lock:
            repos = dict(self._repos)
        for size in (2, 1):
            repo_id = "/".join(segments[:size])
            if len(segments) >= size and repo_id in repos:
                return repo_id, repos[repo_id], segments[size:]
        size = 2 if len(segments) >= 2 and segments[1] not in _API_VERBS else 1
        return "/".join(segments[:size]), None, segments[size:]

    @staticmethod
    def _revision(repo: HubRepo, rev: str) -> str:
        if rev in ("main", repo.sha):
            return repo.sha
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")

    # ------------------------------------------------------------------ endpoints

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        if segments and segments[-1] == "":
            segments.pop()
        if len(segments) >= 2 and segments[0] == "api" and segments[1] == "models":
            self._api_models(h, segments[2:], query)
            return
        if segments and segments[0] in REPO_TYPE_PREFIXES:
            segments = segments[1:]  # datasets/spaces: never found here
        if "resolve" in segments[1:3]:
            index = segments.index("resolve", 1)
            self._resolve(h, segments[:index], segments[index + 1 :])
            return
        h.send_bytes(404, b'{"error":"Sorry, we can\'t find the page you are looking for."}', _JSON)

    def _api_models(self, h: _Handler, segments: list[str], query: dict[str, list[str]]) -> None:
        repo_id, repo, rest = self._find_repo(segments)
        if repo is None or not repo_id:
            raise HubError(404, "RepoNotFound", "Repository not found")
        if h.command == "GET" and not rest:
            h.send_json(200, repo.info(repo.sha))
        elif h.command == "GET" and len(rest) == 2 and rest[0] == "revision":
            h.send_json(200, repo.info(self._revision(repo, rest[1])))
        elif h.command == "GET" and len(rest) >= 2 and rest[0] == "tree":
            recursive = query.get("recursive", ["false"])[-1].lower() in ("1", "true")
            h.send_json(200, self._tree(repo, rest[1], "/".join(rest[2:]), recursive))
        elif h.command == "POST" and len(rest) == 2 and rest[0] == "paths-info":
            self._revision(repo, rest[1])
            h.send_json(200, self._paths_info(repo, h.form_or_json_paths()))
        else:
            h.send_bytes(404, b'{"error":"Not Found"}', _JSON)

    def _tree(self, repo: HubRepo, rev: str, path: str, recursive: bool) -> list[dict[str, Any]]:
        sha = self._revision(repo, rev)
        path = path.strip("/")
        folders = repo.folders
        if path and path not in folders:
            if path in repo.files:  # a file is not a tree
                raise HubError(404, "EntryNotFound", f"{path} is not a directory", commit=sha)
            raise HubError(404, "EntryNotFound", f'{path} does not exist on "{rev}"', commit=sha)
        prefix = f"{path}/" if path else ""

        def wanted(item: str) -> bool:
            if not item.startswith(prefix):
                return False
            return recursive or "/" not in item[len(prefix) :]

        entries = [
            {"type": "directory", "oid": repo.folder_oid(f), "path": f}
            for f in folders
            if wanted(f)
        ]
        entries += [file.tree_entry() for file in repo.files.values() if wanted(file.path)]
        return sorted(entries, key=lambda e: e["path"])

    def _paths_info(self, repo: HubRepo, paths: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        folders = set(repo.folders)
        for path in paths:
            path = path.strip("/")
            if path in repo.files:
                found.append(repo.files[path].tree_entry())
            elif path in folders:
                found.append({"type": "directory", "oid": repo.folder_oid(path), "path": path})
        return found

    def _resolve(self, h: _Handler, repo_segments: list[str], rest: list[str]) -> None:
        _repo_id, repo, extra = self._find_repo(repo_segments)
        if repo is None or extra:
            raise HubError(404, "RepoNotFound", "Repository not found")
        if len(rest) < 2:
            raise HubError(404, "EntryNotFound", "Entry not found", commit=repo.sha)
        sha = self._revision(repo, rest[0])
        path = "/".join(rest[1:])
        if repo.gated:
            message = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it "
                "and be authenticated to access it. Please log in."
            )
            raise HubError(401, "GatedRepo", message, commit=sha)
        file = repo.files.get(path)
        if file is None:
            raise HubError(404, "EntryNotFound", "Entry not found", commit=sha)
        if h.command == "GET" and self.fail_status is not None:
            status = self.fail_status
            h.send_bytes(status, b'{"error":"Internal Error - We\'re working hard to fix this"}',
                         _JSON, [("X-Repo-Commit", sha)])  # fmt: skip
            return
        headers = [
            ("ETag", f'"{file.etag}"'),
            ("X-Repo-Commit", sha),
            ("Accept-Ranges", "bytes"),
            ("Vary", "Origin, Accept, Range"),
        ]
        if file.is_lfs:
            name = file.path.rsplit("/", 1)[-1]
            headers += [
                ("X-Linked-Etag", f'"{file.etag}"'),
                ("X-Linked-Size", str(file.size)),
                ("Content-Disposition", f"inline; filename*=UTF-8''{quote(name)}; "
                                        f'filename="{name}";'),
            ]  # fmt: skip
        content_type = _TEXT if not file.is_lfs else "application/octet-stream"
        if file.path.endswith(".json"):
            content_type = _JSON
        start, end = 0, file.size
        status = 200
        wanted = h.headers.get("Range")
        if wanted and h.command == "GET":
            parsed = _parse_range(wanted, file.size)
            if parsed == "unsatisfiable":
                h.send_bytes(416, b"", None, [*headers, ("Content-Range", f"bytes */{file.size}")])
                return
            if parsed is not None:
                start, end = parsed
                status = 206
                headers.append(("Content-Range", f"bytes {start}-{end - 1}/{file.size}"))
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        for key, value in headers:
            h.send_header(key, value)
        h.send_header("Content-Length", str(end - start))
        h.end_headers_safely()
        if h.command == "HEAD":
            return
        self._send_body(h, file, start, end)

    def _send_body(self, h: _Handler, file: HubFile, start: int, end: int) -> None:
        limit = self._take_drop(file.path, end - start)
        sent = 0
        with file.source.open("rb") as source:
            source.seek(start)
            while start + sent < end:
                step = min(BLOCK_BYTES, end - start - sent)
                if limit is not None:
                    step = min(step, limit - sent)
                    if step <= 0:
                        break
                self._pause(self.byte_delay)
                block = source.read(step)
                if not block:
                    break  # the file shrank under us: the client sees a short body
                h.write_raw(block)
                sent += len(block)
                self._count(file.path, len(block))
        if limit is not None:
            h.cut(reset=self.drop_with_reset)


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """``bytes=N-``, ``bytes=N-M`` or ``bytes=-S`` as [start, end); None means "ignore it"."""
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:
            suffix = int(last)
            return (max(0, size - suffix), size) if suffix > 0 else "unsatisfiable"
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or start < 0:
        return "unsatisfiable"
    if end <= start:
        return None
    return start, min(end, size)


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(LoopbackHTTPServer):
    """Tracks open connections so ``stop()`` can cut idle keep-alive sockets too."""

    block_on_close = False
    allow_reuse_address = True
    owner: HubTestServer

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._track(request, True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._track(request, False)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client resetting a connection is normal, not worth a traceback."""
        if isinstance(sys.exc_info()[1], (OSError, ValueError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Per-connection HTTP/1.1 handler with keep-alive; every answer has a Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "hub-test-server"
    sys_version = ""
    server: _HTTPServer
    responded = False
    body = b""

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.responded = True
        super().send_response(code, message)

    def end_headers_safely(self) -> None:
        try:
            self.end_headers()
        except OSError:
            self.close_connection = True
            raise _ClientGone from None

    def write_raw(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
            raise _ClientGone from None

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers_safely()
        if body and self.command != "HEAD":
            self.write_raw(body)

    def send_json(self, status: int, obj: Any) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), _JSON)

    def form_or_json_paths(self) -> list[str]:
        """``paths`` of a ``paths-info`` body (form-encoded, as huggingface_hub sends, or JSON)."""
        text = self.body.decode("utf-8", errors="replace")
        if "json" in self.headers.get("Content-Type", ""):
            with contextlib.suppress(ValueError):
                value = json.loads(text)
                paths = value.get("paths", []) if isinstance(value, dict) else []
                return [p for p in paths if isinstance(p, str)]
            return []
        return parse_qs(text).get("paths", [])

    def cut(self, *, reset: bool) -> None:
        """Cut the connection mid-body: a clean FIN, or a TCP RST when ``reset``."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if reset:
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                # The file objects hold the descriptor open: close them first, then swap in
                # dummies so the request loop's final flush finds something to flush.
                self.rfile.close()
                self.wfile.close()
                self.connection.close()
                self.rfile, self.wfile = io.BytesIO(), io.BytesIO()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)

    def _dispatch(self) -> None:
        owner = self.server.owner
        length = self.headers.get("Content-Length")
        try:
            self.body = self.rfile.read(int(length)) if length and int(length) > 0 else b""
        except (OSError, ValueError):
            self.close_connection = True
            return
        kept = {k: self.headers[k] for k in RECORDED_HEADERS if self.headers.get(k) is not None}
        owner._record(HubRequest(self.command, self.path, kept))
        self.responded = False
        try:
            try:
                owner._handle(self)
            except HubError as exc:
                if self.responded:
                    raise
                headers = [("X-Error-Message", exc.message)]
                if exc.code:
                    headers.append(("X-Error-Code", exc.code))
                if exc.commit:
                    headers.append(("X-Repo-Commit", exc.commit))
                body = json.dumps({"error": exc.message}).encode()
                self.send_bytes(exc.status, body, _JSON, headers)
        except _ClientGone:
            self.close_connection = True
        except _Dropped:
            self.cut(reset=False)
        except Exception as exc:  # noqa: BLE001 - a bug in this fake must not hang the client
            traceback.print_exc()
            if self.responded:
                self.cut(reset=False)
            else:
                with contextlib.suppress(_ClientGone):
                    body = json.dumps({"error": f"hub test server: {exc!r}"}).encode()
                    self.send_bytes(500, body, _JSON)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch


# --------------------------------------------------------------------------- clients


@contextlib.contextmanager
def patch_hub_endpoint(
    url: str, *, cache_dir: str | Path | None = None, offline: bool = False
) -> Iterator[None]:
    """Point an already imported ``huggingface_hub`` at ``url`` for the ``with`` block.

    ``HF_ENDPOINT`` is read once, into ``huggingface_hub.constants``, when the package
    is imported, and ``hf_hub_url`` builds file URLs from ``HUGGINGFACE_CO_URL_TEMPLATE``,
    computed from it at that moment: both are patched here. ``HF_HUB_OFFLINE`` (also
    read at import; the test suite's conftest sets it) becomes ``offline``, and
    ``HF_HUB_CACHE`` becomes ``cache_dir`` when given. ``transformers`` reads all of
    these through ``huggingface_hub.constants`` at call time, so ``from_pretrained``
    follows. Process-wide: not for code that uses the real Hub concurrently.
    """
    from huggingface_hub import constants

    url = url.rstrip("/")
    values: dict[str, Any] = {
        "ENDPOINT": url,
        "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_OFFLINE": offline,
    }
    if cache_dir is not None:
        values["HF_HUB_CACHE"] = str(cache_dir)
    saved = {name: getattr(constants, name) for name in values}
    for name, value in values.items():
        setattr(constants, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(constants, name, value)


# --------------------------------------------------------------------------- a tiny model

TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TINY_JUNK = ("pytorch_model.bin", "README.md", "onnx/model.onnx", ".gitattributes")
"""Files :func:`make_tiny_llama_repo` adds that a transformers download should skip
(``.gitattributes`` is harmless either way)."""


def make_tiny_llama_repo(folder: str | Path, *, hidden_size: int = 32, layers: int = 2) -> Path:
    """Save a random, tiny ``LlamaForCausalLM`` with a chat tokenizer into ``folder``.

    The tokenizer is byte-level BPE without merges (256 byte tokens plus
    ``<|endoftext|>`` = pad, ``<|im_start|>`` = bos, ``<|im_end|>`` = eos) and a
    ChatML chat template; the model has ~110 KB of float32 weights. Like a real
    repository it also holds files a download should skip: ``pytorch_model.bin``
    (the same weights, pickled), ``README.md``, ``onnx/model.onnx`` (100 KB of
    deterministic bytes) and ``.gitattributes``. Output is deterministic, so the
    commit sha is stable. Returns ``folder``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(TINY_SPECIAL_TOKENS)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(TINY_SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        chat_template=TINY_CHAT_TEMPLATE,
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        pad_token_id=0, bos_token_id=1, eos_token_id=2, do_sample=False, max_new_tokens=16
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "README.md").write_text(
        "---\nlibrary_name: transformers\npipeline_tag: text-generation\n---\n"
        "# tiny-chat\n\nA random tiny Llama for tests.\n",
        encoding="utf-8",
    )
    (folder / "onnx").mkdir(exist_ok=True)
    junk = b"".join(hashlib.sha256(b"onnx %d" % i).digest() for i in range(100 * 1024 // 32))
    (folder / "onnx" / "model.onnx").write_bytes(junk)
    (folder / ".gitattributes").write_text(GITATTRIBUTES, encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- CLI


def _repo_arg(text: str) -> tuple[str, Path]:
    repo_id, sep, path = text.partition("=")
    if not sep or not repo_id or not path:
        raise argparse.ArgumentTypeError(f"expected REPO_ID=PATH, got {text!r}")
    return repo_id, Path(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed or until ``--lifetime`` seconds pass; the URL is stdout's first line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--repo", type=_repo_arg, action="append", default=[], metavar="REPO_ID=PATH",
        help="serve the folder PATH as REPO_ID (repeatable)",
    )  # fmt: skip
    parser.add_argument("--byte-delay", type=float, default=0.0, help="seconds per 64 KiB block")
    parser.add_argument("--lifetime", type=float, default=None, help="exit after N seconds")
    args = parser.parse_args(argv)

    try:
        server = HubTestServer(dict(args.repo), host=args.host, port=args.port)
    except ValueError as exc:
        parser.error(str(exc))
    server.byte_delay = args.byte_delay
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())  # exit cleanly, sockets closed
    server.start()
    print(server.url, flush=True)
    for repo_id in dict(args.repo):
        repo = server.repo(repo_id)
        print(f"{repo_id} {repo.sha} {len(repo.files)} files", flush=True)
    try:
        done.wait(args.lifetime)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
