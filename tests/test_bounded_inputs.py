"""Everything read is bounded before it costs memory or time: DICOM frames count against the pixel limit, zip
members are identified from their first bytes and decoded as they stream, checking a zip is linear in its
members, a config's networks are sized before they are built, and non-finite weights are neither exported nor
pushed. Memory is bounded with an address-space limit in a subprocess; work is counted, never timed."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from cxr_dataset.checksums import write_checksums
from cxr_dataset.errors import CheckpointError, ConfigError, SourceError
from cxr_dataset.fileio import sha256_file
from cxr_dataset.sources import seed_zips
from cxr_dataset.sources.dicom import read_dicom
from generator.checkpoint import load_checkpoint, save_checkpoint
from generator.config import MAX_PARAMETERS, ModelConfig, TrainConfig, footprint, load_preset
from generator.networks import build_discriminator, build_generator, count_parameters
from tests.conftest import tiny_config

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


# --- zip members: identified first, then streamed ---------------------------------------------------------


def zip_with_big_member(path: Path, head: bytes, size: int = 200 << 20) -> Path:
    """A release zip whose one member is `head` then zeros up to `size` bytes (deflated to under 1 MB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
        zf.open("G1/1.jpg", "w", force_zip64=True) as f,
    ):
        f.write(head)
        block, left = bytes(1 << 20), size - len(head)
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
    return path


def _png(side: int = 8) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.full((side, side), 77, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


READ_MEMBER = """
    import zipfile
    from cxr_dataset.sources.seed_zips import read_member_image
"""


def test_a_200_mb_zip_member_that_is_not_an_image_is_refused_from_its_first_bytes(tmp_path):
    path = zip_with_big_member(tmp_path / "zips" / "G_NC.zip", b"")
    assert path.stat().st_size < 1 << 20
    proc = run_bounded(  # reading it whole would take 200 MB
        READ_MEMBER, f"read_member_image(zipfile.ZipFile({str(path)!r}), {str(path)!r}, 'G1/1.jpg')"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    message = proc.stdout.strip()
    assert message == f"{path}::G1/1.jpg: not a readable image (starts with 0x{bytes(8).hex()}; expected a JPEG or PNG)"
    assert "<_io." not in message


def test_a_large_zip_member_is_decoded_as_it_streams_and_its_crc_still_checked(tmp_path):
    """A PNG followed by 200 MB: decoded from the stream, the rest read through in blocks for the CRC."""
    path = zip_with_big_member(tmp_path / "zips" / "G_NC.zip", _png())
    proc = run_bounded(
        READ_MEMBER,
        f"pixels = read_member_image(zipfile.ZipFile({str(path)!r}), {str(path)!r}, 'G1/1.jpg')\n"
        "print(pixels.shape, pixels.max())",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "(8, 8) 77"


def test_an_unidentified_image_stream_is_named_by_its_zip_and_member_never_by_a_buffer(tmp_path):
    path = tmp_path / "zips" / "G_NC.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("G1/1.jpg", b"\xff\xd8\xff" + b"\x00" * 64)  # a JPEG's signature, then nothing a decoder reads
    with zipfile.ZipFile(path) as zf, pytest.raises(SourceError) as error:
        seed_zips.read_member_image(zf, path, "G1/1.jpg")
    assert str(error.value).startswith(f"{path}::G1/1.jpg: not a readable image")
    assert "<_io." not in str(error.value) and "ZipExtFile" not in str(error.value)


def _tiny_zip(path: Path, n: int) -> Path:
    """A G_NC.zip of `n` one-byte members in the v0.1 layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(1, n + 1):
            zf.writestr(f"G1/{i}.jpg", b"x")
    return path


def _lines_executed(function, *args) -> int:
    """Python lines executed by `function(*args)`, every frame included: a count of work, not a timing."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        count += event == "line"
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        function(*args)
    finally:
        sys.settrace(previous)
    return count


def test_checking_a_release_zip_is_linear_in_its_members(tmp_path):
    """40,000 members took 32 s when each was compared with every other; here the work at 4 × the members
    is at most 4.5 × (a quadratic check would be 16 ×)."""
    small, large = _tiny_zip(tmp_path / "500" / "G_NC.zip", 500), _tiny_zip(tmp_path / "2000" / "G_NC.zip", 2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seed_zips.SeedZipWarning)  # not the published MD5
        work = [_lines_executed(seed_zips.check_seed_zip, path) for path in (small, large)]
    assert work[1] <= 4.5 * work[0], work


def test_checking_a_release_zip_still_finds_a_repeated_member(tmp_path):
    path = tmp_path / "G_NC.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name, release about the MD5
        with zipfile.ZipFile(path, "w") as zf:
            for name in ("G1/1.jpg", "G1/2.jpg", "G1/2.jpg", "G1/3.jpg"):
                zf.writestr(name, b"x")
        with pytest.raises(SourceError, match=r"members \['G1/2.jpg'\] occur twice; refused"):
            seed_zips.check_seed_zip(path)


@pytest.mark.parametrize(("members", "directory", "declared"), [(11, None, "11 members"), (5, 3000, "5 members")])
def test_a_zip_declaring_more_members_or_directory_than_the_limit_is_refused_before_it_is_listed(
    tmp_path, monkeypatch, members, directory, declared
):
    path = _tiny_zip(tmp_path / "G_NC.zip", members)
    if directory:  # the end record declares a central directory larger than 10 members may need (10 × 256)
        data = bytearray(path.read_bytes())
        end = data.rindex(b"PK\x05\x06")
        data[end + 12 : end + 16] = struct.pack("<L", directory)
        path.write_bytes(bytes(data))
    monkeypatch.setattr(seed_zips, "MAX_ZIP_MEMBERS", 10)
    with pytest.raises(SourceError, match=f"declares {declared} in a .*; at most 10 members and 2,560 bytes"):
        seed_zips.check_seed_zip(path)


# --- configs: sized before anything is built --------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        ModelConfig(ngf=16, n_blocks=3),
        ModelConfig(ngf=8, n_blocks=2, ndf=8, d_layers=4, norm="layer", channels=3),
        ModelConfig(generator="unet", ngf=8, ndf=4, d_layers=1, d_final_stride=2, norm="layer"),
        ModelConfig(generator="unet", ngf=5, ndf=3, d_layers=0),
    ],
)
def test_a_configs_parameter_estimate_is_exact_and_its_activations_within_a_factor_of_two(model):
    cfg = TrainConfig(model=model, crop_size=64, load_size=64, batch_size=1, pool_size=0)
    nets = [build_generator(model), build_discriminator(model)]
    assert footprint(cfg).parameters == 2 * sum(count_parameters(net) for net in nets)
    kept = 0  # what autograd keeps for one training step's passes (6 through each G kind, 4 through D)
    for net, passes in zip(nets, (6, 4)):
        weights = {p.untyped_storage().data_ptr() for p in net.parameters()}
        saved: dict[int, int] = {}

        def pack(t, weights=weights, saved=saved):
            if t.untyped_storage().data_ptr() not in weights:
                saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = net(torch.zeros(1, model.channels, 64, 64, requires_grad=True))
        kept += passes * (sum(saved.values()) + 4 * out.numel())
    estimated = footprint(cfg).training_bytes - 16 * footprint(cfg).parameters
    assert kept / 2 <= estimated <= 2 * kept, (estimated, kept)


def test_a_config_of_ngf_100000_through_the_cli_is_one_line_naming_the_key_and_the_option(prepared, tmp_path):
    """It asked for 720 GB before; now the config is refused before any network exists."""
    (tmp_path / "big.toml").write_text("[model]\nngf = 100000\n")
    args = ["train", "--prepared", str(prepared), "--task", "normal2covid", "--out", str(tmp_path / "run")]
    args += ["--config", str(tmp_path / "big.toml")]
    proc = run_bounded(
        "import torch, generator.train, generator.networks\nfrom typer.testing import CliRunner\nfrom cli import app",
        f"result = CliRunner().invoke(app, {args!r})\nprint(result.exit_code, result.output)",
        headroom=1 << 30,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    code, _, output = proc.stdout.partition(" ")
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert code == "1" and len(lines) == 1, proc.stdout
    assert "model.ngf = 100000: the networks would have 55,440,041,525,380 parameters" in lines[0]
    assert "set allow_large = true in the --config file to allow it" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("batch_size = 100000\n", "batch_size = 100000"),
        ("pool_size = 10000000\n", "pool_size = 10000000"),
        ("[model]\nn_blocks = 10000\n", "model.n_blocks = 10000"),
        ("[model]\nd_layers = 1000000\n", "model.d_layers = 1000000"),
        ("load_size = 100000\ncrop_size = 100000\n", "crop_size = 100000"),
    ],
)
def test_a_large_config_names_the_key_that_makes_it_large_and_allow_large_lets_it_through(tmp_path, toml, key):
    (tmp_path / "c.toml").write_text(toml)
    with pytest.raises(ConfigError, match=f"^{key}: the networks would have"):
        load_preset("cyclegan", tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text("allow_large = true\n" + toml)
    assert load_preset("cyclegan", tmp_path / "c.toml").allow_large
    assert footprint(load_preset("cyclegan")).parameters < MAX_PARAMETERS / 30  # the reference: 28 M


def test_network_widths_below_one_are_refused():
    with pytest.raises(ConfigError, match="model.ngf must be >= 1, got 0"):
        ModelConfig(ngf=0)
    with pytest.raises(ConfigError, match="model.n_blocks must be >= 0, got -1"):
        ModelConfig(n_blocks=-1)


def _tiny_run(run: Path, change=None) -> Path:
    """A tiny config's freshly initialised networks saved as a training checkpoint (no training)."""
    cfg = tiny_config()
    nets = {"G_A": build_generator(cfg.model), "G_B": build_generator(cfg.model)}
    nets |= {"D_A": build_discriminator(cfg.model), "D_B": build_discriminator(cfg.model)}
    tensors = {f"nets.{n}.{k}": v.clone() for n, m in nets.items() for k, v in m.state_dict().items()}
    if change:
        change(tensors)
    meta = {"config": cfg.to_dict(), "config_sha256": cfg.sha256(), "task": "normal2covid", "param_groups": {}}
    save_checkpoint(run, 1, tensors, meta, keep_last=1)
    return run


@pytest.mark.parametrize(
    ("allow_large", "message"),
    [(False, r"bad config: model.ngf = 4096: the networks would have"), (True, "describes generators of .* weights")],
)
def test_a_checkpoint_whose_config_outgrows_its_tensors_is_refused_before_networks_are_built(
    tmp_path, allow_large, message
):
    run = _tiny_run(tmp_path / "run")
    json_path = next((run / "checkpoints").glob("*.json"))
    meta = json.loads(json_path.read_text())
    meta["config"]["model"]["ngf"] = 4096
    meta["config"]["allow_large"] = allow_large
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(run)


# --- non-finite weights are not exported or pushed --------------------------------------------------------


def _nan(tensors: dict) -> None:
    tensors["nets.G_B.model.1.weight"][0, 0, 0, 0] = float("nan")


def test_export_refuses_a_checkpoint_with_nan_weights_before_touching_its_output(tmp_path):
    run = _tiny_run(tmp_path / "run", _nan)
    with pytest.raises(CheckpointError, match=r"tensor nets\.G_B\.model\.1\.weight holds NaN or infinite values"):
        from generator.export import export_generators

        export_generators(run, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_push_refuses_an_exported_model_with_inf_weights(tmp_path):
    """An export made before the check (or edited since) with its sums in order: push's plan refuses it."""
    from builders.push import plan_push
    from generator.export import export_generators

    root = export_generators(_tiny_run(tmp_path / "run"), tmp_path / "export").root
    tensors = load_file(root / "model.safetensors")
    tensors["nets.G_A.model.1.bias"][3] = float("inf")
    save_file(tensors, root / "model.safetensors", metadata={"format": "pt"})
    meta = json.loads((root / "model.json").read_text())
    meta["tensors_sha256"] = sha256_file(root / "model.safetensors")
    (root / "model.json").write_text(json.dumps(meta))
    write_checksums(root)
    with pytest.raises(CheckpointError, match=r"tensor nets\.G_A\.model\.1\.bias holds NaN or infinite values"):
        plan_push(root, "someone/cxr-g-nc", remote_files=None)
