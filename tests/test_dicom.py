"""DICOM decoding on files the tests write with pydicom, and on the real sample when it is there."""

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from cxr_dataset.errors import SourceError
from cxr_dataset.sources.dicom import read_dicom
from tests.conftest import SHARED

LIMIT = 10_000_000


def write_dicom(path, pixels, *, photometric="MONOCHROME2", bits_stored=None, window=None, pixel_data=True, **extra):
    """A minimal valid DICOM file holding `pixels` (uint8 or uint16)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CR", "test"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for key, value in extra.items():
        setattr(ds, key, value)
    if pixel_data:
        ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


RAMP8 = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))  # 8×64


def test_dicom_monochrome2_8bit_keeps_its_range(tmp_path):
    out = read_dicom(write_dicom(tmp_path / "a.dcm", RAMP8), LIMIT)
    assert out.shape == (8, 64) and out[0, 0] == 0 and out[0, -1] == 255


def test_dicom_monochrome1_is_inverted(tmp_path):
    out = read_dicom(write_dicom(tmp_path / "a.dcm", RAMP8, photometric="MONOCHROME1"), LIMIT)
    assert out[0, 0] == 255 and out[0, -1] == 0


def test_dicom_12bit_in_16_is_scaled_to_8bit_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (8, 1))
    out = read_dicom(write_dicom(tmp_path / "a.dcm", ramp, bits_stored=12), LIMIT)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out[0].astype(int)) >= 0) and len(np.unique(out)) > 50


def test_dicom_window_centre_width_is_applied(tmp_path):
    ramp = np.tile(np.linspace(0, 4000, 64).astype(np.uint16), (8, 1))
    out = read_dicom(write_dicom(tmp_path / "a.dcm", ramp, bits_stored=12, window=(2000, 500)), LIMIT)
    below, above = ramp[0] < 1700, ramp[0] > 2300
    assert np.all(out[0][below] == 0) and np.all(out[0][above] == 255)  # outside the window: saturated


def test_dicom_voi_lut_sequence_is_applied(tmp_path):
    from pydicom.sequence import Sequence

    item = Dataset()
    item.LUTDescriptor = [256, 0, 16]  # 256 entries, first mapped value 0, 16-bit entries
    item.LUTData = [4095 - 16 * i for i in range(256)]  # a decreasing LUT: the picture inverts
    item["LUTData"].VR = "US"
    out = read_dicom(write_dicom(tmp_path / "a.dcm", RAMP8, VOILUTSequence=Sequence([item])), LIMIT)
    assert out[0, 0] == 255 and out[0, -1] == 0


def test_dicom_without_pixel_data_is_a_clear_error(tmp_path):
    path = write_dicom(tmp_path / "nopix.dcm", RAMP8, pixel_data=False)
    with pytest.raises(SourceError, match="nopix.dcm: DICOM without pixel data"):
        read_dicom(path, LIMIT)


def test_dicom_unsupported_photometric_is_named(tmp_path):
    path = write_dicom(tmp_path / "pal.dcm", RAMP8, photometric="PALETTE COLOR")
    with pytest.raises(SourceError, match="photometric interpretation 'PALETTE COLOR' unsupported"):
        read_dicom(path, LIMIT)


def test_dicom_over_the_pixel_limit_is_refused(tmp_path):
    with pytest.raises(SourceError, match="pixel limit"):
        read_dicom(write_dicom(tmp_path / "a.dcm", RAMP8), 100)


def test_dicom_not_a_dicom_file_is_named(tmp_path):
    (tmp_path / "x.dcm").write_bytes(b"hello")
    with pytest.raises(SourceError, match="x.dcm: not a readable DICOM"):
        read_dicom(tmp_path / "x.dcm", LIMIT)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/realcxr is not here")
@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"])
def test_dicom_real_compressed_files_decode(name):
    out = read_dicom(SHARED / "dicom" / name, 10_000_000)
    assert out.dtype == np.uint8 and out.ndim == 2 and out.std() > 20
    if name.startswith("RG1"):  # MONOCHROME1, 15-bit, JPEG 2000: once inverted, lungs are darker than the spine
        assert out.shape == (1955, 1841)
        lung, spine = out[600:1100, 450:700].mean(), out[600:1100, 880:960].mean()
        assert lung < spine - 30
