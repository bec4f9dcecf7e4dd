"""A loopback Hugging Face Hub: the part of the Hub's HTTP API that huggingface_hub uses.

It keeps repos in memory with their full commit history, so the real client (`upload_folder`,
`snapshot_download`, `hf_hub_download`, `from_pretrained`, `timm.create_model("hf-hub:...")`)
can push and pull through it exactly as it does against huggingface.co.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# Files the real Hub stores with LFS (its default .gitattributes), plus anything large.
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".model",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".webp",
    ".onnx",
    ".msgpack",
    ".h5",
    ".npy",
    ".npz",
    ".zip",
    ".gz",
    ".parquet",
)
LFS_MIN_SIZE = 10 * 1024 * 1024
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class File:
    data: bytes
    lfs: bool

    @property
    def oid(self) -> str:  # what git stores: the blob, or for LFS the pointer file
        return git_sha1(self.pointer if self.lfs else self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {len(self.data)}\n"
        ).encode()

    @property
    def etag(self) -> str:  # what the Hub sends as ETag: sha256 for LFS, git blob sha1 otherwise
        return self.sha256 if self.lfs else git_sha1(self.data)


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, File]
    date: float


@dataclass
class Repo:
    type: str
    id: str
    private: bool = False
    sdk: str | None = None
    commits: list[Commit] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.refs.get(revision, revision)
        for commit in self.commits:
            if commit.oid == oid or (len(oid) >= 7 and commit.oid.startswith(oid)):
                return commit
        return None


class Hub:
    """The store: repos by (type, id), LFS objects by sha256."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.down = False  # when True every request gets a 503, as during a Hub outage
        self.requests: list[tuple[str, str]] = []

    def create(
        self, type_: str, repo_id: str, private: bool = False, sdk: str | None = None
    ) -> Repo:
        repo = Repo(type_, repo_id, private, sdk)
        gitattributes = File(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n", lfs=False)
        self._commit(repo, "initial commit", {".gitattributes": gitattributes})
        self.repos[(type_, repo_id)] = repo
        return repo

    def _commit(self, repo: Repo, message: str, files: dict[str, File]) -> Commit:
        parent = repo.commits[-1].oid if repo.commits else ""
        seed = f"{repo.type}/{repo.id}\n{parent}\n{message}\n{time.time_ns()}\n"
        seed += "".join(f"{p}:{f.oid}\n" for p, f in sorted(files.items()))
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), message, files, time.time())
        repo.commits.append(commit)
        repo.refs["main"] = commit.oid
        return commit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: Hub  # set on the subclass made by `serve`

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    # --- plumbing -------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: object, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _repo(self, type_: str, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get((type_, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
        return repo

    def _commit_of(self, repo: Repo, revision: str) -> Commit | None:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _dispatch(self) -> None:
        self.hub.requests.append((self.command, self.path))
        if self.hub.down:
            self._body()
            self._error(503, None, "The Hub is down for maintenance")
            return
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        for method, pattern, handler in ROUTES:
            if method == self.command and (m := re.fullmatch(pattern, path)):
                with self.hub.lock:
                    handler(self, *m.groups(), query=query)
                return
        self._body()
        self._error(404, None, f"No route for {self.command} {path}")

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch

    # --- API ------------------------------------------------------------------------------

    def whoami(self, query: dict) -> None:
        self._json(
            {
                "type": "user",
                "id": "5f0c0ffee0c0ffee0c0ffee0",
                "name": "tester",
                "fullname": "Test Person",
                "avatarUrl": "/avatars/tester.svg",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"role": "write"}},
            }
        )

    def validate_yaml(self, query: dict) -> None:
        self._body()
        self._json({"errors": [], "warnings": []})

    def create_repo(self, query: dict) -> None:
        payload = json.loads(self._body() or b"{}")
        type_ = payload.get("type") or "model"
        repo_id = f"{payload['organization'] or 'tester'}/{payload['name']}"
        prefix = "" if type_ == "model" else f"{type_}s/"
        url = f"http://{self.headers['Host']}/{prefix}{repo_id}"
        if (type_, repo_id) in self.hub.repos:
            self._send(
                409, json.dumps({"error": "You already created this repo", "url": url}).encode()
            )
            return
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.hub.create(type_, repo_id, private, payload.get("sdk"))
        self._json({"url": url, "name": repo_id})

    def repo_info(self, types: str, repo_id: str, revision: str | None, query: dict) -> None:
        repo = self._repo(TYPES[types], repo_id)
        commit = repo and self._commit_of(repo, revision or "main")
        if commit is None:
            return
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": commit.oid,
            "private": repo.private,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.date)),
            "tags": [],
            "downloads": 0,
            "likes": 0,
            "siblings": [
                {"rfilename": p, "size": len(f.data), "blobId": f.oid}
                for p, f in sorted(commit.files.items())
            ],
        }
        if repo.sdk:
            info["sdk"] = repo.sdk
        self._json(info)

    def _entry(self, path: str, f: File) -> dict:
        entry = {"type": "file", "oid": f.oid, "size": len(f.data), "path": path}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": len(f.pointer)}
        return entry

    def tree(
        self, types: str, repo_id: str, revision: str, subpath: str | None, query: dict
    ) -> None:
        repo = self._repo(TYPES[types], repo_id)
        commit = repo and self._commit_of(repo, revision)
        if commit is None:
            return
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        base = (subpath or "").strip("/")
        prefix = f"{base}/" if base else ""
        entries, folders = [], set()
        for path, f in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for i in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:i]))
            if recursive or len(parts) == 1:
                entries.append(self._entry(path, f))
        if base and not entries and not folders:
            self._error(404, "EntryNotFound", f"{base} does not exist")
            return
        dirs = [
            {"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
            for d in sorted(folders)
        ]
        self._json(dirs + entries)

    def paths_info(self, types: str, repo_id: str, revision: str, query: dict) -> None:
        form = parse_qs(self._body().decode())
        repo = self._repo(TYPES[types], repo_id)
        commit = repo and self._commit_of(repo, revision)
        if commit is None:
            return
        out = []
        for path in form.get("paths", []):
            if path in commit.files:
                out.append(self._entry(path, commit.files[path]))
            elif any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
                out.append(
                    {
                        "type": "directory",
                        "oid": hashlib.sha1(path.encode()).hexdigest(),
                        "size": 0,
                        "path": path,
                    }
                )
        self._json(out)

    def preupload(self, types: str, repo_id: str, revision: str, query: dict) -> None:
        payload = json.loads(self._body())
        repo = self._repo(TYPES[types], repo_id)
        commit = repo and self._commit_of(repo, revision)
        if commit is None:
            return
        files = []
        for item in payload["files"]:
            path, size = item["path"], item["size"]
            lfs = path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE
            existing = commit.files.get(path)
            oid = None
            if existing is not None and existing.lfs == lfs:
                oid = existing.sha256 if lfs else git_sha1(existing.data)
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": path.startswith(".git/"),
                    "oid": oid,
                }
            )
        self._json({"files": files, "commitOid": commit.oid})

    def lfs_batch(self, prefix: str | None, repo_id: str, query: dict) -> None:
        payload = json.loads(self._body())
        type_ = TYPES.get((prefix or "").rstrip("/"), "model")
        if self._repo(type_, repo_id) is None:
            return
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs:
                href = f"http://{self.headers['Host']}/lfs-upload/{obj['oid']}"
                entry["actions"] = {"upload": {"href": href, "header": {}}}
            objects.append(entry)
        body = json.dumps({"transfer": "basic", "objects": objects}).encode()
        self._send(200, body, content_type="application/vnd.git-lfs+json")

    def lfs_upload(self, oid: str, query: dict) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            self._error(400, None, "sha256 mismatch")
            return
        self.hub.lfs[oid] = data
        self._send(200)

    def commit(self, types: str, repo_id: str, revision: str, query: dict) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        repo = self._repo(TYPES[types], repo_id)
        parent = repo and self._commit_of(repo, revision)
        if parent is None:
            return
        files = dict(parent.files)
        message = "commit"
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "header":
                message = value.get("summary") or message
            elif key == "file":
                files[value["path"]] = File(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                data = self.hub.lfs.get(value["oid"])
                if data is None:
                    self._error(400, None, f"LFS object {value['oid']} was never uploaded")
                    return
                files[value["path"]] = File(data, lfs=True)
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: f for p, f in files.items() if not p.startswith(folder)}
        commit = self.hub._commit(repo, message, files)
        prefix = "" if repo.type == "model" else f"{repo.type}s/"
        url = f"http://{self.headers['Host']}/{prefix}{repo_id}/commit/{commit.oid}"
        self._json({"success": True, "commitOid": commit.oid, "commitUrl": url})

    def resolve(
        self, prefix: str | None, repo_id: str, revision: str, path: str, query: dict
    ) -> None:
        type_ = TYPES.get((prefix or "").rstrip("/"), "model")
        repo = self._repo(type_, repo_id)
        commit = repo and self._commit_of(repo, revision)
        if commit is None:
            return
        f = commit.files.get(path)
        if f is None:
            self._error(404, "EntryNotFound", f"{path} does not exist at {revision}")
            return
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
        if f.lfs:
            headers |= {"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.data))}
        data = f.data
        if m := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or ""):
            start, end = int(m[1]), int(m[2] or len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(206, data[start : end + 1], headers, "application/octet-stream")
            return
        self._send(200, data, headers, "application/octet-stream")


REPO = r"([^/]+/[^/]+)"
PREFIX = r"((?:datasets|spaces)/)?"
ROUTES = [
    ("GET", r"/api/whoami-v2", Handler.whoami),
    ("POST", r"/api/validate-yaml", Handler.validate_yaml),
    ("POST", r"/api/repos/create", Handler.create_repo),
    ("GET", rf"/api/(models|datasets|spaces)/{REPO}(?:/revision/(.+))?", Handler.repo_info),
    ("GET", rf"/api/(models|datasets|spaces)/{REPO}/tree/([^/]+)(/.*)?", Handler.tree),
    ("POST", rf"/api/(models|datasets|spaces)/{REPO}/paths-info/([^/]+)", Handler.paths_info),
    ("POST", rf"/api/(models|datasets|spaces)/{REPO}/preupload/([^/]+)", Handler.preupload),
    ("POST", rf"/api/(models|datasets|spaces)/{REPO}/commit/([^/]+)", Handler.commit),
    ("POST", rf"/{PREFIX}{REPO}\.git/info/lfs/objects/batch", Handler.lfs_batch),
    ("PUT", r"/lfs-upload/([0-9a-f]{64})", Handler.lfs_upload),
    ("GET", rf"/{PREFIX}{REPO}/resolve/([^/]+)/(.+)", Handler.resolve),
    ("HEAD", rf"/{PREFIX}{REPO}/resolve/([^/]+)/(.+)", Handler.resolve),
]


class Server:
    """A running loopback Hub: `url` for HF_ENDPOINT, `hub` for the stored repos."""

    def __init__(self, port: int = 0) -> None:
        self.hub = Hub()
        handler = type("BoundHandler", (Handler,), {"hub": self.hub})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def files(self, repo_id: str, revision: str = "main", type_: str = "model") -> dict[str, bytes]:
        """The files of `repo_id` at `revision`, as stored (for assertions)."""
        commit = self.hub.repos[(type_, repo_id)].resolve(revision)
        return {p: f.data for p, f in commit.files.items()}

    def commits(self, repo_id: str, type_: str = "model") -> list[str]:
        return [c.oid for c in self.hub.repos[(type_, repo_id)].commits]
