"""The export folder (`cxrds export`): its file names, one place for the writer, `load_checkpoint` and `push`.

    EXPORT/model.safetensors   the two generators' tensors
    EXPORT/model.json          the checkpoint JSON (format `cxrds-cyclegan-generators/1`)
    EXPORT/README.md           the model card
    EXPORT/samples.png         the run's latest sample grid, when it has one
    EXPORT/config.json         `CycleGANGenerators`' arguments (huggingface_hub's PyTorchModelHubMixin)
    EXPORT/cxrds_generators.py, cxrds_networks.py   the loader and the networks: loading needs no cxrds
    EXPORT/SHA256SUMS          every file above (`cxr_dataset.checksums`)

`generator/export.py` writes it, `generator.checkpoint` reads it back; it lives here, below both, because
`builders.push` also reads it and the builders import nothing of the generator (nor torch).
"""

from __future__ import annotations

from pathlib import Path

MODEL_TENSORS_NAME = "model.safetensors"
MODEL_JSON_NAME = "model.json"
MODEL_CARD_NAME = "README.md"  # the Hub's name for a repository's card
SAMPLES_NAME = "samples.png"
HUB_CONFIG_NAME = "config.json"  # PyTorchModelHubMixin's name
LOADER_NAME = "cxrds_generators.py"  # a copy of generator/hub_model.py
NETWORKS_NAME = "cxrds_networks.py"  # a copy of generator/networks.py
HUB_FILES = (MODEL_JSON_NAME, MODEL_TENSORS_NAME, MODEL_CARD_NAME)  # what `hf://` fetches: nothing unpickled


def is_export(folder: Path) -> bool:
    """Whether `folder` holds an exported model (its JSON): a Hub model repository rather than a release."""
    return (Path(folder) / MODEL_JSON_NAME).is_file()
