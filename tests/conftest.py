"""Shared fixtures: one tiny phantom pipeline per test session (prepare → train → translate → build)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

# Before any project import: huggingface_hub reads HF_HUB_OFFLINE once, when first imported.
os.environ.setdefault("SOURCE_DATE_EPOCH", "1795737600")  # 2026-11-27: builds on either side of midnight match
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub

import pytest

from builders.release import BuildConfig, build_release
from cxr_dataset.prepare import PrepareConfig, prepare
from generator.config import load_preset
from generator.train import train
from generator.translate import translate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "realcxr"
SIZE = 64
PHANTOM = "phantom=normal:24,pneumonia:18,covid:18"


def tiny_config(**overrides):
    return dataclasses.replace(load_preset("tiny").with_size(SIZE), **{"epochs": 1, "log_every": 1, **overrides})


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare([PHANTOM], out, PrepareConfig(size=SIZE, seed=0, workers=1))
    return out


@pytest.fixture(scope="session")
def synthetic(prepared, tmp_path_factory) -> dict[str, Path]:
    """Both tasks trained for one epoch and translated: task → synthetic folder."""
    root = tmp_path_factory.mktemp("pipeline")
    out = {}
    for task in ("normal2covid", "pneumonia2covid"):
        train(prepared, task, root / "runs" / task, tiny_config())
        out[task] = root / "synthetic" / task
        translate(prepared, root / "runs" / task, out[task])
    return out


@pytest.fixture(scope="session")
def release(synthetic, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("release") / "covid-synthetic-cxr"
    build_release(list(synthetic.values()), root, BuildConfig(samples_per_shard=4))
    return root


@pytest.fixture
def hub(monkeypatch):
    """A local stand-in for the Hub (tests/hub_standin.py), with this process's huggingface_hub pointed at it
    (a subprocess gets it through HF_ENDPOINT)."""
    from huggingface_hub import constants

    from tests.hub_standin import HubStandIn

    with HubStandIn() as stand_in:
        monkeypatch.setattr(constants, "ENDPOINT", stand_in.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", "hf_standin")
        yield stand_in
