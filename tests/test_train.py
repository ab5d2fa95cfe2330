import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cxr_dataset.errors import CheckpointError, ConfigError
from generator.checkpoint import load_checkpoint
from generator.precision import resolve_precision
from generator.train import train
from tests.conftest import tiny_config


def test_train_writes_safetensors_plus_json_with_the_resolved_config(prepared, tmp_path):
    train(prepared, "pneumonia2covid", tmp_path, tiny_config())
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.tensors_path.suffix == ".safetensors"
    resolved = dataclasses.replace(tiny_config(), precision=resolve_precision("auto", torch.device("cpu")))
    assert ckpt.config == resolved and ckpt.meta["task"] == "pneumonia2covid"
    assert {k.split(".")[0] for k in ckpt.tensors("nets.")} == {"G_A", "G_B", "D_A", "D_B"}


def test_train_refuses_to_overwrite_a_run_without_resume(prepared, tmp_path):
    train(prepared, "normal2covid", tmp_path, tiny_config())
    with pytest.raises(ConfigError, match="pass --resume"):
        train(prepared, "normal2covid", tmp_path, tiny_config())


def test_train_unknown_task_is_refused(prepared, tmp_path):
    with pytest.raises(ConfigError, match="task must be one of"):
        train(prepared, "covid2normal", tmp_path, tiny_config())


def test_checkpoint_pickle_file_is_refused_without_unpickling(tmp_path):
    torch.save({"x": torch.zeros(1)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"safetensors file with a \.json beside it"):
        load_checkpoint(tmp_path / "model.pt")


def test_checkpoint_json_of_another_format_is_refused(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"format": "keras"}))
    with pytest.raises(CheckpointError, match="format must be"):
        load_checkpoint(tmp_path / "c.json")


def test_checkpoint_tensors_not_matching_the_config_are_refused(prepared, tmp_path):
    from generator.translate import translate

    train(prepared, "normal2covid", tmp_path / "run", tiny_config())
    ckpt = load_checkpoint(tmp_path / "run")
    tensors = ckpt.tensors()
    tensors["nets.G_A.model.1.weight"] = torch.zeros(3, 1, 7, 7)  # wrong shape for ngf 16
    save_file(tensors, ckpt.tensors_path)
    meta = json.loads(ckpt.json_path.read_text())
    from cxr_dataset.fileio import sha256_file

    meta["tensors_sha256"] = sha256_file(ckpt.tensors_path)
    ckpt.json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match the config"):
        translate(prepared, tmp_path / "run", tmp_path / "out")


def test_checkpoint_corrupt_tensors_are_detected_by_hash(prepared, tmp_path):
    train(prepared, "normal2covid", tmp_path, tiny_config())
    ckpt = load_checkpoint(tmp_path)
    data = bytearray(ckpt.tensors_path.read_bytes())
    data[-1] ^= 0xFF
    ckpt.tensors_path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the JSON"):
        load_checkpoint(tmp_path)


def test_every_logged_timing_names_the_device_it_was_measured_on(prepared, tmp_path):
    from cxr_dataset.devices import describe
    from generator.run_folder import read_log

    train(prepared, "normal2covid", tmp_path, tiny_config())
    entries = read_log(tmp_path)
    assert entries and all(e["device"] == describe("cpu") and "img_per_s" in e for e in entries)


def _losses_by_step(run):
    """The last logged losses of every step (a resumed run re-logs the steps after its checkpoint)."""
    entries = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    varying = ("img_per_s", "elapsed_s", "epoch", "device")
    return {e["step"]: {k: v for k, v in e.items() if k not in varying} for e in entries}


@pytest.mark.parametrize("save_every", [3])  # mid-epoch (epoch ends: test_resume_with_more_epochs_...)
@pytest.mark.slow
def test_train_killed_with_sigkill_and_resumed_matches_an_uninterrupted_run(prepared, tmp_path, save_every):
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tiny_config(epochs=6, save_every=save_every)
    uninterrupted = train(prepared, "normal2covid", tmp_path / "a", cfg)

    overrides = tmp_path / "log_every.toml"
    overrides.write_text(f"log_every = 1\nsave_every = {save_every}\n")
    command = [
        sys.executable,
        "-m",
        "cli",
        "train",
        "--prepared",
        str(prepared),
        "--task",
        "normal2covid",
        "--out",
        str(tmp_path / "b"),
        "--preset",
        "tiny",
        "--size",
        "64",
        "--epochs",
        "6",
        "--config",
        str(overrides),
    ]
    proc = subprocess.Popen(command, cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "b" / "checkpoints").glob("step-*.json")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(_losses_by_step(tmp_path / "b"))
    assert killed_at < uninterrupted.steps, "the run finished before it could be killed"

    resumed = train(prepared, "normal2covid", tmp_path / "b", cfg, resume=True)
    assert resumed.steps == uninterrupted.steps
    assert _losses_by_step(tmp_path / "b") == _losses_by_step(tmp_path / "a")


def test_optimizer_moments_come_back_in_the_layout_of_channels_last_parameters():
    """Safetensors returns dense row-major tensors; fused Adam (as on CUDA) refuses moments whose strides
    differ from their parameter's."""
    from generator.checkpoint import optimizer_from_tensors, optimizer_to_tensors

    def conv_and_adam():
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(2, 4, 3).to(memory_format=torch.channels_last)
        return conv, torch.optim.Adam(conv.parameters(), fused=True)

    def step(conv, opt):
        x = torch.ones(2, 2, 8, 8).contiguous(memory_format=torch.channels_last)
        conv(x).square().mean().backward()
        opt.step()

    conv, opt = conv_and_adam()
    step(conv, opt)
    tensors, groups = optimizer_to_tensors(opt, "optim")
    dense = {k: v.contiguous() for k, v in tensors.items()}  # what a safetensors round trip gives back
    fresh, fresh_opt = conv_and_adam()
    optimizer_from_tensors(fresh_opt, dense, "optim", groups)
    assert all(m.stride() == p.stride() for p, st in fresh_opt.state.items() for m in st.values() if m.shape == p.shape)
    step(fresh, fresh_opt)  # raises without the re-layout


def test_resume_with_more_epochs_reaches_the_weights_of_a_run_planned_that_long(prepared, tmp_path):
    planned = train(prepared, "normal2covid", tmp_path / "planned", tiny_config(epochs=3))
    train(prepared, "normal2covid", tmp_path / "extended", tiny_config(epochs=2))
    extended = train(prepared, "normal2covid", tmp_path / "extended", tiny_config(epochs=3), resume=True)
    assert extended.steps == planned.steps
    a, b = load_checkpoint(tmp_path / "planned").tensors(), load_checkpoint(tmp_path / "extended").tensors()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_changed_key_and_names_it(prepared, tmp_path):
    train(prepared, "normal2covid", tmp_path, tiny_config())
    changed = dataclasses.replace(tiny_config(epochs=2, lr=1e-3), model=dataclasses.replace(tiny_config().model, ngf=8))
    with pytest.raises(ConfigError, match=r"this run changes lr 0\.0005 → 0\.001, model\.ngf 16 → 8\."):
        train(prepared, "normal2covid", tmp_path, changed, resume=True)


def test_resume_refuses_fewer_epochs_than_already_trained(prepared, tmp_path):
    train(prepared, "normal2covid", tmp_path, tiny_config(epochs=2))
    with pytest.raises(ConfigError, match=r"already trained 8 steps, more than the 1 epochs asked for \(4 steps\)"):
        train(prepared, "normal2covid", tmp_path, tiny_config(epochs=1), resume=True)


def test_resume_that_changes_the_rate_of_trained_epochs_warns(prepared, tmp_path):
    train(prepared, "normal2covid", tmp_path, tiny_config(epochs=1, epochs_decay=1))
    with pytest.warns(UserWarning, match="another learning rate"):
        train(prepared, "normal2covid", tmp_path, tiny_config(epochs=1, epochs_decay=3), resume=True)


def test_train_without_an_image_pool_as_the_paper_preset_does(prepared, tmp_path):
    """pool_size 0 hands D this step's fakes; they must come detached, or D's backward reaches G's freed graph."""
    cfg = dataclasses.replace(tiny_config(), pool_size=0, epochs=1)
    result = train(prepared, "normal2covid", tmp_path, cfg)
    assert result.steps > 0 and all(torch.isfinite(torch.tensor(v)) for v in result.last_losses.values())
