"""The training loop's hot path: no host reads of device values and no grid or checkpoint work between the
configured intervals (on an accelerator each such read is a sync that stalls the queue of kernels)."""

import weakref

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

import generator.train as train_module
from generator.checkpoint import load_checkpoint
from tests.conftest import tiny_config

# Functions that copy a value to the host, or whose output's size depends on values: on an accelerator each one
# waits for the device to finish.
HOST_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.cpu,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.Tensor.__repr__,
    torch.Tensor.__format__,
    torch.Tensor.equal,
    torch.equal,
    torch.Tensor.allclose,
    torch.allclose,
    torch.Tensor.nonzero,
    torch.nonzero,
    torch.Tensor.masked_select,
    torch.masked_select,
    torch.Tensor.unique,
    torch.unique,
}


def _is_host_read(func, args, kwargs) -> bool:
    """`func` reads values to the host: one of HOST_READS, a copy to the CPU, or indexing by a boolean mask."""
    if func in HOST_READS:
        return True
    if func is torch.Tensor.to:
        targets = [*args[1:], kwargs.get("device")]
        return any(str(t) == "cpu" or getattr(t, "type", None) == "cpu" for t in targets)
    if func is torch.Tensor.__getitem__:
        index, _ = tree_flatten(args[1])
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)
    return False


class DeviceValueReads(TorchFunctionMode):
    """Follows every tensor computed from the networks' parameters or the training images (what lives on the
    training device) and records each host read of one, with the step it came after (`inside` while a step runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.followed: dict[int, weakref.ref] = {}
        self.step, self.inside, self.reads = 0, False, []

    def follow(self, tensor: torch.Tensor) -> None:
        self.followed[id(tensor)] = weakref.ref(tensor)

    def _is_followed(self, value) -> bool:
        if not isinstance(value, torch.Tensor):
            return False
        if isinstance(value, torch.nn.Parameter):
            return True
        ref = self.followed.get(id(value))
        return ref is not None and ref() is value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs, _ = tree_flatten((args, kwargs))
        followed = any(self._is_followed(v) for v in inputs)
        if followed and _is_host_read(func, args, kwargs):
            self.reads.append(("inside step" if self.inside else self.step, func.__name__))
        result = func(*args, **kwargs)
        if followed:
            for value in tree_flatten(result)[0]:
                if isinstance(value, torch.Tensor):
                    self.follow(value)
        return result


def _steps_of(calls: list[int]) -> list[int]:
    return sorted(set(calls))


def test_train_loop_reads_device_values_and_writes_only_at_its_intervals(prepared, tmp_path, monkeypatch):
    reads = DeviceValueReads()
    saves, grids = [], []
    real_step, real_load = train_module.train_step, train_module.load_domain
    real_save, real_samples = train_module._save, train_module._write_samples

    def step(*args, **kwargs):
        reads.inside = True
        losses = real_step(*args, **kwargs)
        reads.inside, reads.step = False, reads.step + 1
        return losses

    def load_domain(*args, **kwargs):  # the training images: on the device, as the parameters are
        images = real_load(*args, **kwargs)
        reads.follow(images)
        return images

    monkeypatch.setattr(train_module, "train_step", step)
    monkeypatch.setattr(train_module, "load_domain", load_domain)
    monkeypatch.setattr(train_module, "_save", lambda out, n, state: (saves.append(n), real_save(out, n, state)))
    monkeypatch.setattr(
        train_module, "_write_samples", lambda path, *a, **k: (grids.append(reads.step), real_samples(path, *a, **k))
    )
    cfg = tiny_config(epochs=3, log_every=3, save_every=5, sample_every=5)
    with reads:
        result = train_module.train(prepared, "normal2covid", tmp_path / "run", cfg)
    total = result.steps
    assert total >= 10 and total % 5  # every interval comes round more than once; the last step is off them
    logged = {1, total} | {s for s in range(1, total + 1) if s % 3 == 0}
    assert saves == sorted({s for s in range(1, total + 1) if s % 5 == 0} | {total})  # the last step too
    assert load_checkpoint(result.checkpoint).meta["step"] == total
    assert grids == sorted({s for s in range(1, total + 1) if s % 5 == 0} | {total})
    assert not [r for r in reads.reads if r[0] == "inside step"], reads.reads
    between = _steps_of([s for s, _ in reads.reads])  # 0: setting up, before the first step (model.to(device))
    assert set(between) <= {0} | logged | set(saves) | set(grids), reads.reads
    per_log = [name for s, name in reads.reads if s == 3]
    assert per_log == ["tolist"]  # one read per log line: the losses, stacked


PLANTED_READS = {
    "float": lambda losses: float(losses["G_A"]),  # what a careless progress bar would add
    "to cpu": lambda losses: losses["G_A"].to("cpu"),
    "equal": lambda losses: torch.equal(losses["G_A"], losses["G_B"]),
    "nonzero": lambda losses: losses["G_A"].reshape(1).nonzero(),
    "mask": lambda losses: losses["G_A"].reshape(1)[losses["G_A"].reshape(1) > 0],
}


@pytest.mark.parametrize("planted", PLANTED_READS)
def test_device_value_reads_sees_a_per_step_read(planted, prepared, tmp_path, monkeypatch):
    """The counter above sees each kind of host read planted once a step."""
    reads = DeviceValueReads()
    real_step = train_module.train_step

    def step(*args, **kwargs):
        losses = real_step(*args, **kwargs)
        PLANTED_READS[planted](losses)
        reads.step += 1
        return losses

    monkeypatch.setattr(train_module, "train_step", step)
    with reads:
        train_module.train(prepared, "normal2covid", tmp_path / "run", tiny_config(log_every=100))
    assert {s for s, _ in reads.reads if s != 0} == set(range(1, reads.step + 1))  # after every step, no other
