"""`cxrds push`: upload a verified release folder to the Hugging Face Hub as a dataset repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cxr_dataset.checksums import read_checksums
from cxr_dataset.errors import ReleaseError
from cxr_dataset.schema import CHECKSUMS_NAME
from cxr_dataset.validation import verify_release


@dataclass(frozen=True)
class PushResult:
    files: list[tuple[str, int]]  # (path in the repository, bytes)
    url: str = ""


def push_release(root: Path, repo_id: str, *, dry_run: bool = False, private: bool = False) -> PushResult:
    """Verify `root`, then (unless `dry_run`) create `repo_id` if needed and upload the folder in one commit.

    The token comes from huggingface_hub's usual places (``HF_TOKEN``, the login cache).
    """
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ReleaseError(f"--repo-id must be OWNER/NAME, got {repo_id!r}")
    report = verify_release(Path(root))
    if not report.ok:
        failed = next(c for c in report.checks if not c.ok)
        raise ReleaseError(f"{root}: verify failed ({failed.name}: {failed.detail}); fix it before pushing")
    # Exactly what SHA256SUMS lists, plus the list: verify has refused anything else in the folder.
    names = sorted([*read_checksums(root), CHECKSUMS_NAME])
    files = [(name, (Path(root) / name).stat().st_size) for name in names]
    if dry_run:
        return PushResult(files)
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(root) / name)) for name in names]
    commit = api.create_commit(
        repo_id, operations, commit_message=f"cxrds build: {len(files)} files", repo_type="dataset"
    )
    return PushResult(files, str(commit.commit_url))
