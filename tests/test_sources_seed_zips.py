import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from cxr_dataset.errors import SourceError
from cxr_dataset.prepare import PrepareConfig, prepare
from cxr_dataset.sources.phantom import render_phantom
from cxr_dataset.sources.seed_zips import SeedZipSource, SeedZipWarning, check_seed_zip


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(render_phantom("covid", 64, seed=0, patient=i, image=0)).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


def make_seed_zips(folder, n_nc=3, n_pc=2, extra=()):
    """Zips in the seed's layout (G1/<n>.jpg, G2/<n>_g2.jpg), plus `extra` (name, bytes, mode) members."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, members in (
        ("G_NC.zip", [f"G1/{i}.jpg" for i in range(1, n_nc + 1)]),
        ("G_PC.zip", [f"G2/{i}_g2.jpg" for i in range(1, n_pc + 1)]),
    ):
        with zipfile.ZipFile(folder / name, "w") as zf:
            zf.writestr(members[0].split("/")[0] + "/", b"")
            for i, member in enumerate(members, 1):
                zf.writestr(member, _jpeg(i))
            if name == "G_NC.zip":
                for member, data, mode in extra:
                    info = zipfile.ZipInfo(member)
                    info.external_attr = mode << 16
                    zf.writestr(info, data)
    return folder


def test_release_zips_in_the_g1_g2_layout_read_with_an_md5_warning(tmp_path):
    folder = make_seed_zips(tmp_path / "rel")
    with pytest.warns(SeedZipWarning, match="differs from the published bd82149d"):
        asset, members, md5 = check_seed_zip(folder / "G_NC.zip")
    assert asset.config == "g_nc" and [m.number for m in members] == [1, 2, 3] and len(md5) == 32
    with pytest.warns(SeedZipWarning):
        records = SeedZipSource(folder).records()
    assert len(records) == 5 and {r.label for r in records} == {"covid"}
    assert records[0].id == "release_g_nc_1" and "." not in records[-1].id


def test_release_md5_mismatch_is_refused_with_strict(tmp_path):
    folder = make_seed_zips(tmp_path / "rel")
    with pytest.raises(SourceError, match="refused \\(--strict\\)"):
        check_seed_zip(folder / "G_PC.zip", strict=True)


@pytest.mark.parametrize(
    ("member", "mode", "reason"),
    [
        ("../evil.jpg", 0o644, "unsafe member"),
        ("G1/../../evil.jpg", 0o644, "unsafe member"),
        ("/etc/evil.jpg", 0o644, "unsafe member"),
        ("G1/4.jpg", stat.S_IFLNK | 0o777, "symbolic link"),
        ("G1/readme.txt", 0o644, "does not fit the v0.1 layout"),
    ],
)
def test_release_zip_slip_links_and_unknown_members_are_refused(tmp_path, member, mode, reason):
    folder = make_seed_zips(tmp_path / "rel", extra=[(member, b"x", mode)])
    with pytest.raises(SourceError, match=reason):
        check_seed_zip(folder / "G_NC.zip")
    assert not (tmp_path / "evil.jpg").exists()


def test_release_unknown_asset_name_is_refused(tmp_path):
    make_seed_zips(tmp_path / "rel")
    (tmp_path / "rel" / "G_NC.zip").rename(tmp_path / "rel" / "other.zip")
    with pytest.raises(SourceError, match="unknown release asset"):
        check_seed_zip(tmp_path / "rel" / "other.zip")


def test_release_prepares_as_synthetic_covid_images(tmp_path):
    folder = make_seed_zips(tmp_path / "rel")
    with pytest.warns(SeedZipWarning):
        result = prepare([f"release={folder}"], tmp_path / "out", PrepareConfig(size=64, workers=1))
    assert sum(n for (label, _), n in result.counts.items() if label == "covid") == 5
    assert np.asarray(Image.open(tmp_path / "out/images/covid/release_g_pc_2.png")).shape == (64, 64)
