"""A local stand-in for the Hugging Face Hub's HTTP API: just what `cxrds push` asks of it.

Repositories hold commits of small files (every upload is "regular", sent inside the commit, no LFS); a commit
whose parentCommit is not the branch head is refused with 412 as the Hub does; tags are per repository type and
a second tag of one name is a 409. Every request is recorded in `requests` as (method, path).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

_REPO = r"/api/(?P<type>models|datasets)/(?P<repo>[^/]+/[^/]+)"


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # oid → files
    head: str = ""
    tags: dict[str, str] = field(default_factory=dict)  # name → oid
    settings: list[dict] = field(default_factory=list)  # every settings update, in order, with the head then

    def commit(self, files: dict[str, bytes]) -> str:
        oid = hashlib.sha1(json.dumps([self.head, sorted(files)]).encode(), usedforsecurity=False).hexdigest()
        oid = hashlib.sha1((oid + str(len(self.commits))).encode(), usedforsecurity=False).hexdigest()
        self.commits[oid], self.head = files, oid
        return oid


class HubStandIn:
    """`with HubStandIn() as hub:` serves on `hub.url`; `hub.repos[("datasets", "o/n")]` is a repository."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.commit_headers: list[dict] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_HEAD(self) -> None:
                hub._handle(self, "HEAD")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

            def do_DELETE(self) -> None:
                hub._handle(self, "DELETE")

            def do_PUT(self) -> None:
                hub._handle(self, "PUT")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> HubStandIn:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def create(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.setdefault((repo_type, repo_id), Repo())
        if not repo.head:
            repo.commit({".gitattributes": b"*.parquet filter=lfs\n"})
        return repo

    def _handle(self, request: http.server.BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        path = unquote(url.path)
        self.requests.append((method, path))
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        resolved = re.fullmatch(r"/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path)
        if resolved:
            return self._resolve(request, method, resolved)
        status, payload = self._route(method, path, body, url.query)
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        if status == 404:
            request.send_header("X-Error-Code", "RepoNotFound")
        request.end_headers()
        request.wfile.write(data)

    def _resolve(self, request: http.server.BaseHTTPRequestHandler, method: str, match: re.Match) -> None:
        """A file's bytes at a revision, whole or the one byte range asked for (as the Hub's resolve URLs)."""
        repo = self.repos.get(("datasets", match["repo"]))
        oid = repo and (repo.tags.get(match["rev"]) or (repo.head if match["rev"] == "main" else match["rev"]))
        data = repo.commits.get(oid, {}).get(match["file"]) if repo else None
        if data is None:
            request.send_response(404)
            request.send_header("X-Error-Code", "EntryNotFound")
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        start, end = 0, len(data)
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range") or "")
        if ranged:
            start, end = int(ranged[1]), min(len(data), int(ranged[2]) + 1 if ranged[2] else len(data))
        part = data[start:end]
        request.send_response(206 if ranged else 200)
        request.send_header("Content-Length", str(len(part)))
        request.send_header("ETag", f'"{blob_id(data)}"')
        request.send_header("X-Repo-Commit", oid)
        request.send_header("Accept-Ranges", "bytes")
        if ranged:
            request.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        request.end_headers()
        if method == "GET":
            request.wfile.write(part)

    def _route(self, method: str, path: str, body: bytes, query: str = "") -> tuple[int, object]:
        if method == "POST" and path == "/api/validate-yaml":
            return 200, {"errors": [], "warnings": []}
        if method == "POST" and path == "/api/repos/create":
            spec = json.loads(body)
            name = f"{spec['organization']}/{spec['name']}" if spec.get("organization") else spec["name"]
            self.create(spec.get("type", "model") + "s", name)
            return 200, {"url": f"{self.url}/{name}"}
        match = re.fullmatch(_REPO + r"(?P<rest>/.*)?", path)
        if not match or (match["type"], match["repo"]) not in self.repos:
            return 404, {"error": "Repository not found"}
        repo, rest = self.repos[(match["type"], match["repo"])], match["rest"] or ""
        if method == "GET" and (rest == "" or rest.startswith("/revision/")):
            return 200, {"id": match["repo"], "sha": repo.head, "private": False}
        if method == "GET" and rest == "/refs":
            tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": oid} for t, oid in repo.tags.items()]
            branch = {"name": "main", "ref": "refs/heads/main", "targetCommit": repo.head}
            return 200, {"branches": [branch], "converts": [], "tags": tags}
        if method == "GET" and rest.startswith("/tree/"):
            revision = rest.split("/")[2]
            files = repo.commits.get(repo.tags.get(revision) or (repo.head if revision == "main" else revision))
            if files is None:
                return 404, {"error": "Revision not found"}
            return 200, [
                {"type": "file", "oid": blob_id(d), "size": len(d), "path": p} for p, d in sorted(files.items())
            ]
        if method == "POST" and rest.startswith("/paths-info/"):
            revision = rest.split("/")[2]
            files = repo.commits.get(repo.tags.get(revision) or (repo.head if revision == "main" else revision), {})
            asked = json.loads(body).get("paths", []) if body.startswith(b"{") else parse_qs(body.decode())["paths"]
            return 200, [e for p in asked for e in _tree(files, p.rpartition("/")[0], False) if e["path"] == p]
        if method == "POST" and rest.startswith("/preupload/"):
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if method == "POST" and rest.startswith("/commit/"):
            return self._commit(repo, match, body)
        if method == "POST" and rest.startswith("/tag/"):
            tag = json.loads(body)["tag"]
            if tag in repo.tags:
                return 409, {"error": f"tag {tag} already exists"}
            repo.tags[tag] = rest.split("/")[2]
            return 200, {}
        if method == "PUT" and rest == "/settings":
            repo.settings.append({**json.loads(body), "head": repo.head})
            return 200, {}
        if method == "DELETE" and rest.startswith("/tag/"):
            return (200, {}) if repo.tags.pop(rest.split("/")[2], None) else (404, {"error": "no such tag"})
        return 400, {"error": f"the stand-in does not serve {method} {path}"}

    def _commit(self, repo: Repo, match: re.Match, body: bytes) -> tuple[int, object]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        self.commit_headers.append(header)
        if header.get("parentCommit") not in (None, repo.head):
            return 412, {"error": "A commit has happened since. Please refresh and try again."}
        files = dict(repo.commits[repo.head])
        for line in lines:
            if line["key"] == "file":
                files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            elif line["key"] == "deletedFile":
                files.pop(line["value"]["path"], None)
            elif line["key"] == "lfsFile":
                return 400, {"error": "the stand-in takes no LFS files"}
        oid = repo.commit(files)
        prefix = "" if match["type"] == "models" else "/datasets"
        return 200, {"commitUrl": f"{self.url}{prefix}/{match['repo']}/commit/{oid}", "commitOid": oid}


def _tree(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict]:
    """The entries under `folder` (its direct children, or every file below it), as the Hub's tree API."""
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    entries: dict[str, dict] = {}
    for path, data in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        child = path[len(prefix) :].split("/", 1)[0]
        if "/" in path[len(prefix) :] and not recursive:
            entries[prefix + child] = {"type": "directory", "oid": "0" * 40, "size": 0, "path": prefix + child}
        else:
            entries[path] = {"type": "file", "oid": blob_id(data), "size": len(data), "path": path}
    return list(entries.values())
