"""Write the second portion of a release's rows (`builders.portions`) in a Python process of its own, beside a
build that writes the first.

Each process has its own GIL, so the build runs on two cores. The portion process reads the synthetic folders'
provenance and its images itself (each image checked against its record, as the build does its own) and
refuses to write unless each provenance table's SHA-256 is what the build read.
A plain subprocess running ``python -m builders.portion_process`` (not `multiprocessing`, whose start methods
either re-run the caller's script or fork a threaded process); the job goes in as JSON on stdin, what it
wrote comes back on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from builders.portions import Portion, Written, write_portions
from builders.release_rows import read_release_rows
from cxr_dataset.errors import CxrdsError, ReleaseError
from cxr_dataset.workers import die_with_parent


class PortionProcess:
    """`write_portions` of `portions` of the release rows of `synthetic` into the release folder `root`, started at
    once in a subprocess; `digests`: the SHA-256 of each provenance table as the build read it. `result()`
    waits for what it wrote."""

    def __init__(
        self,
        root: Path,
        split: str,
        synthetic: list[Path],
        digests: list[str],
        portions: list[Portion],
        *,
        rows_per_file: int,
        per_shard: int,
    ) -> None:
        job = {
            "root": str(root),
            "split": split,
            "synthetic": [str(p) for p in synthetic],
            "digests": digests,
            "portions": [[s.config, s.count, s.rows.start, s.rows.stop] for s in portions],
            "rows_per_file": rows_per_file,
            "per_shard": per_shard,
        }
        # The folder that holds `builders`, first on the child's path, whatever the caller's working directory.
        code_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [code_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "builders.portion_process"],
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

    def result(self) -> Written:
        """What the portion process wrote."""
        out, err = self.process.communicate()
        if self.process.returncode != 0:
            reply = _parsed(out)
            if reply and "error" in reply:
                raise ReleaseError(reply["error"])
            raise ReleaseError(f"the portion process failed (exit {self.process.returncode}): {err.decode()[-2000:]}")
        return Written(**json.loads(out))

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
    try:
        release = read_release_rows(job["synthetic"])
        for folder, theirs, mine in zip(job["synthetic"], job["digests"], release.digests, strict=True):
            if mine != theirs:
                raise ReleaseError(f"{folder}: its provenance table changed while the build ran; build again")
        portions = [Portion(config, count, range(start, stop)) for config, count, start, stop in job["portions"]]
        written = write_portions(
            Path(job["root"]),
            job["split"],
            release.parts(),
            portions,
            rows_per_file=job["rows_per_file"],
            per_shard=job["per_shard"],
        )
    except (CxrdsError, OSError, ValueError) as error:
        json.dump({"error": str(error)}, sys.stdout)
        sys.exit(1)
    json.dump(dataclasses.asdict(written), sys.stdout)


if __name__ == "__main__":
    main()
