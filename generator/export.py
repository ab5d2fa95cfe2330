"""`cxrds export`: a trained run's two generators as an inference-only model folder (a Hub model repository).

    EXPORT/model.safetensors   G_A (source → COVID-19) and G_B (COVID-19 → source), nothing else
    EXPORT/model.json          the checkpoint JSON: resolved config, task, step, the training checkpoint's
                               SHA-256 (what provenance records), the prepared data it was trained on
    EXPORT/README.md           the model card
    EXPORT/samples.png         the run's latest sample grid, when it has one
    EXPORT/config.json, cxrds_generators.py, cxrds_networks.py   loading without cxrds (`generator.hub_model`)
    EXPORT/SHA256SUMS          every file above

`cxrds translate --checkpoint EXPORT` (or ``hf://USER/REPO[@revision]``) gives the same images and the same
provenance as translating from the run folder. Only safetensors and JSON are read; nothing is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cards import responsible_ai
from cxr_dataset import __version__
from cxr_dataset.checksums import read_checksums
from cxr_dataset.errors import CheckpointError
from cxr_dataset.export_folder import (
    HUB_CONFIG_NAME,
    HUB_FILES,
    LOADER_NAME,
    MODEL_CARD_NAME,
    MODEL_JSON_NAME,
    MODEL_TENSORS_NAME,
    NETWORKS_NAME,
    SAMPLES_NAME,
)
from cxr_dataset.fileio import atomic_open, atomic_write_text, sha256_file
from cxr_dataset.ownership import claimed_output
from cxr_dataset.release_folder import check_repo_id
from cxr_dataset.schema import TASK_CONFIG, TASK_SOURCE_CLASS
from cxr_dataset.weights import check_finite_file
from generator import hub_model, networks
from generator.checkpoint import EXPORT_FORMAT, load_checkpoint
from generator.run_folder import latest_sample, run_of_checkpoint

HF_PREFIX = "hf://"
GENERATOR_PREFIXES = ("nets.G_A.", "nets.G_B.")


@dataclass(frozen=True)
class ExportResult:
    root: Path
    bytes: int  # model.safetensors
    files: int


def export_generators(
    checkpoint: Path, out: Path, *, repo_id: str | None = None, dataset_repo_id: str | None = None
) -> ExportResult:
    """Write the inference folder for a run (its latest checkpoint) or a checkpoint file. `repo_id`: the Hub
    model repository it is for (the card's snippets name it); `dataset_repo_id`: the dataset its images form."""
    for given, option in ((repo_id, "--repo-id"), (dataset_repo_id, "--dataset")):
        if given is not None:
            check_repo_id(given, option)

    ckpt = load_checkpoint(checkpoint)
    if ckpt.meta.get("format") == EXPORT_FORMAT:
        raise CheckpointError(f"{checkpoint}: already an exported model; export a run folder or checkpoint")
    check_finite_file(ckpt.tensors_path, GENERATOR_PREFIXES)  # a diverged run is not exported, as not translated
    # Only an empty folder or an earlier export (exactly what its SHA256SUMS lists) is written into: push
    # uploads what SHA256SUMS lists, which is the whole folder.
    with claimed_output(Path(out), "export", inputs=[Path(checkpoint)], command="cxrds export") as claim:
        _write_export(ckpt, claim.root, repo_id or "OWNER/NAME", dataset_repo_id)
    out = Path(out)
    return ExportResult(out, (out / MODEL_TENSORS_NAME).stat().st_size, len(read_checksums(out)))


def _write_export(ckpt, out: Path, repo_id: str, dataset_repo_id: str | None) -> None:
    from safetensors.torch import save

    every = ckpt.tensors()
    tensors = {k: v.contiguous() for k, v in every.items() if k.startswith(GENERATOR_PREFIXES)}
    if not tensors:
        raise CheckpointError(f"{ckpt.tensors_path}: no generator tensors (nets.G_A.*, nets.G_B.*)")
    tensors_path = out / MODEL_TENSORS_NAME
    with atomic_open(tensors_path) as f:
        f.write(save(tensors, metadata={"format": "pt"}))
    keep = ("config", "config_sha256", "task", "step", "epoch", "manifest_sha256", "world_size", "code_version")
    meta = {k: ckpt.meta[k] for k in keep if k in ckpt.meta}
    meta |= {
        "format": EXPORT_FORMAT,
        "tensors_file": MODEL_TENSORS_NAME,
        "tensors_sha256": sha256_file(tensors_path),
        "checkpoint_sha256": ckpt.sha256,  # the training checkpoint: what translations record as provenance
        "exported_by": __version__,
    }
    atomic_write_text(out / MODEL_JSON_NAME, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    # Loadable without cxrds: CycleGANGenerators' arguments, and the loader and networks beside them.
    hub_config = {"model": meta["config"]["model"], "task": meta["task"], "crop_size": meta["config"]["crop_size"]}
    atomic_write_text(out / HUB_CONFIG_NAME, json.dumps(hub_config, indent=2, sort_keys=True) + "\n")
    for name, module in ((LOADER_NAME, hub_model), (NETWORKS_NAME, networks)):
        with atomic_open(out / name) as f:
            f.write(Path(module.__file__).read_bytes())
    sample = latest_sample(run_of_checkpoint(ckpt.json_path))
    if sample is not None:
        with atomic_open(out / SAMPLES_NAME) as f:
            f.write(sample.read_bytes())
    else:
        (out / SAMPLES_NAME).unlink(missing_ok=True)  # an earlier export's
    card = model_card(meta, has_samples=sample is not None, repo_id=repo_id, dataset_repo_id=dataset_repo_id)
    atomic_write_text(out / MODEL_CARD_NAME, card)


def model_card(
    meta: dict, *, has_samples: bool, repo_id: str = "OWNER/NAME", dataset_repo_id: str | None = None
) -> str:
    """A Hub model card from the checkpoint's JSON: what the generators translate, how they were trained, how to
    load them with and without cxrds, and the intended use and limitations (`cards/responsible_ai.toml`)."""
    cfg, task, rai = meta["config"], meta["task"], responsible_ai()
    model = cfg["model"]
    arch = f"ResNet generator, {model['n_blocks']} blocks" if model["generator"] == "resnet" else "U-Net generator"
    source = TASK_SOURCE_CLASS[task]
    name = TASK_CONFIG.get(task, task).upper()  # G_NC, G_PC: the paper's names
    lines = [
        "---",
        "license: mit",
        "library_name: cxrds",
        "pipeline_tag: image-to-image",
        "tags: [medical, chest-xray, cyclegan, synthetic, covid-19, pytorch_model_hub_mixin]",
        *([f"datasets: [{dataset_repo_id}]"] if dataset_repo_id else []),
        "---",
        "",
        f"# {name}: CycleGAN {source} → COVID-19 chest X-ray generators (cxrds)",
        "",
        f"Two generators trained together with `cxrds train` (preset `{cfg['preset']}`): `G_A` translates "
        f"{source} chest X-rays into synthetic COVID-19 ones (the images of config `{TASK_CONFIG.get(task, task)}`), "
        "`G_B` translates back. Inference weights only (no discriminators, optimizer state or image pools).",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {arch}, ngf {model['ngf']}, norm {model['norm']}, {model['channels']} channel(s) |",
        f"| input | {cfg['crop_size']}² grayscale, scaled to [-1, 1] |",
        f"| training | {meta.get('step', '?')} steps, {cfg['epochs']} + {cfg['epochs_decay']} decay epochs, "
        f"batch {cfg['batch_size']}, lr {cfg['lr']}, λ_cycle {cfg['lambda_cycle']}, "
        f"λ_identity {cfg['lambda_identity']}, {cfg['precision']}, seed {cfg['seed']} |",
        f"| training data | the prepared manifest with SHA-256 `{meta.get('manifest_sha256', 'not recorded')}` "
        f"({source} and COVID-19 images of its training split) |",
        f"| training checkpoint | SHA-256 `{meta['checkpoint_sha256']}` (in every translated image's provenance) |",
        f"| code | cxrds {meta.get('code_version', '?')} |",
        "",
        "## Use",
        "",
        "With cxrds (the translated images carry the same provenance as a translation from the run folder):",
        "",
        "```bash",
        f"cxrds translate --prepared PREPARED --checkpoint hf://{repo_id} --out SYNTH",
        "```",
        "",
        f"Without it (torch, safetensors, huggingface_hub): `{LOADER_NAME}` and `{NETWORKS_NAME}` in this "
        "repository hold the loader and the networks, and `translate` is the arithmetic `cxrds translate` uses.",
        "",
        "```python",
        "import sys",
        "from huggingface_hub import snapshot_download",
        "",
        f'sys.path.insert(0, snapshot_download("{repo_id}"))',
        "from cxrds_generators import CycleGANGenerators",
        "",
        f'generators = CycleGANGenerators.from_pretrained("{repo_id}")',
        f"covid = generators.translate(images)  # uint8 N×{cfg['crop_size']}×{cfg['crop_size']} → uint8",
        "```",
        "",
        "## Intended use",
        "",
        *[f"- {text}" for text in rai["use_cases"]],
        "",
        "## Limits",
        "",
        rai["out_of_scope"],
        "",
        *[f"- {text}" for text in [*rai["biases"], *rai["limitations"][:2]]],
        "- The real images it was trained on keep their own licences.",
    ]
    if has_samples:
        lines += ["", "## Samples", "", "Rows: source, G_A(source), G_B(G_A(source)), COVID-19, G_B(COVID-19).", ""]
        lines += [f"![samples]({SAMPLES_NAME})"]
    return "\n".join(lines) + "\n"


def resolve_checkpoint(spec: str | Path) -> Path:
    """A local checkpoint path, or ``hf://USER/REPO[@revision]`` fetched through huggingface_hub's cache
    (only the exported files: JSON, safetensors, card; nothing that could be unpickled)."""
    text = str(spec)
    if not text.startswith(HF_PREFIX):
        return Path(spec)
    repo_id, _, revision = text[len(HF_PREFIX) :].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CheckpointError(f"{text}: expected hf://OWNER/NAME[@revision]")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        folder = snapshot_download(repo_id, revision=revision or None, allow_patterns=list(HUB_FILES))
    except (HfHubHTTPError, OSError) as e:
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{text}: cannot fetch the model ({type(e).__name__}: {reason})") from None
    return Path(folder)
