"""`cxrds push`: upload a verified release folder to the Hugging Face Hub as a dataset repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cxr_dataset.errors import ReleaseError
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
    files = [(p.relative_to(root).as_posix(), p.stat().st_size) for p in sorted(Path(root).rglob("*")) if p.is_file()]
    if dry_run:
        return PushResult(files)
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(root), repo_id=repo_id, repo_type="dataset", commit_message=f"cxrds build: {len(files)} files"
    )
    return PushResult(files, str(commit.commit_url))
