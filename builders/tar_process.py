"""Write a release's WebDataset tars in a Python process of its own, beside a build that writes parquet.

Each process has its own GIL, so the two formats are made on two cores. The tar process reads the synthetic
folders' provenance and every image itself (each image checked against its record, as the parquet side does)
and answers with the SHA-256 of each provenance table it read, which the build compares with its own read.
A plain subprocess running ``python -m builders.tar_process`` (not `multiprocessing`, whose start methods
either re-run the caller's script or fork a threaded process); the job goes in as JSON on stdin, the shard
entries come back on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from builders.release_rows import read_release_rows
from builders.webdataset import write_wds_split
from cxr_dataset.errors import CxrdsError, ReleaseError
from cxr_dataset.synthetic_folder import verified_images
from cxr_dataset.workers import die_with_parent


class TarProcess:
    """`write_wds_split` of each task config of `synthetic`, started at once in a subprocess; `result()` waits
    for their shard entries."""

    def __init__(self, folder: Path, split: str, synthetic: list[Path], per_shard: int) -> None:
        self.synthetic = [str(p) for p in synthetic]
        job = {"folder": str(folder), "split": split, "per_shard": per_shard, "synthetic": self.synthetic}
        # The folder that holds `builders`, first on the child's path, whatever the caller's working directory.
        code_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [code_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "builders.tar_process"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent if os.name == "posix" else None,  # a SIGKILLed build leaves no writer behind
        )
        try:
            with self.process.stdin as pipe:  # a few hundred bytes: the pipe takes them before the child starts
                pipe.write(json.dumps(job).encode())
        except BrokenPipeError:
            pass  # it died at start-up: `result()` says why
        self.process.stdin = None  # sent: `communicate` only reads from now on

    def result(self, digests: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The shard entries of each config, once the tars are written from provenance tables with these
        `digests` (what the build read)."""
        out, err = self.process.communicate()
        if self.process.returncode != 0:
            reply = _parsed(out)
            if reply and "error" in reply:
                raise ReleaseError(reply["error"])
            raise ReleaseError(f"the tar writer failed (exit {self.process.returncode}): {err.decode()[-2000:]}")
        reply = json.loads(out)
        for folder, mine, theirs in zip(self.synthetic, digests, reply["digests"], strict=True):
            if mine != theirs:
                raise ReleaseError(f"{folder}: its provenance table changed while the build ran; build again")
        return reply["entries"]

    def stop(self) -> None:
        """End the subprocess if it still runs (a failed build) and wait for it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def _parsed(out: bytes) -> dict[str, Any] | None:
    try:
        return json.loads(out)
    except ValueError:
        return None


def main() -> None:
    job = json.load(sys.stdin)
    entries = {}
    try:
        release = read_release_rows(job["synthetic"])
        for name, rows in release.parts().items():
            entries[name] = write_wds_split(
                Path(job["folder"]),
                name,
                job["split"],
                verified_images(rows),
                len(rows),
                per_shard=job["per_shard"],
            )
    except (CxrdsError, OSError, ValueError) as error:
        json.dump({"error": str(error)}, sys.stdout)
        sys.exit(1)
    json.dump({"entries": entries, "digests": release.digests}, sys.stdout)


if __name__ == "__main__":
    main()
