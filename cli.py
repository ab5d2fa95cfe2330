"""`cxrds`: the command line over the library. Commands parse options, call one function, print a summary.

Data flows one way: prepare → train → translate → build → validate (`cxrds demo` runs them all).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli_console import (
    DEBUG,
    ErrorBoundary,
    console,
    print_demo,
    print_prepared,
    print_pushed,
    print_report,
    reporting,
    table,
)
from cli_options import baselines_config, counts, floats, items, named_options, stage_config, train_config
from cxr_dataset.sources.phantom import DEMO_SPEC
from validation_tools import baselines_folder

app = typer.Typer(cls=ErrorBoundary, add_completion=False, no_args_is_help=True, help=__doc__)
SOURCE_HELP = (
    "KIND=PATH, repeatable. Kinds: phantom (PATH = N, or 'normal:N,pneumonia:N,covid:N'); covid-collection "
    "(covid-chestxray-dataset folder); rsna (RSNA challenge folder, DICOM or JPG); "
    "folder (ROOT/<class>/*.png|jpg|dcm); imagefolder (Hugging Face imagefolder: metadata.csv with file_name, "
    "a label and patient_id); seed-zips (the seed's v0.1 G_NC.zip/G_PC.zip or their folder; old name: release)."
)
CONFIG_HELP = "TOML file of {} keys; options given on the command line win over it."
PRECISION_HELP = "auto (bf16 where the device has it natively, else fp32), bf16 or fp32; runs record the resolved one."


def _print_version(value: bool) -> None:
    if value:
        from cxr_dataset import __version__

        console.print(f"cxrds {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option(help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    DEBUG["on"] = debug


@app.command()
def prepare(
    ctx: typer.Context,
    source: Annotated[list[str], typer.Option(help=SOURCE_HELP)],
    out: Annotated[Path, typer.Option(help="Writes OUT/images/<class>/*.png, manifest.parquet, rejects.csv.")],
    size: Annotated[int, typer.Option(help="Square output size in pixels.")] = 256,
    split: Annotated[
        str, typer.Option(help="patient (seeded, patient-level) or paper (the seed's order).")
    ] = "patient",
    seed: Annotated[int, typer.Option(help="Seed of the split (and of phantom pixels).")] = 0,
    resize: Annotated[
        str,
        typer.Option(
            help="Non-square images: crop (centre; adds no border), pad (black borders) or stretch (aspect changes)."
        ),
    ] = "crop",
    fractions: Annotated[str, typer.Option(help="train,validation,test fractions of --split patient.")] = "0.7,0.1,0.2",
    views: Annotated[
        str, typer.Option(help="covid-collection views to keep (add L for laterals).")
    ] = "PA,AP,AP Supine",
    covid_classes: Annotated[
        str, typer.Option(help="covid-collection classes: covid, plus normal (No Finding) and/or pneumonia.")
    ] = "covid",
    rsna_normal: Annotated[
        str, typer.Option(help="RSNA normals: target0 (every Target-0 patient, the seed's) or normal-only.")
    ] = "target0",
    strict: Annotated[bool, typer.Option(help="Refuse seed zips whose MD5 differs from the published.")] = False,
    label_column: Annotated[
        str, typer.Option(help="imagefolder sources: the metadata column with the class.")
    ] = "label",
    limit_train: Annotated[
        str,
        typer.Option(help="CLASS=N,...: keep a seeded N training images of CLASS (rehearses imbalance)."),
    ] = "",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (1 = in this process; default: one per core, up to 4).")
    ] = None,
    skip_bad: Annotated[bool, typer.Option(help="Keep going past unreadable images (listed in rejects.csv).")] = False,
    config: Annotated[Path | None, typer.Option(help=CONFIG_HELP.format("PrepareConfig"))] = None,
) -> None:
    """Read sources, split them, and write 8-bit grayscale PNGs with a manifest (re-runs resume)."""
    from cxr_dataset.prepare import REJECTS_NAME, PrepareConfig
    from cxr_dataset.prepare import prepare as prepare_images

    with reporting() as progress:
        cfg = stage_config(
            ctx,
            PrepareConfig,
            fractions=dict(zip(("train", "validation", "test"), floats(fractions, "--fractions"))),
            views=items(views),
            covid_collection_classes=items(covid_classes),
            train_limits=counts(limit_train, "--limit-train"),
            workers=workers or min(4, os.cpu_count() or 1),
        )
        result = prepare_images(source, out, cfg, progress=progress)
    print_prepared(result, out / REJECTS_NAME)


@app.command()
def train(
    ctx: typer.Context,
    prepared: Annotated[Path, typer.Option(help="A folder written by `cxrds prepare`.")],
    task: Annotated[str, typer.Option(help="normal2covid (G_NC) or pneumonia2covid (G_PC).")],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints/, samples/, log.jsonl.")],
    preset: Annotated[str, typer.Option(help="cyclegan (reference), paper (the seed's), tiny (demo).")] = "cyclegan",
    config: Annotated[Path | None, typer.Option(help="TOML file of overrides on top of the preset.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs at the initial learning rate.")] = None,
    epochs_decay: Annotated[int | None, typer.Option(help="Further epochs of linear decay.")] = None,
    size: Annotated[int | None, typer.Option(help="Training resolution (keeps the preset's load/crop ratio).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per domain per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate, G and D; not rescaled by --batch-size.")] = None,
    precision: Annotated[str | None, typer.Option(help=PRECISION_HELP)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of weights, order, crops, flips, pool.")] = None,
    compile: Annotated[bool, typer.Option(help="torch.compile the networks (CUDA; slow to start).")] = False,
    compile_mode: Annotated[
        str | None,
        typer.Option(
            help="torch.compile mode (implies --compile): default, reduce-overhead (CUDA graphs: 2-3.7x at batch 4 "
            "on an H200) or max-autotune."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the latest checkpoint in OUT (same config; --epochs may grow).")
    ] = False,
) -> None:
    """Train a CycleGAN between the task's source class and COVID-19 (params: resnet-9 11.4M, unet 1.5M).

    Under torchrun (`torchrun --nproc-per-node N -m cli train ...`) it trains with DDP.
    """
    from generator.train import train as train_generators

    with reporting() as progress:
        result = train_generators(prepared, task, out, train_config(ctx), resume=resume, progress=progress)
    rows = [(k, result.first_losses.get(k), result.last_losses.get(k)) for k in result.last_losses]
    title = f"Trained {task}: {result.steps} steps, {result.images_per_second:.1f} img/s"
    console.print(table(title, rows, ("loss", "first", "last")))
    console.print(f"checkpoint: {escape(str(result.checkpoint))}")


@app.command()
def translate(
    ctx: typer.Context,
    prepared: Annotated[Path, typer.Option(help="The folder the generator was trained from.")],
    checkpoint: Annotated[
        str,
        typer.Option(
            help="A run folder (latest checkpoint), a checkpoint .json, a `cxrds export` folder or hf://USER/REPO[@rev]."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Writes OUT/images/*.png and OUT/provenance.parquet.")],
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 16,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = "auto",
    seed_quirk: Annotated[bool, typer.Option(help="The seed's output: per-image min-max rescale + JPEG.")] = False,
    encode_workers: Annotated[int, typer.Option(help="Processes encoding PNGs beside the generator.")] = 2,
    size: Annotated[
        int | None, typer.Option(help="Output size (default: the training size); e.g. 256 from a 128² run.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help=CONFIG_HELP.format("TranslateConfig"))] = None,
) -> None:
    """Translate every training image of the task's source class into a synthetic COVID-19 image."""
    from generator.translate import TranslateConfig
    from generator.translate import translate as translate_images

    with reporting() as progress:
        result = translate_images(prepared, checkpoint, out, stage_config(ctx, TranslateConfig), progress=progress)
    console.print(escape(f"{result.images} synthetic images ({result.task}) → {result.provenance_path}"))


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="A run folder (its latest checkpoint) or a checkpoint .json.")],
    out: Annotated[Path, typer.Option(help="Writes OUT/model.safetensors, model.json, README.md, SHA256SUMS.")],
    repo_id: Annotated[
        str | None, typer.Option(help="OWNER/NAME of the Hub model repository it is for: the card loads from it.")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="OWNER/NAME of the dataset its images form (card link).")] = None,
) -> None:
    """Write the two generators as an inference-only model folder, loadable with or without cxrds (publish it
    with `cxrds push`)."""
    from generator.export import export_generators

    with reporting():
        result = export_generators(run, out, repo_id=repo_id, dataset_repo_id=dataset)
    console.print(escape(f"exported {result.root}: {result.files} files, generators {result.bytes / 1e6:.1f} MB"))


@app.command()
def build(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Release folder, e.g. release/covid-synthetic-cxr.")],
    synthetic: Annotated[list[Path] | None, typer.Option(help="A `cxrds translate` output folder; repeatable.")] = None,
    from_seed_zips: Annotated[
        list[Path] | None,
        typer.Option(help="Instead: the seed's v0.1 G_NC.zip / G_PC.zip (or their folder); repeatable."),
    ] = None,
    from_release: Annotated[list[Path] | None, typer.Option(hidden=True, help="Old name of --from-seed-zips.")] = None,
    strict: Annotated[bool, typer.Option(help="With --from-seed-zips: refuse zips whose MD5 differs.")] = False,
    dataset_version: Annotated[
        str, typer.Option(help="The dataset's version, MAJOR.MINOR.PATCH (card, Croissant, `push --tag`).")
    ] = "1.0.0",
    date_published: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD; default: SOURCE_DATE_EPOCH's date if set, else today (UTC).")
    ] = None,
    processes: Annotated[
        int,
        typer.Option(help="Processes writing it (0: 1, 2, 4 or 8 as cores allow; 1 under 1,000 images). Same bytes."),
    ] = 0,
    repo_id: Annotated[
        str | None, typer.Option(help="OWNER/NAME of the Hub repository it is for: the card's snippets load from it.")
    ] = None,
    gated: Annotated[
        bool, typer.Option(help="The card asks the Hub to gate access (users accept the inputs' terms); push gates.")
    ] = False,
    creators: Annotated[
        list[str] | None, typer.Option("--creator", help="Who made this release (Croissant's creators); repeatable.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help=CONFIG_HELP.format("BuildConfig"))] = None,
) -> None:
    """Write the release: README.md card, data/<config>/*.parquet, webdataset/*.tar, croissant.json, SHA256SUMS."""
    from builders.release import BuildConfig, build_release, build_release_from_zips

    zips = [*(from_seed_zips or []), *(from_release or [])]
    if bool(synthetic) == bool(zips):
        raise typer.BadParameter("give --synthetic folders or --from-seed-zips zips (one of the two)")
    cfg = stage_config(ctx, BuildConfig)
    with reporting() as progress:
        if zips:
            result = build_release_from_zips(zips, out, cfg, progress=progress)
        else:
            result = build_release(synthetic, out, cfg, progress=progress)
    rows = sorted(result.counts.items())
    console.print(table(f"Built {result.root} ({result.files} files)", rows, ("config", "rows")))


@app.command()
def validate(
    ctx: typer.Context,
    release: Annotated[Path, typer.Argument(help="A release folder written by `cxrds build`.")],
    real: Annotated[
        Path | None, typer.Option(help="The prepared real data (PREPARED): adds skew, leakage and duplicate checks.")
    ] = None,
    near_duplicate_fraction: Annotated[
        float, typer.Option(help="Near-duplicates: at most this share of the 1,024 dHash bits differ.")
    ] = 0.08,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
    accept_unknown_provenance: Annotated[
        bool,
        typer.Option(
            help="With --real: pass although some synthetic images name no source patient, or their generators' "
            "training data is not recorded (unchecked)."
        ),
    ] = False,
    trained_on: Annotated[
        list[Path] | None,
        typer.Option(
            help="With --real: the prepared data (PREPARED) some generators were trained on, when it is not --real: "
            "names its training patients that are validation/test patients in --real; repeatable."
        ),
    ] = None,
) -> None:
    """Check integrity (counts, decoding, checksums) and, with --real, class skew, leakage and duplicates."""
    from cxr_dataset.ownership import check_output_file, write_output_file
    from validation_tools.validate import validate_release

    inputs = [release, *([real] if real else []), *(trained_on or [])]
    if json_out:
        check_output_file(json_out, "validation", inputs)  # before the work, not after
    with reporting() as progress:
        options = named_options(ctx, "real", "near_duplicate_fraction", "accept_unknown_provenance", "trained_on")
        report = validate_release(release, **options, progress=progress)
    print_report(report)
    if json_out:
        write_output_file(json_out, "validation", {"ok": report.ok, **dataclasses.asdict(report)}, inputs)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def verify(
    release: Annotated[Path, typer.Argument(help="A release folder written by `cxrds build`.")],
) -> None:
    """Re-check SHA256SUMS, the counts the card declares, and that every image decodes; exit 1 on any failure."""
    from cxr_dataset.verify import verify_release

    with reporting() as progress:
        report = verify_release(release, progress=progress)
    print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def push(
    release: Annotated[
        Path, typer.Argument(help="A release folder (`cxrds build`) or an exported model folder (`cxrds export`).")
    ],
    repo_id: Annotated[str, typer.Option(help="Hub repository, e.g. USER/covid-synthetic-cxr or USER/cxr-g-nc.")],
    dry_run: Annotated[
        bool, typer.Option(help="Verify and list what would be uploaded and deleted; reads the Hub, writes nothing.")
    ] = False,
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
    tag: Annotated[
        str | None, typer.Option(help="Tag the commit, e.g. v1.0.0 (must match the release's dataset version).")
    ] = None,
    force_tag: Annotated[
        bool, typer.Option(help="Move --tag to this push when the repository has it already (else refused).")
    ] = False,
) -> None:
    """Verify the release, then publish it to the Hugging Face Hub in one commit: upload what SHA256SUMS lists,
    delete every other file, check the Hub's checksums, tag (token from HF_TOKEN or `hf auth login`)."""
    from builders.push import push_release

    with reporting():
        result = push_release(release, repo_id, dry_run=dry_run, private=private, tag=tag, force_tag=force_tag)
    print_pushed(result, repo_id, dry_run)


@app.command()
def baselines(
    ctx: typer.Context,
    release: Annotated[Path, typer.Option(help="A release folder (the synthetic positives).")],
    real: Annotated[Path, typer.Option(help="The prepared real data it was made from.")],
    out: Annotated[Path, typer.Option(help=f"Writes OUT/{baselines_folder.LISTING}.")],
    protocol: Annotated[
        str,
        typer.Option(
            help="leak-free (validation split, or one carved from train by patient) or seed (the seed's "
            "notebooks: the test set early-stops; optimistic)."
        ),
    ] = "leak-free",
    models: Annotated[
        str | None, typer.Option(help="Comma-separated: small-cnn, vgg16, resnet50, densenet121 (default: protocol's).")
    ] = None,
    comparisons: Annotated[
        str, typer.Option(help="Comma-separated: 'normal vs covid', 'pneumonia vs covid'.")
    ] = "normal vs covid,pneumonia vs covid",
    size: Annotated[int | None, typer.Option(help="Image size for the classifiers (leak-free 64, seed 256).")] = None,
    epochs: Annotated[int | None, typer.Option(help="At most this many epochs (leak-free 20, seed 200).")] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated classifier seeds; tables give mean ± SD.")] = "0,1,2",
    pretrained: Annotated[
        bool | None, typer.Option(help="ImageNet weights for torchvision models (downloads; seed: on).")
    ] = None,
    controls: Annotated[bool, typer.Option(help="Also train the oversampling and class-weight controls.")] = True,
    regimes: Annotated[
        str,
        typer.Option(
            help=f"Comma-separated regimes to train, named as in {baselines_folder.TABLE_NAME} (default: every one)."
        ),
    ] = "",
    accept_unknown_provenance: Annotated[
        bool, typer.Option(help="Train on synthetic images that name no source patient (cannot be leak-checked).")
    ] = False,
    workers: Annotated[int, typer.Option(help="Processes decoding images (0: one per core, up to 8).")] = 0,
    external: Annotated[
        list[Path] | None,
        typer.Option(
            help="Other prepared data (another site or collection) every classifier is also scored on, reported "
            "apart: its test split when that holds both classes, else all of it. Repeatable."
        ),
    ] = None,
    external_drop_shared: Annotated[
        bool,
        typer.Option(help="Leave out external images of patients in the training data (default: refuse the set)."),
    ] = False,
) -> None:
    """Train baseline classifiers per regime (real, + G, + both, synthetic only, oversampled, class-weighted);
    score on real test images, with paired comparisons."""
    from validation_tools.baselines import run_baselines

    with reporting() as progress:
        run_baselines(release, real, out, baselines_config(ctx), progress=progress)
    console.print(escape(baselines_folder.read_baselines(out).table_text()))


app.command("benchmark", hidden=True, deprecated=True, help="Renamed: `cxrds baselines`.")(baselines)


@app.command()
def report(
    baselines: Annotated[Path, typer.Option(help="The output folder of `cxrds baselines`.")],
    release: Annotated[Path, typer.Option(help="The release the baselines used.")],
    real: Annotated[Path, typer.Option(help="The prepared real data the baselines used.")],
    out: Annotated[Path, typer.Option(help="Writes OUT/report.md and its PNG figures.")],
    inception_weights: Annotated[
        Path | None,
        typer.Option(help="torchvision Inception-v3 weights as .safetensors: adds FID/KID on its features."),
    ] = None,
    margin: Annotated[
        float,
        typer.Option(
            help="Non-inferiority margin on the primary endpoint's ΔAUC (real + the task's generator − the "
            "oversampling control), printed in the headline."
        ),
    ] = -0.02,
) -> None:
    """Write report.md with the metrics tables and figures (class balance, ROC curves, real vs synthetic)."""
    from validation_tools.report import write_report

    with reporting() as progress:
        result = write_report(
            baselines, release, real, out, inception=inception_weights, margin=margin, progress=progress
        )
    console.print(escape(f"report: {result.path} ({', '.join(p.name for p in result.figures)})"))


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option(help="Everything goes here: prepared/, runs/, synthetic/, release/, baselines/, report/.")
    ] = Path("cxrds-demo"),
    size: Annotated[int, typer.Option(help="Image size of the whole demo.")] = 64,
    epochs: Annotated[int | None, typer.Option(help="Training epochs per task (default: the tiny preset's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of data, split and training.")] = 0,
    phantom: Annotated[str, typer.Option(help="Phantom images per class.")] = DEMO_SPEC,
) -> None:
    """Run prepare → train → translate → build → validate → baselines → report → load on phantom data, on CPU."""
    from demo import run_demo

    with reporting() as progress:
        result = run_demo(out, size=size, phantom=phantom, epochs=epochs, seed=seed, progress=progress)
    print_demo(result, out)
    if not result.validation.ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
