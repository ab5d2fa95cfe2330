"""Streaming into trainers: exact epochs across ranks and workers, equal ranks when resampling, clear errors."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxr_dataset.errors import ConfigError, ReleaseError
from cxr_dataset.loading import wds_release
from cxr_dataset.release_folder import read_release
from cxr_dataset.streaming import StreamConfig, decode_gray, hf_dataset, random_access, wds_pipeline

REPO = Path(__file__).resolve().parents[1]


def _all_keys(release, config="all"):
    return [s["__key__"] for s in wds_release(release, config)]


def test_streaming_set_epoch_reaches_persistent_workers(release):
    pipeline = wds_pipeline(release, StreamConfig(num_workers=2, seed=0))
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=2, persistent_workers=True)
    orders = []
    for epoch in range(2):
        pipeline.set_epoch(epoch)
        orders.append([s["key"] for s in loader])
    assert sorted(orders[0]) == sorted(orders[1]) and orders[0] != orders[1]
    pipeline.set_epoch(0)
    assert [s["key"] for s in loader] == orders[0]  # the same epoch gives the same order again


def test_streaming_fewer_shards_than_readers_is_a_clear_error(release):
    urls = [str(p) for p in read_release(release).shard_paths("g_nc")[:3]]
    with pytest.raises(ConfigError, match="3 shards cannot feed 2 ranks × 2 workers"):
        wds_pipeline(urls, StreamConfig(num_workers=2, rank=0, world_size=2))
    resampled = StreamConfig(resampled=True, samples_per_rank=7, rank=0, world_size=2, num_workers=2)
    assert len(list(wds_pipeline(urls, resampled))) == 4


def test_streaming_refuses_shards_that_would_give_ddp_ranks_unequal_samples(release, tmp_path):
    folder = read_release(release)
    sizes = [s["nsamples"] for s in folder.shard_list("all")]
    assert len(set(sizes)) > 1  # the phantom release's last shard of each config is short
    with pytest.raises(ConfigError, match="equal sample counts without resampling"):
        wds_pipeline(release, StreamConfig(rank=0, world_size=2))
    ranks = [
        [s["key"] for s in wds_pipeline(release, StreamConfig(rank=r, world_size=2, allow_uneven_ranks=True, seed=1))]
        for r in range(2)
    ]
    assert len(ranks[0]) != len(ranks[1])  # what the refusal saves a DDP job from
    assert sorted(ranks[0] + ranks[1]) == sorted(_all_keys(release))
    urls = [str(p) for p in folder.shard_paths("all")]
    with pytest.warns(RuntimeWarning, match="sizes are unknown"):
        wds_pipeline(urls, StreamConfig(rank=0, world_size=2))


def test_streaming_reads_shards_through_fsspec(release):
    import fsspec

    memory = fsspec.filesystem("memory")
    urls = []
    for path in read_release(release).shard_paths("g_nc"):
        memory.pipe_file(f"/shards/{path.name}", path.read_bytes())
        urls.append(f"memory://shards/{path.name}")
    streamed = [s["key"] for s in wds_pipeline(urls, StreamConfig(shuffle=0))]
    assert streamed == _all_keys(release, "g_nc")
    with pytest.raises(ReleaseError, match="nowhere://x.tar: fsspec knows no nowhere:// filesystem"):
        list(wds_pipeline(["nowhere://x.tar"], StreamConfig(shuffle=0)))


def test_streaming_batches_are_uint8_tensors_with_provenance(release):
    batch = next(iter(wds_pipeline(release, StreamConfig(batch_size=4, shuffle=0))))
    assert batch["image"].shape == (4, 1, 64, 64) and batch["image"].dtype == torch.uint8
    assert batch["label"].tolist() == [2, 2, 2, 2] and batch["meta"][0]["id"] == batch["key"][0]


@pytest.mark.parametrize("mode", ["L", "L+tRNS", "1", "I;16", "LA", "RGB", "P"])
def test_streaming_decode_gray_matches_pil_for_every_png_kind(mode):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).convert(mode.split("+")[0])
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (37, 53), dtype=np.uint16))
    buf = io.BytesIO()
    image.save(buf, format="PNG", **({"transparency": 7} if mode == "L+tRNS" else {}))
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        expected = np.array(img if img.mode == "L" else img.convert("L"))
    decoded = decode_gray(buf.getvalue())
    assert decoded.dtype == torch.uint8 and decoded.shape == (1, 37, 53)
    assert np.array_equal(decoded[0].numpy(), expected)


def test_streaming_decode_gray_names_a_corrupt_png():
    with pytest.raises(OSError, match="cannot identify image"):
        decode_gray(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)


def test_streaming_same_seed_same_order(release):
    first = [s["key"] for s in wds_pipeline(release, StreamConfig(seed=3))]
    assert first == [s["key"] for s in wds_pipeline(release, StreamConfig(seed=3))]
    assert first != [s["key"] for s in wds_pipeline(release, StreamConfig(seed=4))]


def test_streaming_hf_split_by_node_has_no_duplicates(release):
    def part(rank, **kw):
        return [
            r["id"]
            for r in hf_dataset(release, StreamConfig(config="g_nc", streaming=True, rank=rank, world_size=2, **kw))
        ]

    unequal = [part(r, samples_per_rank=None) for r in range(2)]
    assert not set(unequal[0]) & set(unequal[1])
    assert sorted(unequal[0] + unequal[1]) == sorted(_all_keys(release, "g_nc"))
    assert len(unequal[0]) != len(unequal[1])  # an odd count: this is what hangs DDP
    equal = [part(r) for r in range(2)]
    assert len(equal[0]) == len(equal[1]) == len(_all_keys(release, "g_nc")) // 2
    assert not set(equal[0]) & set(equal[1])


def test_streaming_equal_rank_stream_pads_a_short_worker_by_repeating(release):
    from cxr_dataset.streaming import EqualRankStream

    ds = hf_dataset(release, StreamConfig(config="g_pc", streaming=True, rank=0, world_size=2, samples_per_rank=None))
    rows = [r["id"] for r in ds]
    padded = [r["id"] for r in EqualRankStream(ds, len(rows) + 3)]
    assert padded == rows + rows[:3]
    with pytest.raises(ConfigError, match="at least 1"):
        EqualRankStream(ds, 0)


@pytest.mark.slow
def test_streaming_torchrun_three_ranks_take_equal_steps_on_both_paths(release, prepared, tmp_path):
    """DDP as users run it: 3 processes, 2 persistent workers each, 2 epochs, an all-reduce per batch."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3"]
    run = subprocess.run(
        [*command, "tests/ddp_stream_check.py", str(release), str(prepared), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,  # a rank with an extra step would block in all_reduce until this
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(3)]
    total = len(_all_keys(release))
    for path in ("hf", "wds", "mixed", "sampler"):  # equal steps: no rank waits in all_reduce for ever
        for epoch in range(2):
            steps = [len(rank[path][epoch]) for rank in ranks]
            assert len(set(steps)) == 1, (path, epoch, steps)
        assert all(rank[path][0] != rank[path][1] for rank in ranks), f"{path}: same order in both epochs"
    for epoch in range(2):  # without resampling: every sample exactly once per epoch over 3 ranks × 2 workers
        assert sorted(k for rank in ranks for k in rank["wds_exact"][epoch]) == sorted(_all_keys(release))
    assert all(rank["wds_exact"][0] != rank["wds_exact"][1] for rank in ranks)
    kept = total - int(random_access(release).lengths[-1])  # the sampler's path reads all but the last shard
    assert kept % 3  # so that the last rank is padded
    for epoch in range(2):  # ExactEpochSampler with the all-reduce: equal steps, none missed
        read = [rank["sampler"][epoch] for rank in ranks]
        assert {len(keys) for keys in read} == {-(-kept // 3)}
        union = {key for keys in read for key in keys}
        assert len(union) == kept and union < set(_all_keys(release))
    assert all(rank["sampler"][0] != rank["sampler"][1] for rank in ranks)
    mixed = [key for rank in ranks for key in rank["mixed"][0]]
    assert len(mixed) == 30 and sum(key.startswith("synthetic:") for key in mixed) == 3 * 2 * round(5 * 0.5)
    hf_epoch = [i for rank in ranks for i in rank["hf"][0]]
    # total // 3 rows per rank; a worker whose share is short repeats from its start (at most one row per
    # worker here), so nearly every row is read once
    assert len(hf_epoch) == total // 3 * 3 and len(set(hf_epoch)) >= len(hf_epoch) - 3 * 2


def test_streaming_random_access_reads_any_sample(release):
    ds = random_access(release, "g_pc")
    keys = _all_keys(release, "g_pc")
    assert len(ds) == len(keys)
    sample = ds[len(ds) - 1]
    assert sample["key"] == keys[-1] and sample["image"].shape == (1, 64, 64)


def test_streaming_hf_resumes_mid_epoch_through_a_stateful_dataloader(release):
    from torchdata.stateful_dataloader import StatefulDataLoader

    def loader():
        # datasets 5.2 cannot resume a buffer
        ds = hf_dataset(release, StreamConfig(streaming=True, rank=0, world_size=2))
        return StatefulDataLoader(ds, batch_size=2, num_workers=2, collate_fn=_ids)

    whole = list(loader())
    first = loader()
    batches = iter(first)
    head = [next(batches) for _ in range(3)]
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    assert head + list(resumed) == whole and len(whole) > 4


def _ids(rows):
    return [r["id"] for r in rows]


@pytest.mark.parametrize("resampled", [False, True])
def test_streaming_wds_resumes_mid_epoch_through_a_stateful_dataloader(release, resampled):
    from torchdata.stateful_dataloader import StatefulDataLoader

    def loader():
        kw = {"resampled": True, "samples_per_rank": 12} if resampled else {"allow_uneven_ranks": True}
        pipeline = wds_pipeline(release, StreamConfig(batch_size=2, num_workers=2, seed=5, rank=1, world_size=2, **kw))
        pipeline.set_epoch(3)
        return StatefulDataLoader(pipeline, batch_size=None, num_workers=2, collate_fn=_keys)

    whole = list(loader())
    first = loader()
    batches = iter(first)
    head = [next(batches) for _ in range(3)]
    state = first.state_dict()
    resumed = loader()  # a new process would start at epoch 0: the state brings epoch 3 back
    resumed.dataset.set_epoch(0)
    resumed.load_state_dict(state)
    assert head + list(resumed) == whole and len(whole) > 4


def _keys(batch):
    return batch["key"]
