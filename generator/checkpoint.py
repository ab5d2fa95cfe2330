"""Checkpoints as safetensors (every tensor) plus JSON (everything else); nothing is ever unpickled.

A run folder holds ``checkpoints/step-NNNNNNNNN.{safetensors,json}``; the JSON names its tensors file and
its SHA-256, the resolved config, the step/epoch counters, the optimizers' hyper-parameters, the task
and the manifest it was trained on. An exported model folder (`generator/export.py`) holds
``model.{safetensors,json}`` in the same form with the generators only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from cxr_dataset import __version__
from cxr_dataset.errors import CheckpointError, ConfigError
from cxr_dataset.export_folder import MODEL_JSON_NAME
from cxr_dataset.fileio import atomic_open, atomic_write_text, sha256_file
from cxr_dataset.weights import check_finite
from generator.config import TrainConfig, from_dict, generator_parameters
from generator.run_folder import CHECKPOINT_PATTERN, CHECKPOINTS_DIR, checkpoint_base, checkpoint_files, run_checkpoints

FORMAT = "cxrds-cyclegan-checkpoint/1"
EXPORT_FORMAT = "cxrds-cyclegan-generators/1"
_REQUIRED = {"config": dict, "step": int, "task": str, "tensors_file": str, "tensors_sha256": str, "config_sha256": str}


@dataclass(frozen=True)
class Checkpoint:
    json_path: Path
    tensors_path: Path
    meta: dict[str, Any]
    config: TrainConfig

    @property
    def sha256(self) -> str:
        """The training checkpoint's SHA-256 (an export records the one it was made from)."""
        return self.meta.get("checkpoint_sha256") or self.meta["tensors_sha256"]

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Tensors whose names start with `prefix`, with the prefix removed."""
        try:
            every = load_file(self.tensors_path)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{self.tensors_path}: not a readable safetensors file ({e})") from None
        return {k[len(prefix) :]: v for k, v in every.items() if k.startswith(prefix)}


def save_checkpoint(
    run_dir: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any], keep_last: int
) -> Path:
    """Write tensors then JSON (each atomically; the JSON last, so it only ever names complete tensors)."""
    base = checkpoint_base(run_dir, step)
    tensors_path = base.with_suffix(".safetensors")
    with atomic_open(tensors_path) as f:
        f.write(save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))
    meta = {
        **meta,
        "format": FORMAT,
        "step": step,
        "code_version": __version__,
        "tensors_file": tensors_path.name,
        "tensors_sha256": sha256_file(tensors_path),
    }
    json_path = base.with_suffix(".json")
    atomic_write_text(json_path, json.dumps(meta, indent=2, sort_keys=True))
    for old in checkpoint_files(base.parent)[:-keep_last]:
        old.with_suffix(".safetensors").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return json_path


def load_checkpoint(path: Path) -> Checkpoint:
    """Open a checkpoint: a run folder (its latest), an exported model folder, or a checkpoint's .json or
    .safetensors file.

    Raises `CheckpointError` for anything that is not a cxrds safetensors + JSON pair.
    """
    path = Path(path)
    if path.is_dir() and (path / MODEL_JSON_NAME).is_file():
        path = path / MODEL_JSON_NAME
    elif path.is_dir():
        found = run_checkpoints(path) or checkpoint_files(path)
        if not found:
            expected = f"{CHECKPOINTS_DIR}/{CHECKPOINT_PATTERN}"
            raise CheckpointError(f"{path}: no checkpoints (expected {expected} from `cxrds train`)")
        path = found[-1]
    json_path = path.with_suffix(".json")
    if not json_path.is_file():
        raise CheckpointError(f"{path}: a checkpoint is a .safetensors file with a .json beside it; none found")
    try:
        meta = json.loads(json_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{json_path}: not JSON ({e}); checkpoints are safetensors + JSON") from None
    if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, EXPORT_FORMAT):
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{json_path}: format must be {FORMAT!r} or {EXPORT_FORMAT!r}, got {got!r}")
    missing = [k for k, kind in _REQUIRED.items() if not isinstance(meta.get(k), kind)]
    if missing:
        raise CheckpointError(f"{json_path}: missing or mistyped keys {missing}; not a complete cxrds checkpoint")
    try:
        config = from_dict(TrainConfig, meta["config"], where=f"{json_path}: config")
    except ConfigError as e:
        raise CheckpointError(f"{json_path}: bad config: {e}") from None
    name = meta["tensors_file"]
    if "/" in name or "\\" in name or name in ("", ".", "..") or not name.endswith(".safetensors"):
        raise CheckpointError(f"{json_path}: tensors_file {name!r} must be a .safetensors file beside the JSON")
    tensors_path = json_path.with_name(name)
    if not tensors_path.is_file():
        raise CheckpointError(f"{json_path}: its tensors file {tensors_path.name} is missing")
    # Networks are built from the config before its tensors are loaded: a config describing more weights than
    # the file holds (two generators, at least 2 bytes each) would allocate them for nothing.
    weights, size = 2 * generator_parameters(config.model), tensors_path.stat().st_size
    if 2 * weights > size:
        raise CheckpointError(
            f"{json_path}: its config describes generators of {weights:,} weights, more than "
            f"{tensors_path.name} ({size:,} bytes) can hold; the JSON does not belong to these tensors"
        )
    actual = sha256_file(tensors_path)
    if actual != meta["tensors_sha256"]:
        raise CheckpointError(
            f"{tensors_path}: SHA-256 {actual[:12]}… does not match the JSON's "
            f"{meta['tensors_sha256'][:12]}…; the file is corrupt or was replaced"
        )
    return Checkpoint(json_path, tensors_path, meta, config)


def load_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Load a state dict strictly (finite values only), turning mismatches into one `CheckpointError`."""
    check_finite(tensors, where)
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{where}: tensors do not match the config's networks: {' '.join(first[:3])}") from None


def optimizer_to_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], list]:
    """Split an optimizer's state into tensors (for safetensors) and its param groups (for JSON)."""
    sd = opt.state_dict()
    tensors = {f"{prefix}.{i}.{k}": v for i, state in sd["state"].items() for k, v in state.items()}
    return tensors, sd["param_groups"]


def optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str, param_groups: list
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": param_groups})
    # Safetensors stores dense row-major tensors; fused Adam needs each moment laid out like its parameter
    # (channels_last on CUDA), so copy them back into that layout.
    for param, moments in opt.state.items():
        for key, value in moments.items():
            if value.shape == param.shape and value.stride() != param.stride():
                moments[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
