"""The dataset card (`README.md`): YAML metadata derived from the schema and the data, prose from `cards/`."""

from __future__ import annotations

from collections import Counter
from typing import Any

from builders.licences import Licences, per_manifest, summarise
from cards import responsible_ai
from cxr_dataset.licences import MIXED_NAME
from cxr_dataset.schema import ALL_CONFIG, FIELDS, RELEASE_PRESET, TASK_CONFIG, to_card_features
from cxr_dataset.sources import source_title
from cxr_dataset.user_text import markdown_text

PRETTY_NAME = "Synthetic COVID-19 Chest X-ray Dataset"
TEMPLATE = "dataset_card.md.jinja"


SIZE_BUCKETS = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B", "n>1B")
GATED_FIELDS = {"I have read the licences section and will use the data only as its terms allow": "checkbox"}


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for n rows (powers of ten from 1K)."""
    index = 0
    while index < len(SIZE_BUCKETS) - 1 and n >= 1_000 * 10**index:
        index += 1
    return SIZE_BUCKETS[index]


def source_dataset_ids(rows: list[dict[str, Any]]) -> list[str]:
    """The card's `source_datasets`: "extended|other-<kind>" per real source (none of them is on the Hub)."""
    return [f"extended|other-{kind}" for kind in sorted({r["source_dataset"] for r in rows})]


def card_metadata(
    configs: dict[str, dict[str, list[dict[str, Any]]]],
    num_bytes: dict[str, int],
    data_files: dict[str, list[str]],
    download_size: dict[str, int],
    version: str,
    licences: Licences,
    date_published: str,
    gated: bool = False,
) -> dict[str, Any]:
    """The card's YAML, per the Hub's dataset-card fields: licence (with a link to the card's licence section when
    the terms are mixed), version, task, tags, size bucket, sources, configs with their data files (globs), and
    `dataset_info` per config with its sizes (`dataset_size`: arrow bytes; `download_size`: parquet bytes).
    `gated`: the Hub's access-request fields, asking users to accept the inputs' terms."""
    rows = [r for split_rows in configs[ALL_CONFIG].values() for r in split_rows]
    mixed = licences.hub_id == "other"
    return {
        "license": licences.hub_id,
        **({"license_name": MIXED_NAME, "license_link": "README.md#licences"} if mixed else {}),
        "version": version,
        "date_published": date_published,
        "pretty_name": PRETTY_NAME,
        "annotations_creators": ["machine-generated"],  # the label is the generator's target class
        "task_categories": ["image-classification"],
        "task_ids": ["multi-class-image-classification"],
        "tags": ["medical", "chest-xray", "synthetic", "covid-19"],
        "size_categories": [size_category(len(rows))],
        "source_datasets": source_dataset_ids(rows),
        **({"extra_gated_prompt": licences.statement, "extra_gated_fields": GATED_FIELDS} if gated else {}),
        "configs": [
            {
                "config_name": name,
                **({"default": True} if name == ALL_CONFIG else {}),
                "data_files": [{"split": split, "path": data_files[name]} for split in splits],
            }
            for name, splits in configs.items()
        ],
        "dataset_info": [
            {
                "config_name": name,
                "features": to_card_features(),
                "splits": [
                    {"name": split, "num_bytes": num_bytes[name], "num_examples": len(r)} for split, r in splits.items()
                ],
                "download_size": download_size[name],
                "dataset_size": num_bytes[name],
            }
            for name, splits in configs.items()
        ],
    }


def render_card(
    configs: dict[str, dict[str, list[dict[str, Any]]]],
    num_bytes: dict[str, int],
    data_files: dict[str, list[str]],
    *,
    made_with: list[dict[str, Any]],
    repo_id: str | None,
    folder_name: str,
    gated: bool = False,
    download_size: dict[str, int],
    version: str,
    date_published: str,
) -> str:
    """Render `README.md`; every figure in it comes from `configs` (config → split → rows), `num_bytes`
    (config → arrow bytes of its one split) and `download_size` (config → parquet bytes)."""
    import jinja2
    import yaml

    rows = [r for split_rows in configs[ALL_CONFIG].values() for r in split_rows]
    licences = summarise(rows, made_with)
    config_rows = []
    for name, splits in configs.items():
        for split, split_rows in splits.items():
            by_class = Counter(r["source_class"] for r in split_rows)
            config_rows.append(
                {
                    "name": name,
                    "split": split,
                    "count": len(split_rows),
                    "normal": by_class["normal"],
                    "pneumonia": by_class["pneumonia"],
                    "task": _only(split_rows, "task"),
                    "source_class": _only(split_rows, "source_class"),
                }
            )
    generators: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        key = (r["task"], r["checkpoint_sha256"])
        generators.setdefault(key, {k: r[k] for k in ("task", "preset", "checkpoint_sha256", "config_sha256")})
        generators[key]["count"] = generators[key].get("count", 0) + 1
    by_class = Counter(r["source_class"] for r in rows)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cards", ""), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    env.filters["md"] = markdown_text  # text from the data (licences, file names) as markdown that shows as written
    return env.get_template(TEMPLATE).render(
        yaml_header=yaml.safe_dump(
            card_metadata(configs, num_bytes, data_files, download_size, version, licences, date_published, gated),
            sort_keys=False,
            allow_unicode=True,
        ),
        pretty_name=PRETTY_NAME,
        repo_id=repo_id,
        folder_name=folder_name,
        total=len(rows),
        image_size=_only(rows, "width"),
        fields=[{"name": f.name, "type": _type_name(f), "doc": f.doc} for f in FIELDS],
        config_rows=config_rows,
        generators=sorted(generators.values(), key=lambda g: (g["task"], g["checkpoint_sha256"])),
        source_datasets=source_titles(rows),
        target_datasets=target_titles(made_with),
        licences=licences,
        rai=responsible_ai(),
        version=version,
        date_published=date_published,
        code_versions=sorted({r["code_version"] for r in rows}),
        imbalance=", ".join(f"{by_class[c]} from {c}" for c in sorted(by_class)),
        task_configs=TASK_CONFIG,
        settings=[_settings(m) for m in sorted(made_with, key=lambda m: m.get("task", ""))],
        provenance=provenance_summary(rows),
    )


def provenance_summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows carry provenance (a source patient and a generator checkpoint) and how many do not, so the
    card says what the rows hold; `seed_zips`: how many came from the seed's v0.1 zips, which record none."""
    traced = sum(bool(r["source_patient_id"] and r["checkpoint_sha256"]) for r in rows)
    seed_zips = sum(r["preset"] == RELEASE_PRESET for r in rows)
    return {"total": len(rows), "traced": traced, "untraced": len(rows) - traced, "seed_zips": seed_zips}


def source_titles(rows: list[dict[str, Any]]) -> list[str]:
    """The real datasets the rows were translated from, in words."""
    return [source_title(kind) for kind in sorted({r["source_dataset"] for r in rows})]


def target_titles(metas: list[dict[str, Any]]) -> list[str]:
    """The real datasets whose COVID-19 images the generators were trained towards, with image counts."""
    counts: dict[str, int] = {}
    for meta in per_manifest(metas):
        for kind, n in (meta.get("target_sources") or {}).items():
            counts[kind] = counts.get(kind, 0) + n
    return [f"{source_title(kind)} ({n} images)" for kind, n in sorted(counts.items())]


def made_with_summary(metas: list[dict[str, Any]]) -> tuple[str, tuple[str, ...]]:
    """How the real images were prepared, and each generator, in words (Croissant's preprocessing protocol and
    machine-annotation tools), from the provenance tables' metadata."""
    settings = [_settings(meta) for meta in metas]
    prepared = sorted({s["data"] for s in settings})
    preprocessing = "Real images decoded to 8-bit grayscale and resized to a square before translation: " + "; ".join(
        prepared
    )
    return preprocessing + ".", tuple(sorted({f"{s['task']}: {s['generator']}" for s in settings}))


def _settings(meta: dict[str, Any]) -> dict[str, Any]:
    """One generator's settings and its real data's preparation, from a provenance table's metadata."""
    if "release_asset" in meta:
        return {
            "task": meta["task"],
            "generator": "the seed's Keras CycleGAN (v0.1 release)",
            "training": "not recorded in the release",
            "data": f"{meta['release_asset']} (MD5 {meta['release_md5']})",
            "quirk": "yes (as released)",
        }
    cfg, prep = meta.get("config") or {}, meta.get("prepared") or {}
    model = cfg.get("model", {})
    arch = (
        f"ResNet, {model.get('n_blocks')} blocks, ngf {model.get('ngf')}"
        if model.get("generator") == "resnet"
        else f"U-Net, ngf {model.get('ngf')}"
    )
    return {
        "task": meta.get("task", "not recorded"),
        "generator": arch if model else "not recorded",
        "training": (
            f"{cfg['epochs']} + {cfg['epochs_decay']} decay epochs, batch {cfg['batch_size']}, "
            f"{cfg['crop_size']}², λ_cycle {cfg['lambda_cycle']}, λ_identity {cfg['lambda_identity']}, "
            f"pool {cfg['pool_size']}, {cfg['precision']}, seed {cfg['seed']}"
        )
        if cfg
        else "not recorded",
        "data": (
            f"{', '.join(prep.get('source_kinds') or [])}; split {prep.get('split')} (seed {prep.get('seed')}); "
            f"{prep.get('size')}² {prep.get('resize')}"
        )
        if prep
        else "not recorded",
        "quirk": "yes" if meta.get("seed_quirk") else "no",
    }


def _only(rows: list[dict[str, Any]], key: str) -> Any:
    """The single value of `key` across rows, or 'mixed'."""
    values = {r[key] for r in rows}
    return values.pop() if len(values) == 1 else "mixed"


def _type_name(f) -> str:
    return {"image": "Image", "class": f"ClassLabel ({', '.join(f.names)})"}.get(f.dtype, f"Value({f.dtype})")
