from collections import defaultdict

import pytest

from cxr_dataset.errors import ConfigError
from cxr_dataset.sources.phantom import PhantomSource
from cxr_dataset.splits import paper_splits, patient_splits


def _records(spec="normal:60,pneumonia:30,covid:15"):
    return PhantomSource.from_spec(spec).records()


def test_splits_patient_mode_never_puts_a_patient_in_two_splits():
    records = _records()
    splits = patient_splits(records, seed=5)
    by_patient = defaultdict(set)
    for r in records:
        by_patient[r.patient_id].add(splits[r.id])
    assert all(len(s) == 1 for s in by_patient.values())
    assert set(splits.values()) == {"train", "validation", "test"}


def test_splits_patient_mode_is_seeded_and_order_free():
    records = _records()
    a = patient_splits(records, seed=1)
    assert a == patient_splits(list(reversed(records)), seed=1)
    assert a != patient_splits(records, seed=2)


def test_splits_patient_mode_stratifies_every_class():
    records = _records()
    splits = patient_splits(records, seed=0)
    for label in ("normal", "pneumonia", "covid"):
        assert {splits[r.id] for r in records if r.label == label} == {"train", "validation", "test"}


def test_splits_bad_fractions_are_refused():
    with pytest.raises(ConfigError, match="summing to 1"):
        patient_splits(_records(), seed=0, fractions={"train": 0.9, "validation": 0.2, "test": 0.1})


def test_splits_paper_mode_takes_the_first_80_percent_of_each_class_in_order():
    records = _records("normal:10,covid:5")
    splits = paper_splits(records)
    normals = [splits[r.id] for r in records if r.label == "normal"]
    assert normals == ["train"] * 8 + ["test"] * 2
    assert [splits[r.id] for r in records if r.label == "covid"] == ["train"] * 4 + ["test"]


def test_limit_training_keeps_a_seeded_subset_of_one_class_and_leaves_held_out_splits_whole():
    from cxr_dataset.splits import limit_training

    records = _records("normal:40,covid:40")
    splits = patient_splits(records, seed=0)
    dropped = limit_training(records, splits, {"covid": 5}, seed=0)
    kept_train = [r.id for r in records if r.label == "covid" and splits[r.id] == "train" and r.id not in dropped]
    assert len(kept_train) == 5
    assert len(dropped) == sum(r.label == "covid" and splits[r.id] == "train" for r in records) - 5
    assert all(splits[r.id] == "train" and r.label == "covid" for r in records if r.id in dropped)
    assert (
        dropped
        == limit_training(records, splits, {"covid": 5}, seed=0)
        != limit_training(records, splits, {"covid": 5}, seed=1)
    )
    with pytest.raises(ConfigError, match="training limits"):
        limit_training(records, splits, {"pneumonia": 5}, seed=0)
