"""`cxrds export`: inference-only generators that translate exactly like their run, locally or via the Hub's cache."""

import io
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from builders.push import plan_push
from cli import app
from cxr_dataset.errors import CheckpointError, OwnershipError
from cxr_dataset.schema import PROVENANCE_FIELDS
from cxr_dataset.tables import read_table
from generator.checkpoint import load_checkpoint, save_checkpoint
from generator.config import load_preset
from generator.export import export_generators
from generator.networks import build_discriminator, build_generator
from generator.train import train
from generator.translate import translate
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def run(prepared, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    train(prepared, "normal2covid", out, tiny_config(sample_every=1))
    return out


def _translated(folder: Path) -> tuple[dict[str, bytes], list[dict]]:
    images = {p.name: p.read_bytes() for p in sorted((folder / "images").glob("*.png"))}
    rows = read_table(folder / "provenance.parquet", PROVENANCE_FIELDS)[0].to_pylist()
    return images, rows


def test_export_translates_byte_identically_with_the_same_provenance(prepared, run, tmp_path):
    result = export_generators(run, tmp_path / "export")
    names = sorted(p.name for p in result.root.iterdir())
    assert names == [
        ".cxrds-output.json",
        "README.md",
        "SHA256SUMS",
        "config.json",
        "cxrds_generators.py",
        "cxrds_networks.py",
        "model.json",
        "model.safetensors",
        "samples.png",
    ]
    tensors = load_file(result.root / "model.safetensors")
    assert tensors and all(k.startswith(("nets.G_A.", "nets.G_B.")) for k in tensors)
    translate(prepared, run, tmp_path / "from-run")
    translate(prepared, result.root, tmp_path / "from-export")
    assert _translated(tmp_path / "from-run") == _translated(tmp_path / "from-export")
    card = (result.root / "README.md").read_text()
    assert "pipeline_tag: image-to-image" in card and load_checkpoint(run).sha256 in card
    plan = plan_push(result.root, "someone/cxr-g-nc", remote_files=None, tag="v0.1.0")
    assert plan.repo_type == "model" and [n for n, _ in plan.upload] == names


BLOCK_CXRDS = """
import importlib.abc, sys
class NoCxrds(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"cxr_dataset", "generator", "builders", "validation_tools", "cards", "cli", "demo"}:
            raise ImportError(f"cxrds is not installed here ({name})")
sys.meta_path.insert(0, NoCxrds())
"""


def test_an_export_loads_and_translates_without_cxrds(prepared, run, tmp_path):
    """`CycleGANGenerators.from_pretrained` on the export folder, in a process where no cxrds module imports,
    gives the bytes `cxrds translate` writes."""
    import os
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    from cxr_dataset.manifest import read_manifest

    export = export_generators(run, tmp_path / "export", repo_id="someone/cxr-g-nc", dataset_repo_id="someone/cxr")
    card = (export.root / "README.md").read_text()
    assert 'from_pretrained("someone/cxr-g-nc")' in card and "datasets: [someone/cxr]" in card
    translate(prepared, export.root, tmp_path / "translated")
    images, rows = _translated(tmp_path / "translated")
    manifest = read_manifest(prepared)
    by_id = {r["id"]: r for r in manifest.rows()}
    sources = np.stack([np.asarray(Image.open(manifest.image_path(by_id[r["source_image_id"]]))) for r in rows])
    np.save(tmp_path / "sources.npy", sources)
    code = BLOCK_CXRDS + (
        "import numpy as np, torch\n"
        f"sys.path.insert(0, {str(export.root)!r})\n"
        "from cxrds_generators import CycleGANGenerators\n"
        f"g = CycleGANGenerators.from_pretrained({str(export.root)!r})\n"
        f"out = g.translate(torch.from_numpy(np.load({str(tmp_path / 'sources.npy')!r})))\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out.numpy())\n"
        "import generator\n"
    )
    offline = {**os.environ, "HF_HUB_OFFLINE": "1"}  # a local folder: nothing may be fetched
    run_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=offline)
    assert "cxrds is not installed here (generator)" in run_.stderr, run_.stderr[-2000:]  # the block held
    written = np.stack([np.asarray(Image.open(io.BytesIO(images[Path(r["path"]).name]))) for r in rows])
    assert np.array_equal(np.load(tmp_path / "out.npy"), written)

    (export.root / "model.safetensors").unlink()  # never falls back to a pickle
    with pytest.raises(OSError):
        __import__("generator.hub_model", fromlist=["x"]).CycleGANGenerators.from_pretrained(str(export.root))


def test_export_through_the_hub_cache_with_hf_url(prepared, run, tmp_path, monkeypatch):
    """hf://USER/REPO is read through huggingface_hub's cache: a snapshot laid out as the Hub leaves it."""
    export = export_generators(run, tmp_path / "export").root
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--someone--cxr-g-nc" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("model.json", "model.safetensors", "README.md"):
        (snapshot / name).write_bytes((export / name).read_bytes())
    (cache / "models--someone--cxr-g-nc" / "refs").mkdir()
    (cache / "models--someone--cxr-g-nc" / "refs" / "v0.1.0").write_text(commit)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # read at import, so set where it is looked up
    translate(prepared, "hf://someone/cxr-g-nc@v0.1.0", tmp_path / "from-hub")
    translate(prepared, export, tmp_path / "from-export")
    assert _translated(tmp_path / "from-hub") == _translated(tmp_path / "from-export")
    with pytest.raises(CheckpointError, match="cannot fetch the model"):
        translate(prepared, "hf://someone/not-cached", tmp_path / "missing")


def test_export_of_a_resnet9_pair_is_under_100_mb(tmp_path):
    """The reference preset's ResNet-9 generators, a discriminator and Adam moments (a training checkpoint)
    against their export."""
    cfg = load_preset("cyclegan")
    nets = {"G_A": build_generator(cfg.model), "G_B": build_generator(cfg.model), "D_A": build_discriminator(cfg.model)}
    tensors = {f"nets.{n}.{k}": v for n, m in nets.items() for k, v in m.state_dict().items()}
    tensors |= {f"optim.G.{i}.exp_avg": torch.zeros_like(v) for i, v in enumerate(tensors.values())}
    meta = {"config": cfg.to_dict(), "config_sha256": cfg.sha256(), "task": "normal2covid", "param_groups": {}}
    save_checkpoint(tmp_path / "run", 1, tensors, meta, keep_last=1)
    result = export_generators(tmp_path / "run", tmp_path / "export")
    training = next((tmp_path / "run" / "checkpoints").glob("*.safetensors")).stat().st_size
    assert 80e6 < result.bytes <= 100e6 < training  # two ~11.4 M-parameter fp32 generators: 90.9 MB
    assert json.loads((result.root / "model.json").read_text())["config"]["model"]["n_blocks"] == 9


def test_export_refuses_a_foreign_folder_and_an_export(run, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OwnershipError):
        export_generators(run, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    export = export_generators(run, tmp_path / "export").root
    with pytest.raises(CheckpointError, match="already an exported model"):
        export_generators(export, tmp_path / "again")
    (export / "notes.txt").write_text("mine")  # an earlier export with a user's file in it: not re-exported over,
    with pytest.raises(OwnershipError, match=r"did not write \(notes.txt: not listed in SHA256SUMS\)"):
        export_generators(run, export)  # since SHA256SUMS (and so push) would take it in
    assert (export / "notes.txt").read_text() == "mine" and "notes.txt" not in (export / "SHA256SUMS").read_text()
    (export / "notes.txt").unlink()
    assert export_generators(run, export).files == 8  # an export of its own is replaced in place


def test_cli_export(run, tmp_path):
    result = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "e")])
    assert result.exit_code == 0 and "exported" in result.output and (tmp_path / "e" / "model.json").is_file()
