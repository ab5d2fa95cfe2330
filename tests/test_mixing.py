"""`mixed_stream`: synthetic positives with real negatives at a chosen ratio, equal samples per rank."""

import pytest
import torch
from PIL import Image

from cxr_dataset.errors import ConfigError
from cxr_dataset.manifest import read_manifest
from cxr_dataset.mixing import MixConfig, mixed_stream
from cxr_dataset.release_folder import read_release
from cxr_dataset.schema import CLASSES


def _keys(release) -> set[str]:
    return {row["id"] for row in read_release(release).iter_rows(["id"])}


def test_the_mix_has_the_ratio_asked_and_labels_from_the_schema(release, prepared):
    stream = mixed_stream(release, prepared, MixConfig(synthetic_fraction=0.25, samples_per_rank=40, seed=3))
    samples = list(stream)
    synthetic = [s for s in samples if s["synthetic"]]
    real = [s for s in samples if not s["synthetic"]]
    assert len(samples) == 40 and len(synthetic) == 10
    assert {s["key"] for s in synthetic} <= _keys(release)
    assert all(s["label"] == CLASSES.index("covid") for s in synthetic)
    training = {r["id"]: r["label"] for r in read_manifest(prepared).rows(split="train")}
    assert all(training[s["key"]] == CLASSES[s["label"]] != "covid" for s in real)
    pool = sum(label != "covid" for label in training.values())
    first_pass = [s["key"] for s in real][:pool]
    assert len(set(first_pass)) == len(first_pass)  # without replacement while the negatives last
    assert all(s["image"].dtype == torch.uint8 and s["image"].shape == synthetic[0]["image"].shape for s in samples)
    assert [s["key"] for s in stream] == [s["key"] for s in samples]  # seeded: the same epoch again
    stream.set_epoch(1)
    assert [s["key"] for s in stream] != [s["key"] for s in samples]


def test_ranks_and_workers_yield_equal_counts_of_different_samples(release, prepared):
    def epoch(rank: int, workers: int) -> list[str]:
        cfg = MixConfig(samples_per_rank=21, rank=rank, world_size=2, seed=0)
        loader = torch.utils.data.DataLoader(
            mixed_stream(release, prepared, cfg), batch_size=None, num_workers=workers, collate_fn=lambda s: s["key"]
        )
        return list(loader)

    first, second = epoch(0, 2), epoch(1, 2)
    assert len(first) == len(second) == 21 and first != second


def test_negatives_from_an_imagefolder_are_cropped_to_the_release_size(release, tmp_path):
    folder = tmp_path / "negatives"
    folder.mkdir()
    lines = ["file_name,label,patient_id"]
    for i in range(3):
        Image.new("L", (90, 70), 40 * i).save(folder / f"n{i}.png")
        lines.append(f"n{i}.png,normal,p{i}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    samples = list(mixed_stream(release, folder, MixConfig(synthetic_fraction=0.0, samples_per_rank=6)))
    assert {s["image"].shape for s in samples} == {(1, 64, 64)} and all(s["label"] == 0 for s in samples)


def test_bad_mixes_are_refused(release, prepared, tmp_path):
    with pytest.raises(ConfigError, match="synthetic_fraction"):
        MixConfig(synthetic_fraction=1.5)
    with pytest.raises(ConfigError, match="negatives must be among"):
        MixConfig(negatives=("covid",))
