import io
import tarfile

import pytest

from cxr_dataset.tarstream import iter_samples


def _tar(members, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_tarstream_groups_members_into_samples_in_every_tar_format(fmt):
    long_key = "d/" + "k" * 50 if fmt == tarfile.USTAR_FORMAT else "dir.v2/" + "k" * 150  # pax / GNU long names
    members = [(f"{long_key}.png", b"P" * 700), (f"{long_key}.json", b"{}"), ("b.cls", b"2"), ("b.png", b"")]
    samples = list(iter_samples(io.BytesIO(_tar(members, fmt)), "mem://t.tar"))
    assert [s["__key__"] for s in samples] == [long_key, "b"]
    assert samples[0]["png"] == b"P" * 700 and samples[0]["json"] == b"{}" and samples[1]["cls"] == b"2"


def test_tarstream_corrupt_header_names_the_shard():
    data = bytearray(_tar([("a.png", b"x")]))
    data[10] ^= 0xFF
    with pytest.raises(ValueError, match="mem://bad.tar: corrupt tar header"):
        list(iter_samples(io.BytesIO(bytes(data)), "mem://bad.tar"))


def test_tarstream_truncated_shard_names_the_shard():
    data = _tar([("a.png", b"x" * 2000)])[:1024]
    with pytest.raises(ValueError, match="mem://cut.tar: truncated tar"):
        list(iter_samples(io.BytesIO(data), "mem://cut.tar"))
