import datasets
import pytest

from builders.partition import part_count
from builders.release import BuildConfig, build_release
from cxr_dataset.errors import ReleaseError
from cxr_dataset.loading import load_release, wds_release
from cxr_dataset.release_folder import read_release


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _counts(release):
    return {config: splits["train"] for config, splits in read_release(release).counts.items()}


def test_build_load_dataset_from_the_parent_folder_gives_declared_features(release, offline, monkeypatch):
    monkeypatch.chdir(release.parent)
    ds = datasets.load_dataset("covid-synthetic-cxr")
    assert isinstance(ds["train"].features["image"], datasets.Image)
    assert ds["train"].features["label"].names == ["normal", "pneumonia", "covid"]
    assert ds["train"].num_rows == _counts(release)["all"]
    assert ds["train"][0]["image"].mode == "L"


@pytest.mark.parametrize("config", ["all", "g_nc", "g_pc"])
def test_build_every_config_loads_plain_and_streaming(release, offline, config):
    expected = _counts(release)[config]
    assert load_release(release, config)["train"].num_rows == expected
    streamed = list(load_release(release, config, streaming=True)["train"])
    assert len(streamed) == expected


def test_build_counts_per_config_add_up(release, synthetic):
    counts = _counts(release)
    assert counts["all"] == counts["g_nc"] + counts["g_pc"] > 0


def test_build_webdataset_yields_every_sample_with_image_and_provenance(release):
    samples = list(wds_release(release))
    assert len(samples) == _counts(release)["all"]
    for s in samples:
        assert s["png"].mode == "L" and s["json"]["label"] == "covid" and s["cls"] == 2
        assert s["json"]["id"] == s["__key__"]


def test_build_shards_are_a_multiple_of_eight_when_data_allow(release):
    shard_paths = read_release(release).shard_paths

    assert len(shard_paths("all")) % 8 == 0 and len(shard_paths("g_nc")) % 8 == 0
    assert part_count(5, 1000) == 1 and part_count(21_295, 1000) == 24 and part_count(8, 1000) == 8


def test_build_twice_is_byte_identical(synthetic, tmp_path):
    a, b = tmp_path / "a" / "covid-synthetic-cxr", tmp_path / "b" / "covid-synthetic-cxr"
    build_release(list(synthetic.values()), a, BuildConfig(samples_per_shard=4))
    build_release(list(synthetic.values()), b, BuildConfig(samples_per_shard=4))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


@pytest.mark.parametrize("processes", [2, 8])
def test_build_in_several_processes_gives_the_same_bytes(synthetic, tmp_path, processes):
    one, many = tmp_path / "one" / "covid-synthetic-cxr", tmp_path / "many" / "covid-synthetic-cxr"
    build_release(list(synthetic.values()), one, BuildConfig(samples_per_shard=4, processes=1))
    build_release(list(synthetic.values()), many, BuildConfig(samples_per_shard=4, processes=processes))
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(many) for p in many.rglob("*") if p.is_file())
    assert all((one / f).read_bytes() == (many / f).read_bytes() for f in files)


def test_build_processes_default_to_a_power_of_two_up_to_eight_and_one_for_small_builds():
    import os

    from builders.release import build_processes

    cores = len(os.sched_getaffinity(0))
    assert build_processes(999) == 1
    assert build_processes(21_295) in {1, 2, 4, 8} and build_processes(21_295) <= cores


@pytest.mark.parametrize(
    "counts, rows_per_file, per_shard",
    [({"g_nc": 16_537, "g_pc": 4_758}, 2000, 1000), ({"g_nc": 20, "g_pc": 5}, 8, 4), ({"g_nc": 99}, 7, 5)],
)
def test_portions_cut_where_both_formats_files_end_and_cover_every_row_once(counts, rows_per_file, per_shard):
    from builders.partition import part_bounds, part_sizes
    from builders.portions import split_portions

    for processes in (1, 2, 3, 4, 8):
        portions = split_portions(counts, rows_per_file, per_shard, processes)
        assert len(portions) == processes
        for config, count in counts.items():
            runs = [s for portion in portions for s in portion if s.config == config]
            assert [r.rows.start for r in runs[1:]] == [r.rows.stop for r in runs[:-1]]
            assert runs[0].rows.start == 0 and runs[-1].rows.stop == count
            for run in runs:
                assert run.rows.start in part_bounds(part_sizes(count, rows_per_file))
                assert run.rows.start in part_bounds(part_sizes(count, per_shard))
            assert [r.files(per_shard).start for r in runs[1:]] == [r.files(per_shard).stop for r in runs[:-1]]
    for processes in (2, 4, 8):  # a config of 8 files or more of each format is cut into equal runs
        portions = split_portions({"g_nc": 16_537, "g_pc": 4_758}, 2000, 1000, processes)
        for portion in portions:
            assert [len(s.rows) for s in portion] in (
                [16_537 // processes, 4_758 // processes],
                [16_537 // processes + 1, 4_758 // processes],
                [16_537 // processes, 4_758 // processes + 1],
                [16_537 // processes + 1, 4_758 // processes + 1],
            )


@pytest.mark.parametrize("writer", ["parquet", "tar"])
def test_a_file_whose_samples_stop_early_is_never_written(synthetic, tmp_path, writer):
    from builders.hf_parquet import ParquetFiles
    from builders.release_rows import read_release_rows
    from builders.webdataset import TarShards
    from cxr_dataset.synthetic_folder import verified_images

    rows = read_release_rows(list(synthetic.values())).rows[:5]
    files = (
        ParquetFiles(tmp_path, "g_nc", "train", 7, rows_per_file=3)  # files of 2, 2 and 3 rows
        if writer == "parquet"
        else TarShards(tmp_path, "g_nc", "train", 7, per_shard=3)
    )
    with pytest.raises(ValueError, match=f"{files.path(2).name}: the stream ended after 1 of 3 samples"), files:
        for row, data in verified_images(rows):
            files.add(row, data)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == [files.path(0), files.path(1)]


def test_build_refuses_a_folder_without_provenance_before_writing_anything(synthetic, tmp_path):
    from cxr_dataset.errors import SchemaError

    out = tmp_path / "rel" / "covid-synthetic-cxr"
    with pytest.raises(SchemaError, match="provenance.parquet: file not found"):
        build_release([*synthetic.values(), tmp_path / "not-translated"], out)
    assert not out.parent.exists()


def test_portion_process_refuses_to_write_from_a_provenance_table_the_build_did_not_read(synthetic, tmp_path):
    """The portion process reads the provenance itself and compares the tables' SHA-256 with the build's read."""
    from builders.portion_process import PortionProcess
    from builders.portions import split_portions
    from builders.release_rows import read_release_rows

    folders = list(synthetic.values())
    read = read_release_rows(folders)
    _, theirs = split_portions({name: len(part) for name, part in read.parts().items()}, 8, 4, 2)
    portion = PortionProcess(tmp_path / "same", "train", folders, read.digests, theirs, rows_per_file=8, per_shard=4)
    written = portion.result()
    assert sorted(written.shards) == sorted(read.parts()) and all(written.shards.values())

    changed = [read.digests[0].replace(read.digests[0][0], "x"), *read.digests[1:]]
    portion = PortionProcess(tmp_path / "changed", "train", folders, changed, theirs, rows_per_file=8, per_shard=4)
    with pytest.raises(ReleaseError, match=f"{folders[0]}: its provenance table changed while the build ran"):
        portion.result()
    assert not (tmp_path / "changed").exists()


def test_build_tar_headers_are_fixed(release):
    import tarfile

    with tarfile.open(next((release / "webdataset").glob("*.tar"))) as tar:
        infos = tar.getmembers()
    assert {(i.mtime, i.uid, i.gid, i.uname, i.mode) for i in infos} == {(0, 0, 0, "cxrds", 0o444)}
    assert [i.name for i in infos] == sorted(i.name for i in infos)


def test_build_stores_every_image_once_and_all_is_the_union_of_the_task_configs(release):
    shard_paths = read_release(release).shard_paths

    assert not (release / "data" / "all").exists()
    assert shard_paths("all") == shard_paths("g_nc") + shard_paths("g_pc")
    ids = [s["__key__"] for s in wds_release(release)]
    assert len(ids) == len(set(ids))


def test_build_card_states_the_true_counts(release):
    card = (release / "README.md").read_text()
    counts = _counts(release)
    assert f"**{counts['all']} synthetic COVID-19 chest X-rays**" in card
    assert f"| `g_nc` | train | {counts['g_nc']} |" in card
    assert "correspond to 4,122 pneumonia images, while G_PC holds 4,758" in card  # the seed's skew table


def test_build_replaces_a_previous_release_whole(synthetic, tmp_path):
    out = tmp_path / "covid-synthetic-cxr"
    build_release([synthetic["normal2covid"]], out)
    build_release(list(synthetic.values()), out)
    assert not list(tmp_path.glob(".covid-synthetic-cxr*"))
    assert _counts(out)["all"] == sum(1 for _ in wds_release(out))


def test_build_a_second_build_into_the_same_folder_is_refused_while_one_runs(synthetic, tmp_path):
    from builders.release import build_lock
    from cxr_dataset.errors import ReleaseError

    out = tmp_path / "covid-synthetic-cxr"
    with build_lock(out):
        assert (tmp_path / ".covid-synthetic-cxr.lock").is_file()
        with pytest.raises(ReleaseError, match="another build"):
            build_release(list(synthetic.values()), out)
    build_release(list(synthetic.values()), out)  # released: builds
    assert not (tmp_path / ".covid-synthetic-cxr.lock").exists()


def test_build_killed_midway_and_rerun_is_byte_identical(synthetic, tmp_path):
    import subprocess
    import sys

    folders = [str(p) for p in synthetic.values()]
    killed = tmp_path / "killed" / "covid-synthetic-cxr"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from builders.release import BuildConfig, build_release\n"
        "def progress(stage, done, total, info=''):\n"
        "    if done == total // 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"build_release([Path(p) for p in {folders!r}], Path({str(killed)!r}), BuildConfig(samples_per_shard=4), "
        "progress=progress)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert not killed.exists() and (tmp_path / "killed" / ".covid-synthetic-cxr.building").exists()

    build_release(list(synthetic.values()), killed, BuildConfig(samples_per_shard=4))  # the dead process's lock is free
    clean = tmp_path / "clean" / "covid-synthetic-cxr"
    build_release(list(synthetic.values()), clean, BuildConfig(samples_per_shard=4))
    files = sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(killed) for p in killed.rglob("*") if p.is_file())
    assert all((clean / f).read_bytes() == (killed / f).read_bytes() for f in files)
    assert not list((tmp_path / "killed").glob(".covid-synthetic-cxr.*"))


def test_build_from_the_seeds_release_zips(tmp_path):
    from builders.release import build_release_from_zips
    from cxr_dataset.sources.seed_zips import SeedZipWarning
    from tests.test_sources_seed_zips import make_seed_zips

    zips = make_seed_zips(tmp_path / "zips", n_nc=5, n_pc=3)
    out = tmp_path / "rel" / "covid-synthetic-cxr"
    with pytest.warns(SeedZipWarning):
        result = build_release_from_zips([zips / "G_NC.zip", zips / "G_PC.zip"], out)
    assert result.counts == {"all": 8, "g_nc": 5, "g_pc": 3}
    ds = load_release(out, "g_nc")["train"]
    row = ds[0]
    assert row["source_image_id"] == "G_NC.zip/G1/1.jpg" and len(row["source_md5"]) == 32
    assert row["image"].mode == "L" and "G_NC.zip (MD5" in (out / "README.md").read_text()
    assert not list(out.parent.glob(".covid-synthetic-cxr*"))


def test_build_from_release_refuses_a_zip_slip_member(tmp_path):
    from builders.release import build_release_from_zips
    from cxr_dataset.errors import SourceError
    from tests.test_sources_seed_zips import make_seed_zips

    zips = make_seed_zips(tmp_path / "zips", extra=[("../../evil.jpg", b"x", 0o644)])
    with pytest.raises(SourceError, match="unsafe member"):
        build_release_from_zips([zips / "G_NC.zip"], tmp_path / "rel" / "covid-synthetic-cxr")
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "rel" / "covid-synthetic-cxr").exists()


def test_build_parquet_files_are_equal_and_carry_a_page_index(release):
    import pyarrow.parquet as pq

    folder = read_release(release)
    for config in ("g_nc", "g_pc"):
        files = folder.data_files(config)
        sizes = [pq.ParquetFile(p).metadata.num_rows for p in files]
        assert len(files) % 8 == 0 and max(sizes) - min(sizes) <= 1, sizes
        group = pq.ParquetFile(files[0]).metadata.row_group(0)
        columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
        for image in (columns.pop("image.bytes"), columns.pop("image.path")):  # min/max of PNGs would say nothing
            assert image.has_offset_index and image.statistics is None
        assert all(c.has_column_index and c.has_offset_index for c in columns.values())


def test_build_card_and_index_give_sizes_and_checksums(release):
    import hashlib

    folder = read_release(release)
    for info in folder.card["dataset_info"]:
        config = info["config_name"]
        stored = folder.stored_files() if config == "all" else folder.data_files(config)
        assert info["download_size"] == sum(p.stat().st_size for p in stored) > 0
        assert info["dataset_size"] == info["splits"][0]["num_bytes"]
    for shard in folder.shard_list("all"):
        data = (release / "webdataset" / shard["url"]).read_bytes()
        assert shard["filesize"] == len(data) and shard["sha256"] == hashlib.sha256(data).hexdigest()
        assert shard["md5sum"] == hashlib.md5(data).hexdigest()
    assert folder.card["source_datasets"] == ["extended|other-phantom"]
    assert folder.card["task_ids"] == ["multi-class-image-classification"]
    assert folder.card["annotations_creators"] == ["machine-generated"]
    assert "extra_gated_prompt" not in folder.card


@pytest.mark.parametrize(
    ("rows", "bucket"),
    [(999, "n<1K"), (1_000, "1K<n<10K"), (21_295, "10K<n<100K"), (999_999, "100K<n<1M"), (1_000_000, "1M<n<10M")],
)
def test_build_card_size_bucket_is_one_the_hub_knows(rows, bucket):
    from builders.card import SIZE_BUCKETS, size_category

    assert size_category(rows) == bucket and bucket in SIZE_BUCKETS


def test_build_card_with_crlf_line_ends_and_a_bom_still_reads(release, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    card = copy / "README.md"
    card.write_bytes(b"\xef\xbb\xbf" + card.read_bytes().replace(b"\n", b"\r\n"))
    assert read_release(copy).counts == read_release(release).counts


def test_build_dataset_version_and_date_are_checked(synthetic, tmp_path):
    from cxr_dataset.errors import ReleaseError

    for bad in ({"dataset_version": "v1"}, {"date_published": "27/11/2026"}):
        with pytest.raises(ReleaseError, match="MAJOR.MINOR.PATCH|YYYY-MM-DD"):
            build_release(list(synthetic.values()), tmp_path / "r", BuildConfig(**bad))
    assert not (tmp_path / "r").exists()


def test_build_a_missing_local_release_is_a_clear_error_without_the_hub(tmp_path, monkeypatch):
    import time

    from cxr_dataset.errors import ReleaseError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "release").mkdir()
    started = time.monotonic()
    for missing in ("release/covid-synthetic-cxr", "covid-synthetic-cxr", tmp_path / "nowhere"):
        with pytest.raises(ReleaseError, match="no such release folder"):
            load_release(missing)
    assert time.monotonic() - started < 5  # no Hub retries
