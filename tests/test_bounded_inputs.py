"""Everything read is bounded before it costs memory or time: DICOM frames count against the pixel limit, zip
members are identified from their first bytes and decoded as they stream, checking a zip is linear in its
members, a config's networks are sized before they are built, and non-finite weights are neither exported nor
pushed. Memory is bounded with an address-space limit in a subprocess; work is counted, never timed."""

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cxr_dataset.errors import SourceError
from cxr_dataset.sources.dicom import read_dicom

REPO = Path(__file__).resolve().parents[1]
HEADROOM = 128 << 20  # address space a bounded read may use beyond what its imports mapped


def run_bounded(imports: str, body: str, headroom: int = HEADROOM) -> subprocess.CompletedProcess:
    """Run `imports`, then cap the address space at what is mapped plus `headroom`, then run `body`; a
    `CxrdsError` is printed as its message, anything else (MemoryError included) fails the process."""
    script = "\n".join(
        [
            textwrap.dedent(imports),
            "import resource",
            "mapped = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmSize:'))",
            f"limit = mapped * 1024 + {headroom}",
            "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))",
            "from cxr_dataset.errors import CxrdsError",
            "try:",
            textwrap.indent(textwrap.dedent(body), "    "),
            "except CxrdsError as e:",
            "    print(e)",
        ]
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env)


# --- DICOM: every frame counts ----------------------------------------------------------------------------


def write_rle_dicom(path: Path, rows: int, cols: int, frames: int) -> Path:
    """An 8-bit DICOM of `frames` black frames, RLE Lossless: 9000² frames take 1.3 MB each."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless, SecondaryCaptureImageStorage, generate_uid

    runs, rest = divmod(rows * cols, 128)  # PackBits: (-127, 0) repeats 0 128 times
    segment = b"\x81\x00" * runs + (bytes([257 - rest, 0]) if rest > 1 else b"\x00\x00" * rest)
    frame = struct.pack("<16L", 1, 64, *[0] * 14) + segment + b"\x00" * (len(segment) % 2)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = RLELossless
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = rows, cols, frames, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([frame] * frames)
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_dicom_of_four_9000_squared_frames_is_refused_from_its_header_without_decoding(tmp_path):
    path = write_rle_dicom(tmp_path / "frames.dcm", 9000, 9000, 4)  # 81 Mpixel a frame: each under the limit
    assert path.stat().st_size < 6e6
    proc = run_bounded(  # decoding would take 324 MB
        "from pathlib import Path\nfrom cxr_dataset.sources.files import load_image_file\nimport pydicom.pixels",
        f"load_image_file(Path({str(path)!r}))",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == (
        f"{path}: 9000×9000 × 4 frames (324,000,000 pixels) exceeds the 100,000,000-pixel limit"
    )


def test_dicom_frames_are_counted_against_the_pixel_limit_and_a_second_frame_is_refused_before_decoding(tmp_path):
    path = write_rle_dicom(tmp_path / "three.dcm", 8, 8, 3)
    with pytest.raises(SourceError, match=r"8×8 × 3 frames \(192 pixels\) exceeds the 100-pixel limit"):
        read_dicom(path, max_pixels=100)  # one frame (64) would pass
    with pytest.raises(SourceError, match="expected one 2-D frame, the header declares 3 frames"):
        read_dicom(path, max_pixels=1000)
