"""The torchrun paths on CPU: gloo, 2 processes, as users launch them."""

import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from cxr_dataset.errors import ConfigError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.schema import PROVENANCE_FIELDS
from cxr_dataset.tables import read_table
from generator.distributed import DistInfo, rank_slice
from generator.train import train
from generator.translate import translate
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # torchrun processes


def _torchrun(*args: str) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "cli"]
    result = subprocess.run([*command, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_distributed_rank_slices_are_disjoint_and_cover_everything():
    items = list(range(11))
    slices = [rank_slice(items, DistInfo(rank, 3)) for rank in range(3)]
    assert sorted(i for s in slices for i in s) == items
    assert all(set(a).isdisjoint(b) for i, a in enumerate(slices) for b in slices[i + 1 :])


@pytest.fixture(scope="module")
def ddp_run(prepared, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ddp") / "run"
    _torchrun(
        "train",
        "--prepared",
        prepared,
        "--task",
        "normal2covid",
        "--out",
        run,
        "--preset",
        "tiny",
        "--size",
        "64",
        "--epochs",
        "2",
    )
    return run


def test_distributed_training_with_two_processes_saves_every_ranks_pool(ddp_run):
    checkpoints = sorted((ddp_run / "checkpoints").glob("step-*.safetensors"))
    with safe_open(checkpoints[-1], "pt") as f:
        pools = {k for k in f.keys() if k.startswith("pool.")}  # noqa: SIM118 (safe_open is not iterable)
    assert pools == {"pool.A.r0", "pool.A.r1", "pool.B.r0", "pool.B.r1"}
    assert (ddp_run / "config.json").is_file() and (ddp_run / "log.jsonl").is_file()


def test_distributed_translation_covers_every_image_once_and_equals_one_process(prepared, ddp_run, tmp_path):
    _torchrun("translate", "--prepared", prepared, "--checkpoint", ddp_run, "--out", tmp_path / "two")
    table, meta = read_table(tmp_path / "two" / "provenance.parquet", PROVENANCE_FIELDS)
    sources = table.column("source_image_id").to_pylist()
    expected = {r["id"] for r in read_manifest(prepared).rows(label="normal", split="train")}
    assert sorted(sources) == sorted(expected) and meta["world_size"] == 2
    assert not list((tmp_path / "two").glob(".provenance.rank-*"))

    translate(prepared, ddp_run, tmp_path / "one")
    for png in (tmp_path / "one" / "images").glob("*.png"):
        assert (tmp_path / "two" / "images" / png.name).read_bytes() == png.read_bytes()


def test_distributed_resume_with_another_world_size_is_refused(prepared, ddp_run):
    with pytest.raises(ConfigError, match="saved by 2 processes"):
        train(prepared, "normal2covid", ddp_run, tiny_config(epochs=2, log_every=5), resume=True)
