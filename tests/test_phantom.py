import numpy as np
import pytest

from cxr_dataset.errors import SourceError
from cxr_dataset.sources.phantom import PhantomSource, render_phantom


def test_phantom_is_deterministic_in_its_arguments():
    a = render_phantom("covid", 64, seed=3, patient=1, image=2)
    assert np.array_equal(a, render_phantom("covid", 64, seed=3, patient=1, image=2))
    assert not np.array_equal(a, render_phantom("covid", 64, seed=4, patient=1, image=2))


@pytest.mark.parametrize("size", [64, 128, 512])
def test_phantom_renders_8bit_grayscale_at_any_size(size):
    img = render_phantom("normal", size, seed=0, patient=0, image=0)
    assert img.shape == (size, size) and img.dtype == np.uint8
    assert img.min() < 40 and img.max() > 150  # air and bone both present


def _zone_mean(label, rows, cols, n=8):
    return np.mean([render_phantom(label, 128, seed=0, patient=p, image=0)[rows, cols].mean() for p in range(n)])


def test_phantom_covid_opacities_are_bilateral_and_lower_zone():
    lower = slice(70, 100)
    for lateral in (slice(10, 35), slice(93, 118)):  # outer band of each lung
        assert _zone_mean("covid", lower, lateral) > _zone_mean("normal", lower, lateral) + 3


def test_phantom_pneumonia_lungs_are_denser_than_normal():
    lungs = slice(30, 100)
    assert _zone_mean("pneumonia", lungs, slice(15, 113)) > _zone_mean("normal", lungs, slice(15, 113)) + 2


def test_phantom_spec_gives_several_images_per_patient():
    src = PhantomSource.from_spec("normal:7,covid:3,per_patient:3")
    records = src.records()
    assert [r.label for r in records].count("normal") == 7
    assert len({r.patient_id for r in records if r.label == "normal"}) == 3


@pytest.mark.parametrize("spec", ["normal:x", "flu:3", "normal:2,per_patient:0", ""])
def test_phantom_bad_spec_is_refused_with_the_syntax(spec):
    with pytest.raises(SourceError, match="phantom spec"):
        PhantomSource.from_spec(spec)


def test_phantom_size_out_of_range_is_refused():
    with pytest.raises(SourceError, match="size 32 out of range"):
        render_phantom("normal", 32, seed=0, patient=0, image=0)


def test_phantom_strength_scales_the_findings_and_travels_in_the_origin():
    lower, lateral = slice(70, 100), slice(10, 35)
    faint = PhantomSource.from_spec("covid:3,per_patient:1,strength:0.25")
    full = PhantomSource.from_spec("covid:3,per_patient:1")
    assert faint.records()[0].origin.endswith(":0.25") and full.records()[0].origin.count(":") == 4
    clear = PhantomSource.from_spec("covid:3,per_patient:1,strength:0")  # the same patients without findings
    zone = {
        name: np.mean([src.load(r, 128)[lower, lateral].mean() for r in src.records()])
        for name, src in (("clear", clear), ("faint", faint), ("full", full))
    }
    assert zone["full"] - zone["clear"] > 2 * (zone["faint"] - zone["clear"]) > 0
    with pytest.raises(SourceError, match="strength"):
        PhantomSource.from_spec("covid:3,strength:-1")
