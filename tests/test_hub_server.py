"""The fake Hugging Face Hub must satisfy the real ``huggingface_hub`` and ``transformers``.

Wire-level checks use a bare httpx client. The client-side checks run the real
``huggingface_hub`` 2.x in subprocesses: it reads ``HF_ENDPOINT`` (and
``HF_HUB_OFFLINE``, ``HF_HOME``) once, at import, and this process may already
have imported it with the conftest's ``HF_HUB_OFFLINE=1``. One test shows the
in-process alternative, :func:`patch_hub_endpoint`.

What these tests pin down about huggingface_hub 2.x (see the resume tests'
docstrings): a download cut mid-file is retried *within the same
call* (``Range: bytes=<n>-`` where n counts whole ``DOWNLOAD_CHUNK_SIZE`` =
10 MiB chunks), only for ``RemoteProtocolError``/timeouts; a reset connection
fails the call, and the partial file is deleted, so the next call starts at 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.hub_server import (
    TINY_JUNK,
    HubRepo,
    HubTestServer,
    git_blob_sha1,
    make_tiny_llama_repo,
    patch_hub_endpoint,
)

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "tests/tiny-chat"
WEIGHTS = "model.safetensors"
ALLOW = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model"]
"""What a transformers download wants: no pytorch_model.bin, README or onnx/."""


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama_repo(tmp_path_factory.mktemp("tiny-chat-src"))


@pytest.fixture
def hub(tiny_repo: Path) -> Iterator[HubTestServer]:
    with HubTestServer({REPO_ID: tiny_repo}) as server:
        yield server


@pytest.fixture
def client(hub: HubTestServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=5) as c:
        yield c


def run_client(
    hub: HubTestServer, home: Path, script: str, *args: str, timeout: float = 90
) -> dict[str, Any]:
    """Run ``script`` against ``hub`` with a fresh environment; returns its last JSON line."""
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_OFFLINE": "0",  # the conftest sets 1 for this process
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def file_gets(hub: HubTestServer, name: str) -> list[dict[str, str]]:
    return [r.headers for r in hub.file_requests("GET") if r.path.endswith("/" + name)]


# ----------------------------------------------------------------------------- the wire


def test_repo_info_tree_and_errors(hub: HubTestServer, client: httpx.Client) -> None:
    repo = hub.repo(REPO_ID)
    assert len(repo.sha) == 40 and HubRepo(REPO_ID, repo.folder).sha == repo.sha  # stable
    for path in (f"/api/models/{REPO_ID}", f"/api/models/{REPO_ID}/revision/main"):
        info = client.get(path).json()
        assert (info["id"], info["sha"]) == (REPO_ID, repo.sha)
        assert {s["rfilename"] for s in info["siblings"]} == set(repo.files)
    assert client.get(f"/api/models/{REPO_ID}/revision/{repo.sha}").json()["sha"] == repo.sha

    tree = client.get(f"/api/models/{REPO_ID}/tree/{repo.sha}?recursive=true&expand=false").json()
    files = {e["path"]: e for e in tree if e["type"] == "file"}
    assert set(files) == set(repo.files) and "onnx/model.onnx" in files
    config = (repo.folder / "config.json").read_bytes()
    assert files["config.json"] == {
        "type": "file",
        "oid": git_blob_sha1(config),
        "size": len(config),
        "path": "config.json",
    }
    weights = (repo.folder / WEIGHTS).read_bytes()
    assert files[WEIGHTS]["lfs"]["oid"] == hashlib.sha256(weights).hexdigest()
    assert files[WEIGHTS]["lfs"]["size"] == files[WEIGHTS]["size"] == len(weights)
    top = client.get(f"/api/models/{REPO_ID}/tree/main").json()
    assert [e["path"] for e in top if e["type"] == "directory"] == ["onnx"]
    assert "onnx/model.onnx" not in {e["path"] for e in top}
    sub = client.get(f"/api/models/{REPO_ID}/tree/main/onnx").json()
    assert [e["path"] for e in sub] == ["onnx/model.onnx"]
    info = client.post(
        f"/api/models/{REPO_ID}/paths-info/main", data={"paths": ["config.json", "nope"]}
    ).json()
    assert [e["path"] for e in info] == ["config.json"]

    def error(method: str, path: str) -> tuple[int, str | None, str | None]:
        r = client.request(method, path)
        return r.status_code, r.headers.get("x-error-code"), r.headers.get("x-repo-commit")

    assert error("GET", "/api/models/tests/nope/revision/main") == (404, "RepoNotFound", None)
    assert error("GET", "/api/models/tests/nope/tree/main") == (404, "RepoNotFound", None)
    assert error("HEAD", "/tests/nope/resolve/main/config.json") == (404, "RepoNotFound", None)
    assert error("HEAD", f"/{REPO_ID}/resolve/main/nope.json") == (404, "EntryNotFound", repo.sha)
    assert error("GET", f"/api/models/{REPO_ID}/tree/main/additional_chat_templates") == (
        404,
        "EntryNotFound",
        repo.sha,
    )
    assert error("GET", f"/api/models/{REPO_ID}/revision/v2")[:2] == (404, "RevisionNotFound")
    assert error("HEAD", f"/{REPO_ID}/resolve/v2/config.json")[:2] == (404, "RevisionNotFound")
    assert client.get("/api/models/tests/nope").headers["x-error-message"]
    assert client.get("/api/agent-harnesses").status_code == 404
    assert client.post("/api/telemetry/examples").status_code == 404
    assert hub.bytes_sent == 0


def test_resolve_headers_and_ranges(hub: HubTestServer, client: httpx.Client) -> None:
    repo = hub.repo(REPO_ID)
    config = (repo.folder / "config.json").read_bytes()
    head = client.head(f"/{REPO_ID}/resolve/main/config.json")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == f'"{git_blob_sha1(config)}"'
    assert head.headers["x-repo-commit"] == repo.sha
    assert head.headers["content-length"] == str(len(config))
    assert head.headers["accept-ranges"] == "bytes"
    assert "x-linked-etag" not in head.headers

    weights = (repo.folder / WEIGHTS).read_bytes()
    sha256 = hashlib.sha256(weights).hexdigest()
    lfs = client.head(f"/{REPO_ID}/resolve/{repo.sha}/{WEIGHTS}")
    assert lfs.headers["etag"] == lfs.headers["x-linked-etag"] == f'"{sha256}"'
    assert lfs.headers["x-linked-size"] == str(len(weights))
    assert hub.bytes_sent == 0

    full = client.get(f"/{REPO_ID}/resolve/main/{WEIGHTS}")
    assert full.status_code == 200 and full.content == weights
    part = client.get(f"/{REPO_ID}/resolve/main/{WEIGHTS}", headers={"Range": "bytes=100000-"})
    assert part.status_code == 206 and part.content == weights[100000:]
    assert part.headers["content-range"] == f"bytes 100000-{len(weights) - 1}/{len(weights)}"
    tail = client.get(f"/{REPO_ID}/resolve/main/config.json", headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, config[-10:])
    past = client.get(f"/{REPO_ID}/resolve/main/config.json", headers={"Range": "bytes=9999-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(config)}"

    assert hub.bytes_sent_by_file == {WEIGHTS: 2 * len(weights) - 100000, "config.json": 10}
    assert hub.bytes_sent == 2 * len(weights) - 100000 + 10
    assert [r.headers.get("Range") for r in hub.file_requests("GET")][:2] == [None, "bytes=100000-"]


def test_faults(hub: HubTestServer, client: httpx.Client) -> None:
    url = f"/{REPO_ID}/resolve/main/{WEIGHTS}"
    size = hub.repo(REPO_ID).files[WEIGHTS].size
    hub.drop_after_bytes = 5000
    hub.drop_file = WEIGHTS
    assert client.get(f"/{REPO_ID}/resolve/main/config.json").status_code == 200  # not targeted
    with pytest.raises(httpx.RemoteProtocolError):  # FIN after 5000 of `size` bytes
        client.get(url)
    assert (hub.drop_after_bytes, hub.drops, hub.bytes_sent_by_file[WEIGHTS]) == (None, 1, 5000)
    assert len(client.get(url).content) == size  # one-shot: the next GET is whole

    hub.drop_after_bytes, hub.drop_with_reset = 1000, True
    with pytest.raises(httpx.ReadError):  # RST
        client.get(url)
    hub.reset_faults()

    hub.fail_status = 500
    assert client.head(url).status_code == 200  # metadata still answers
    failed = client.get(url)
    assert failed.status_code == 500 and failed.headers["x-repo-commit"]
    hub.fail_status = None

    hub.byte_delay = 0.05  # 109 KB = two 64 KiB blocks
    started = time.monotonic()
    assert len(client.get(url).content) == size
    assert time.monotonic() - started >= 0.1


# ----------------------------------------------------------------------------- real clients

DOWNLOAD_AND_GENERATE = """
import json, os, sys
from huggingface_hub import snapshot_download
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = snapshot_download(sys.argv[1], allow_patterns=json.loads(sys.argv[2]))
files = sorted(
    os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
)
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder)
inputs = tokenizer.apply_chat_template(
    [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt",
    return_dict=True,
)
out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
new = out[0][inputs["input_ids"].shape[1]:].tolist()
print(json.dumps({"folder": folder, "files": files, "new_tokens": new}))
"""


def test_snapshot_download_with_patterns_then_generate(
    hub: HubTestServer, tiny_repo: Path, tmp_path: Path
) -> None:
    report = run_client(hub, tmp_path / "hf", DOWNLOAD_AND_GENERATE, REPO_ID, json.dumps(ALLOW))
    sha = hub.repo(REPO_ID).sha
    assert report["folder"].endswith(f"models--tests--tiny-chat/snapshots/{sha}")
    wanted = {p for p in hub.repo(REPO_ID).files if p.endswith((".json", ".safetensors", ".jinja"))}
    assert set(report["files"]) == wanted and WEIGHTS in wanted
    assert len(report["new_tokens"]) == 4
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.file_requests("GET")}
    assert fetched == wanted
    assert not any(junk.rsplit("/", 1)[-1] in fetched for junk in TINY_JUNK)
    assert hub.bytes_sent_by_file == {p: hub.repo(REPO_ID).files[p].size for p in wanted}
    kinds = [r.path.split("?")[0] for r in hub.requests if r.path.startswith("/api/")]
    assert kinds[:2] == [
        f"/api/models/{REPO_ID}/revision/main",
        f"/api/models/{REPO_ID}/tree/{sha}",
    ]


ERRORS = """
import json
from huggingface_hub import errors, hf_hub_download, snapshot_download
calls = {
    "snapshot_unknown_repo": lambda: snapshot_download("tests/nope"),
    "file_unknown_repo": lambda: hf_hub_download("tests/nope", "config.json"),
    "absent_file": lambda: hf_hub_download("tests/tiny-chat", "nope.json"),
    "unknown_revision": lambda: snapshot_download("tests/tiny-chat", revision="v2"),
    "gated": lambda: hf_hub_download("tests/gated", "config.json"),
    "server_error": lambda: hf_hub_download("tests/tiny-chat", "config.json"),
}
checks = {
    "RepositoryNotFoundError": errors.RepositoryNotFoundError,
    "EntryNotFoundError": errors.EntryNotFoundError,
    "RevisionNotFoundError": errors.RevisionNotFoundError,
    "GatedRepoError": errors.GatedRepoError,
    "HfHubHTTPError": errors.HfHubHTTPError,
}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = None
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        matching = [k for k, c in checks.items() if isinstance(exc, c)]
        out[name] = [type(exc).__name__, matching, status]
print(json.dumps(out))
"""


def test_client_errors(hub: HubTestServer, tiny_repo: Path, tmp_path: Path) -> None:
    hub.add_repo("tests/gated", HubRepo("tests/gated", tiny_repo, gated=True))
    hub.fail_status = 500  # file GETs only: the metadata HEAD still succeeds
    report = run_client(hub, tmp_path / "hf", ERRORS)
    not_found = ["RepositoryNotFoundError", "HfHubHTTPError"]
    assert report["snapshot_unknown_repo"] == ["RepositoryNotFoundError", not_found, 404]
    assert report["file_unknown_repo"] == ["RepositoryNotFoundError", not_found, 404]
    assert report["absent_file"] == [
        "RemoteEntryNotFoundError",
        ["EntryNotFoundError", "HfHubHTTPError"],
        404,
    ]
    assert report["unknown_revision"][:2] == [
        "RevisionNotFoundError",
        ["RevisionNotFoundError", "HfHubHTTPError"],
    ]
    assert report["gated"] == [
        "GatedRepoError",
        [*not_found[:1], "GatedRepoError", *not_found[1:]],
        401,
    ]
    assert report["server_error"] == ["HfHubHTTPError", ["HfHubHTTPError"], 500]


RESUME = """
import glob, hashlib, json, os, sys
from huggingface_hub import constants, snapshot_download
if sys.argv[1] != "default":
    constants.DOWNLOAD_CHUNK_SIZE = int(sys.argv[1])  # read by http_get at call time
folder = snapshot_download("tests/tiny-chat", allow_patterns=["config.json", "model.safetensors"])
data = open(os.path.join(folder, "model.safetensors"), "rb").read()
leftovers = glob.glob(os.path.join(constants.HF_HUB_CACHE, "**", "*.incomplete"), recursive=True)
print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "leftovers": leftovers}))
"""


@pytest.mark.parametrize(
    ("chunk", "drop", "resumed_at"),
    [
        pytest.param(4096, 40960, 40960, id="4KiB-chunks-range-resume"),
        pytest.param(4096, 42000, 40960, id="partial-chunk-is-refetched"),
        pytest.param("default", 40000, 0, id="10MiB-chunks-full-refetch"),
    ],
)
def test_dropped_download_resumes_in_the_same_call(
    hub: HubTestServer, tmp_path: Path, chunk: int | str, drop: int, resumed_at: int
) -> None:
    """A FIN mid-body is ``RemoteProtocolError``: ``http_get`` sleeps 1 s and asks again
    with ``Range: bytes=<bytes written>-``; it writes whole ``DOWNLOAD_CHUNK_SIZE`` chunks
    only, so a file under 10 MiB is re-fetched whole (no Range) unless that is lowered."""
    weights = hub.repo(REPO_ID).files[WEIGHTS]
    hub.drop_after_bytes, hub.drop_file = drop, WEIGHTS
    report = run_client(hub, tmp_path / "hf", RESUME, str(chunk))
    assert report == {"sha256": weights.sha256, "leftovers": []}
    assert hub.drops == 1
    gets = file_gets(hub, WEIGHTS)
    assert len(gets) == 2 and "Range" not in gets[0]
    if resumed_at:
        assert gets[1]["Range"] == f"bytes={resumed_at}-"
    else:
        assert "Range" not in gets[1]
    # The dropped part plus the rest from the resume point: never twice the file.
    assert hub.bytes_sent_by_file[WEIGHTS] == drop + weights.size - resumed_at


RESET = """
import glob, json, os
from huggingface_hub import constants, hf_hub_download
try:
    hf_hub_download("tests/tiny-chat", "model.safetensors")
    first = None
except Exception as exc:
    first = type(exc).__name__
leftovers = glob.glob(os.path.join(constants.HF_HUB_CACHE, "**", "*.incomplete"), recursive=True)
path = hf_hub_download("tests/tiny-chat", "model.safetensors")
print(json.dumps({"first": first, "leftovers": leftovers, "size": os.path.getsize(path)}))
"""


def test_reset_connection_fails_and_the_next_call_starts_over(
    hub: HubTestServer, tmp_path: Path
) -> None:
    """A RST is ``ReadError``, not retried: the call fails and deletes its partial file
    (``blobs/<etag>.<random>.incomplete``), so huggingface_hub 2.x never resumes across calls."""
    size = hub.repo(REPO_ID).files[WEIGHTS].size
    hub.drop_after_bytes, hub.drop_with_reset = 40000, True
    report = run_client(hub, tmp_path / "hf", RESET)
    assert report == {"first": "ReadError", "leftovers": [], "size": size}
    gets = file_gets(hub, WEIGHTS)
    assert len(gets) == 2 and not any("Range" in g for g in gets)
    assert 0 < hub.bytes_sent_by_file[WEIGHTS] - size <= 40000


PROGRESS = """
import io, json, sys
from tqdm import tqdm
from huggingface_hub import snapshot_download
bars = []
class Recorder(tqdm):
    def __init__(self, *args, **kwargs):
        self.seen = {"desc": kwargs.get("desc"), "unit": kwargs.get("unit", "it"),
                     "initial_total": kwargs.get("total"), "updates": 0}
        bars.append(self)
        super().__init__(*args, file=io.StringIO(), **kwargs)
    def update(self, n=1):
        self.seen["updates"] += n or 0
        return super().update(n)
snapshot_download("tests/tiny-chat", allow_patterns=json.loads(sys.argv[1]), tqdm_class=Recorder)
print(json.dumps([dict(b.seen, total=b.total, final_desc=b.desc) for b in bars]))
"""


def test_tqdm_class_sees_byte_progress(hub: HubTestServer, tmp_path: Path) -> None:
    report = run_client(hub, tmp_path / "hf", PROGRESS, json.dumps(ALLOW))
    sizes = {p: f.size for p, f in hub.repo(REPO_ID).files.items()}
    wanted = [p for p in sizes if p.endswith((".json", ".safetensors", ".jinja"))]
    total = sum(sizes[p] for p in wanted)
    transfer, reconstruct, files = report
    assert transfer == {
        "desc": "Downloading bytes",
        "unit": "B",
        "initial_total": 0,  # grown by each file's Content-Length, then snapped to n
        "updates": total,
        "total": total,
        "final_desc": "Download complete",
    }
    assert reconstruct == {
        "desc": "Reconstructing (incomplete total...)",
        "unit": "B",
        "initial_total": 0,  # grown by each file's size as its download starts
        "updates": total,
        "total": total,
        "final_desc": "Reconstruction complete: ",  # set_description() appends ": "
    }
    count = len(wanted)
    assert files == {
        "desc": f"Fetching {count} files",
        "unit": "it",
        "initial_total": count,
        "updates": count,
        "total": count,
        "final_desc": f"Fetching {count} files",
    }


def test_in_process_patch_of_the_endpoint(hub: HubTestServer, tmp_path: Path) -> None:
    """``HF_ENDPOINT`` is read at import, but patching the constants works in-process,
    for ``huggingface_hub`` and for ``transformers`` (which reads them at call time)."""
    from huggingface_hub import constants, snapshot_download
    from transformers import AutoTokenizer

    def current() -> tuple[str, str, bool]:
        return constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, constants.HF_HUB_OFFLINE

    before = current()
    with patch_hub_endpoint(hub.url, cache_dir=tmp_path / "hub"):
        folder = snapshot_download(REPO_ID, allow_patterns=["config.json"])
        tokenizer = AutoTokenizer.from_pretrained(REPO_ID)  # no cache_dir: the patched one
    assert current() == before
    assert Path(folder, "config.json").is_file()
    assert tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    assert Path(folder).is_relative_to(tmp_path / "hub")
    assert {"config.json", "tokenizer.json"} <= set(hub.bytes_sent_by_file)


def test_cli_serves_a_folder(tiny_repo: Path) -> None:
    command = [sys.executable, "-m", "tests.servers.hub_server", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--repo", f"{REPO_ID}={tiny_repo}", "--lifetime", "30"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        sha = HubRepo(REPO_ID, tiny_repo).sha
        assert proc.stdout.readline().split()[:2] == [REPO_ID, sha]
        info = httpx.get(f"{url}/api/models/{REPO_ID}/revision/main", timeout=5).json()
        assert info["sha"] == sha
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    bad = subprocess.run(
        [sys.executable, "-m", "tests.servers.hub_server", "--repo", "no-equals-sign"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "REPO_ID=PATH" in bad.stderr
