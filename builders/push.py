"""`cxrds push`: publish a verified release folder as a versioned Hugging Face dataset repository, or an
exported model folder (`cxrds export`) as a model repository.

One commit uploads exactly the files `SHA256SUMS` lists (and the list) and deletes every other file of the
repository (stale parquet files or shards of an earlier build would otherwise be loaded with the new ones);
its description carries the SHA-256 of `SHA256SUMS` and the dataset version; `--tag vX.Y.Z` tags it. After
the upload the Hub's own record of every file (LFS SHA-256, or git blob id) is compared with the local files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cxr_dataset.checksums import CHECKSUMS_NAME, checksum_problems, read_checksums
from cxr_dataset.errors import ReleaseError
from cxr_dataset.export_folder import MODEL_TENSORS_NAME, is_export
from cxr_dataset.fileio import sha256_file
from cxr_dataset.release_folder import CROISSANT_NAME, check_repo_id, published_repo_id, read_card, read_release
from cxr_dataset.verify import verify_release
from cxr_dataset.weights import check_finite_file

KEEP_ON_HUB = frozenset({".gitattributes"})  # made by the Hub with the repository; never ours to delete
_TAG = re.compile(r"v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class RemoteFile:
    """What the Hub records of one file: its path, size, LFS SHA-256 (LFS files only) and git blob id."""

    path: str
    size: int
    sha256: str | None
    blob_id: str


@dataclass(frozen=True)
class PushPlan:
    repo_id: str
    repo_type: str  # "dataset" (a release) or "model" (an export)
    upload: list[tuple[str, int]]  # (path in the repository, bytes)
    delete: list[str]  # files on the Hub that this release does not list
    remote_listed: bool  # False: the Hub could not be read, so what would be deleted is unknown
    version: str
    tag: str | None
    description: str
    gated: bool = False  # the card asks for gated access: the repository is gated before anything is uploaded


@dataclass(frozen=True)
class PushResult:
    plan: PushPlan
    url: str = ""
    note: str = ""  # why the Hub's file list is unknown, after a dry run


def plan_push(root: Path, repo_id: str, *, remote_files: Iterable[str] | None, tag: str | None = None) -> PushPlan:
    """Verify `root` and say what a push would do against a repository holding `remote_files` (None: unknown)."""
    root = Path(root)
    check_push_options(repo_id, tag)
    repo_type = folder_repo_type(root)
    if repo_type == "model":
        _, problems = checksum_problems(root)
        if problems:
            raise ReleaseError(f"{root}: {problems[0]}; re-run `cxrds export` before pushing")
        check_finite_file(root / MODEL_TENSORS_NAME)  # a diverged run is not published (nor exported, translated)
        version = (tag or "v")[1:]
    else:
        report = verify_release(root)
        if not report.ok:
            failed = next(c for c in report.checks if not c.ok)
            raise ReleaseError(f"{root}: verify failed ({failed.name}: {failed.detail}); fix it before pushing")
        version = read_release(root).version
        built_for = published_repo_id(root)
        if built_for not in (None, repo_id):
            raise ReleaseError(
                f"{root}: built for {built_for} (its card and {CROISSANT_NAME} name it), not {repo_id}; rebuild with "
                f"`cxrds build --repo-id {repo_id}` (a release is never rewritten on its way out)"
            )
    if tag is not None and tag != f"v{version}":
        raise ReleaseError(
            f"--tag {tag} does not match the release's dataset version {version!r}; "
            f"rebuild with --dataset-version or push with --tag v{version}"
        )
    # Exactly what SHA256SUMS lists, plus the list: verify has refused anything else in the folder.
    names = sorted([*read_checksums(root), CHECKSUMS_NAME])
    upload = [(name, (root / name).stat().st_size) for name in names]
    delete = sorted(set(remote_files) - set(names) - KEEP_ON_HUB) if remote_files is not None else []
    description = f"version {version or 'untagged'}\n{CHECKSUMS_NAME} sha256 {sha256_file(root / CHECKSUMS_NAME)}"
    gated = repo_type == "dataset" and "extra_gated_prompt" in read_card(root)
    return PushPlan(repo_id, repo_type, upload, delete, remote_files is not None, version, tag, description, gated)


def check_push_options(repo_id: str, tag: str | None) -> None:
    """`ReleaseError` unless `repo_id` is OWNER/NAME as the Hub accepts it and `tag` (if any) is vMAJOR.MINOR.PATCH:
    checked before the release is verified or the Hub is asked."""
    check_repo_id(repo_id)
    if tag is not None and not _TAG.fullmatch(tag):
        raise ReleaseError(f"--tag {tag}: tags are vMAJOR.MINOR.PATCH")


def folder_repo_type(root: Path) -> str:
    """ "model" for an exported model folder, "dataset" for anything else (checked as a release)."""
    return "model" if is_export(root) else "dataset"


def remote_problems(root: Path, remote: Iterable[RemoteFile]) -> list[str]:
    """Differences between the Hub's record of a pushed commit and the release folder: files missing, extra,
    of another size, or whose LFS SHA-256 or git blob id differs from the local bytes."""
    root = Path(root)
    local = {**read_checksums(root), CHECKSUMS_NAME: sha256_file(root / CHECKSUMS_NAME)}
    seen, problems = set(), []
    for f in remote:
        if f.path in KEEP_ON_HUB:
            continue
        seen.add(f.path)
        if f.path not in local:
            problems.append(f"{f.path}: on the Hub but not in {CHECKSUMS_NAME}")
        elif f.size != (root / f.path).stat().st_size:
            problems.append(f"{f.path}: {f.size} bytes on the Hub, {(root / f.path).stat().st_size} here")
        elif f.sha256 is not None and f.sha256 != local[f.path]:
            problems.append(f"{f.path}: the Hub's SHA-256 {f.sha256[:12]}… differs from {local[f.path][:12]}…")
        elif f.sha256 is None and f.blob_id != git_blob_id(root / f.path):
            problems.append(f"{f.path}: the Hub's git blob {f.blob_id[:12]}… differs from the local file")
    problems += [f"{name}: missing on the Hub" for name in sorted(set(local) - seen)]
    return problems


def git_blob_id(path: Path) -> str:
    """The id git gives a file's content: SHA-1 of ``blob <size>\\0<bytes>``."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class RemoteState:
    """A repository as read before a push: its head commit ("" when it does not exist yet), its files at that
    commit and its tags (name → commit)."""

    head: str
    files: list[RemoteFile]
    tags: dict[str, str]


def push_release(
    root: Path,
    repo_id: str,
    *,
    dry_run: bool = False,
    private: bool = False,
    tag: str | None = None,
    force_tag: bool = False,
) -> PushResult:
    """Plan (reading the Hub when it can), then unless `dry_run` upload, delete, tag and check.

    The commit names the head it was planned against (`parent_commit`), so a push that raced another is refused
    by the Hub rather than deleting files it never saw. A tag that exists is refused before anything is committed,
    unless `force_tag` moves it. The token comes from huggingface_hub's usual places (``HF_TOKEN``, the login
    cache). A dry run that cannot read the repository says so in `PushResult.note`; a real push raises one line."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    check_push_options(repo_id, tag)
    api, repo_type = HfApi(), folder_repo_type(root)
    repo = f"{repo_type}s/{repo_id}"
    try:
        state, note = _remote_state(api, repo_id, repo_type), ""
    except ReleaseError as e:
        if not dry_run:
            raise
        state, note = None, str(e)
    plan = plan_push(root, repo_id, remote_files=None if state is None else [f.path for f in state.files], tag=tag)
    if state is not None and tag in state.tags and not force_tag:
        raise ReleaseError(
            f"{repo}: tag {tag} already exists (commit {state.tags[tag][:8]}); nothing was committed. Build a new "
            "--dataset-version, or pass --force-tag to move the tag to this push"
        )
    if dry_run:
        return PushResult(plan, note=note)
    with _hub_errors(repo):
        if not state.head:  # a new repository: created with a first commit of its own
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
            state = _remote_state(api, repo_id, repo_type)
            plan = plan_push(root, repo_id, remote_files=[f.path for f in state.files], tag=tag)
        if plan.gated:  # before the upload: the files are never readable without the terms accepted
            api.update_repo_settings(repo_id, gated="auto", repo_type=repo_type)
        operations = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(Path(root) / n)) for n, _ in plan.upload]
        operations += [CommitOperationDelete(path_in_repo=name) for name in plan.delete]
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=f"cxrds build {plan.version}: {len(plan.upload)} files, {len(plan.delete)} removed",
            commit_description=plan.description,
            repo_type=repo_type,
            parent_commit=state.head,
        )
        problems = remote_problems(root, _remote_files(api, repo_id, repo_type, commit.oid))
        if problems:
            raise ReleaseError(f"{repo}@{commit.oid[:8]}: the Hub's copy differs: {'; '.join(problems[:5])}")
        if tag:
            if tag in state.tags:
                api.delete_tag(repo_id, tag=tag, repo_type=repo_type)
            api.create_tag(repo_id, tag=tag, revision=commit.oid, repo_type=repo_type, tag_message=plan.description)
    return PushResult(plan, str(commit.commit_url))


def _remote_state(api, repo_id: str, repo_type: str) -> RemoteState:
    """The repository's head, files and tags (all empty when it does not exist); `ReleaseError` when the Hub
    cannot be read. The endpoint is tried once first, so an unreachable one fails at once, not after retries."""
    from huggingface_hub.errors import RepositoryNotFoundError

    check_reachable(api.endpoint, f"{repo_type}s/{repo_id}")
    with _hub_errors(f"{repo_type}s/{repo_id}"):
        try:
            head = api.repo_info(repo_id, repo_type=repo_type).sha or ""
        except RepositoryNotFoundError:
            return RemoteState("", [], {})
        refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    return RemoteState(head, _remote_files(api, repo_id, repo_type, head), {t.name: t.target_commit for t in refs.tags})


def _remote_files(api, repo_id: str, repo_type: str, revision: str) -> list[RemoteFile]:
    """The repository's files at `revision` with the Hub's checksums; `ReleaseError` when it cannot be read."""
    from huggingface_hub.hf_api import RepoFile

    with _hub_errors(f"{repo_type}s/{repo_id}"):
        entries = api.list_repo_tree(repo_id, recursive=True, revision=revision, repo_type=repo_type)
        return [
            RemoteFile(e.path, e.size, e.lfs.sha256 if e.lfs else None, e.blob_id)
            for e in entries
            if isinstance(e, RepoFile)
        ]


def check_reachable(endpoint: str, repo: str, timeout: float = 10.0) -> None:
    """`ReleaseError` naming `endpoint` (or the proxy in front of it) unless one TCP connection to it opens.

    huggingface_hub retries a refused connection for ~20 s; a single try says at once that nothing is there."""
    import socket
    import urllib.request

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ReleaseError(f"{repo}: HF_HUB_OFFLINE is set, so the Hub is not asked; unset it to push")
    parts = urlsplit(endpoint)
    proxy = None if urllib.request.proxy_bypass(parts.hostname or "") else urllib.request.getproxies().get(parts.scheme)
    target = urlsplit(proxy) if proxy else parts
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        socket.create_connection((target.hostname, port), timeout=timeout).close()
    except OSError as e:
        via = f" through the proxy {proxy}" if proxy else ""
        raise ReleaseError(
            f"{repo}: cannot reach {endpoint}{via} ({e.strerror or e}); nothing was sent. Check the network, "
            "HF_ENDPOINT or the proxy settings"
        ) from None


@contextmanager
def _hub_errors(repo: str) -> Iterator[None]:
    """Network, token and Hub errors as one line naming the repository."""
    from huggingface_hub.errors import HfHubHTTPError

    failures: tuple[type[Exception], ...] = (HfHubHTTPError, OSError)  # the token's errors are OSErrors
    try:
        import httpx2  # huggingface_hub's HTTP client: a refused or unresolved connection is no OSError

        failures += (httpx2.HTTPError,)
    except ImportError:
        pass
    try:
        yield
    except failures as e:
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise ReleaseError(
            f"{repo}: the Hub could not be read or written ({type(e).__name__}: {reason}); check "
            "the network and the token (HF_TOKEN or `hf auth login`)"
        ) from None
