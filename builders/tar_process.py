"""Write a config's WebDataset tars in a Python process of its own, beside a build that writes parquet.

Each process has its own GIL, so the two formats are made on two cores; the tar process reads every image
itself and checks it against its provenance record, as the parquet side does. A plain subprocess running
``python -m builders.tar_process`` (not `multiprocessing`, whose start methods either re-run the caller's
script or fork a threaded process); the job goes in as JSON on stdin, the shard entries come back on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from builders.webdataset import write_wds_split
from cxr_dataset.errors import ReleaseError
from cxr_dataset.synthetic_folder import verified_images
from cxr_dataset.workers import die_with_parent


class TarProcess:
    """`write_wds_split` of each config in turn, started at once in a subprocess; `result()` waits for their
    shard entries."""

    def __init__(self, folder: Path, split: str, configs: dict[str, list[dict[str, Any]]], per_shard: int) -> None:
        rows = {name: [{**row, "_file": str(row["_file"])} for row in part] for name, part in configs.items()}
        job = {"folder": str(folder), "split": split, "per_shard": per_shard, "configs": rows}
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
        # Sent from a thread: the pipe holds 64 KiB, so a plain write would wait here for the child's start-up.
        self.sender = threading.Thread(target=_send, args=(self.process.stdin, json.dumps(job).encode()), daemon=True)
        self.process.stdin = None  # the thread's: `communicate` only reads
        self.sender.start()

    def result(self) -> dict[str, list[dict[str, Any]]]:
        out, err = self.process.communicate()
        self.sender.join()
        if self.process.returncode != 0:
            reply = _parsed(out)
            if reply and "error" in reply:
                raise ReleaseError(reply["error"])
            raise ReleaseError(f"the tar writer failed (exit {self.process.returncode}): {err.decode()[-2000:]}")
        return json.loads(out)["entries"]

    def stop(self) -> None:
        """End the subprocess if it still runs (a failed build) and wait for it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()
        self.sender.join()


def _send(pipe, job: bytes) -> None:
    """The whole job, then end of file (the child reads it all before it starts)."""
    try:
        with pipe:
            pipe.write(job)
    except BrokenPipeError:
        pass  # it died at start-up: `result()` says why


def _parsed(out: bytes) -> dict[str, Any] | None:
    try:
        return json.loads(out)
    except ValueError:
        return None


def main() -> None:
    job = json.load(sys.stdin)
    entries = {}
    try:
        for name, rows in job["configs"].items():
            entries[name] = write_wds_split(
                Path(job["folder"]),
                name,
                job["split"],
                verified_images(rows),
                len(rows),
                per_shard=job["per_shard"],
            )
    except (ReleaseError, OSError, ValueError) as error:
        json.dump({"error": str(error)}, sys.stdout)
        sys.exit(1)
    json.dump({"entries": entries}, sys.stdout)


if __name__ == "__main__":
    main()
