import numpy as np
import pytest

from cxr_dataset.imaging import encode_png, read_gray, read_gray_batch
from cxr_dataset.sources.phantom import render_phantom


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    paths = []
    for i in range(80):
        path = root / f"{i:03d}.png"
        path.write_bytes(encode_png(render_phantom("normal", 96, seed=0, patient=i, image=0)))
        paths.append(path)
    return paths


def test_read_gray_batch_in_worker_processes_equals_one_process(phantom_files):
    one = read_gray_batch(phantom_files, 64)
    assert one.shape == (80, 64, 64) and one.dtype == np.uint8
    assert np.array_equal(one, read_gray_batch(phantom_files, 64, workers=2))
    assert np.array_equal(one[7], read_gray(phantom_files[7], 64))


def test_read_gray_reads_bytes_like_files(phantom_files):
    data = phantom_files[0].read_bytes()
    assert np.array_equal(read_gray(data, 48), read_gray(phantom_files[0], 48))
    assert np.array_equal(read_gray_batch([data, phantom_files[1]], 48)[1], read_gray(phantom_files[1], 48))
