"""`cxrds`: the command line over the library. Commands parse options, call one function, print a summary.

Data flows one way: prepare → train → translate → build → validate (`cxrds demo` runs them all).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from cxr_dataset.configs import from_dict, read_toml
from cxr_dataset.errors import CxrdsError
from cxr_dataset.progress import PlainProgress, ProgressFn
from cxr_dataset.schema import SOURCE_CLASSES, TASKS
from cxr_dataset.sources.phantom import DEMO_SPEC
from validation_tools import baselines_folder

# Under torchrun only rank 0 prints; the library reports progress from rank 0 only.
_quiet = int(os.environ.get("RANK", "0")) != 0  # under torchrun only rank 0 speaks
console = Console(quiet=_quiet)  # results: tables, paths, reports
err_console = Console(stderr=True, quiet=_quiet)  # progress, warnings and errors, as pip and tqdm do
_debug = {"on": False}
# The option that sets how many worker processes a command starts, for when one of them dies.
_WORKER_OPTIONS = {"prepare": "--workers", "translate": "--encode-workers", "baselines": "--workers"}
# Config keys whose option has another name.
_OPTION_OF = {"covid_collection_classes": "covid_classes", "imagefolder_label": "label_column"}
_OPTION_OF |= {"train_limits": "limit_train"}
T = TypeVar("T")


class _ErrorBoundary(TyperGroup):
    """Every command runs inside this: any error is one line on stderr and an exit status, never a traceback
    (`cxrds --debug COMMAND` shows it); Ctrl-C exits 130 saying how to resume."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors, --help, exit codes
            raise
        except KeyboardInterrupt:
            if _debug["on"]:
                raise
            err_console.print(
                "[yellow]interrupted[/yellow]; nothing half-written is kept: re-run the same command to resume "
                "(train: add --resume)"
            )
            raise typer.Exit(130) from None
        except Exception as e:
            if _debug["on"]:
                raise
            err_console.print(f"[red]error:[/red] {escape(_one_line(e, ctx.invoked_subcommand))}", soft_wrap=True)
            raise typer.Exit(1) from None


app = typer.Typer(cls=_ErrorBoundary, add_completion=False, no_args_is_help=True, help=__doc__)
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
    _debug["on"] = debug


@contextmanager
def _progress() -> Iterator[ProgressFn]:
    """Show progress (rich bars on a terminal, plain lines with rate and ETA otherwise: logs, CI, SLURM) and
    warnings; an error stops the bars and goes on to `_ErrorBoundary`."""
    with Progress(
        TextColumn("{task.description:>24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,
        disable=not err_console.is_terminal,
    ) as bar:
        tasks: dict[str, int] = {}
        interval = float(os.environ.get("CXRDS_PROGRESS_SECONDS", "10"))
        plain = PlainProgress(lambda line: err_console.print(escape(line), soft_wrap=True), interval=interval)

        def report(stage: str, done: int, total: int, info: str = "") -> None:
            if not err_console.is_terminal:
                plain(stage, done, total, info)
                return
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, info="")
            bar.update(tasks[stage], completed=done, total=total, info=info)

        def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
            bar.console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", soft_wrap=True)

        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            yield report


def _one_line(error: Exception, command: str | None = None) -> str:
    """A library error's message; an OS error as 'PATH: reason' (disk full, read-only, name too long); a dead
    worker process as what to do; anything else as what failed, with where to see the traceback."""
    if isinstance(error, CxrdsError):
        return str(error)
    if isinstance(error, OSError):
        where = error.filename if error.filename is not None else "?"
        return f"{where}: {error.strerror or error}"
    name = f"cxrds {command}" if command else "cxrds"
    if isinstance(error, BrokenProcessPool):
        option = _WORKER_OPTIONS.get(command or "")
        fewer = f" (with fewer {option}, e.g. {option} 1, if memory is short)" if option else ""
        return (
            f"{name}: a worker process died (killed, e.g. for lack of memory); re-run the same command{fewer} "
            "to go on from what is finished"
        )
    detail = " ".join(str(error).split())
    detail = f": {detail[:300]}…" if len(detail) > 300 else f": {detail}" if detail else ""
    return f"{name} failed: {type(error).__name__}{detail} (unexpected; re-run with --debug for the traceback)"


def _items(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _floats(value: str, option: str) -> list[float]:
    try:
        return [float(v) for v in _items(value)]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {value!r}", param_hint=option) from None


def _counts(value: str, option: str) -> dict[str, int]:
    """'covid=30,pneumonia=50' → {'covid': 30, 'pneumonia': 50}."""
    try:
        return {k.strip(): int(n) for k, n in (item.split("=") for item in _items(value))}
    except ValueError:
        raise typer.BadParameter(f"expected CLASS=N,..., got {value!r}", param_hint=option) from None


def _ints(value: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _items(value))
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated whole numbers, got {value!r}", param_hint=option) from None


def _config(ctx: typer.Context, cls: type[T], **converted: Any) -> T:
    """The stage config `cls` from this command's options (those named as its keys, then `converted` ones):
    with ``--config FILE.toml`` the file's keys win over options left at their defaults, and options given on
    the command line win over the file. `ConfigError` names a bad key."""
    keys = {f.name for f in dataclasses.fields(cls)}
    named = {k: _OPTION_OF.get(k, k) for k in keys}
    options = {k: ctx.params[option] for k, option in named.items() if option in ctx.params} | converted
    file = ctx.params.get("config")
    given = {k: v for k, v in options.items() if _given(ctx, _OPTION_OF.get(k, k))}
    return from_dict(cls, options | (read_toml(file) if file else {}) | given, where=str(file or "options"))


def _options(ctx: typer.Context, *names: str) -> dict[str, Any]:
    """This command's options `names`, by name (to hand on to the function of the same keywords)."""
    return {name: ctx.params[name] for name in names}


def _given(ctx: typer.Context, option: str) -> bool:
    """Whether `option` was given (command line or environment) rather than left at its default."""
    source = ctx.get_parameter_source(option)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _train_config(ctx: typer.Context) -> Any:
    """The preset, the --config overrides on it, then the options given (`cxrds train`)."""
    from generator.config import load_preset

    options = ctx.params
    cfg = load_preset(options["preset"], options["config"])
    cfg = cfg.with_size(options["size"]) if options["size"] else cfg
    keys = ("epochs", "epochs_decay", "batch_size", "lr", "precision", "seed", "compile_mode")
    given = {k: options[k] for k in keys} | {
        "compile": options["compile"] or options["compile_mode"] is not None or None
    }
    return dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})


def _table(title: str, rows: list[tuple], columns: tuple[str, ...]) -> Table:
    """A rich table showing titles and cells as written (a path may hold '[red]'); `Text` cells keep their style."""
    table = Table(title=escape(title), title_justify="left")
    for c in columns:
        table.add_column(escape(c))
    for r in rows:
        table.add_row(*(v if isinstance(v, Text) else escape(str(v)) for v in r))
    return table


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

    with _progress() as progress:
        cfg = _config(
            ctx,
            PrepareConfig,
            fractions=dict(zip(("train", "validation", "test"), _floats(fractions, "--fractions"))),
            views=_items(views),
            covid_collection_classes=_items(covid_classes),
            train_limits=_counts(limit_train, "--limit-train"),
            workers=workers or min(4, os.cpu_count() or 1),
        )
        result = prepare_images(source, out, cfg, progress=progress)
    _print_prepared(result, out / REJECTS_NAME)


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

    with _progress() as progress:
        result = train_generators(prepared, task, out, _train_config(ctx), resume=resume, progress=progress)
    rows = [(k, result.first_losses.get(k), result.last_losses.get(k)) for k in result.last_losses]
    title = f"Trained {task}: {result.steps} steps, {result.images_per_second:.1f} img/s"
    console.print(_table(title, rows, ("loss", "first", "last")))
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

    with _progress() as progress:
        result = translate_images(prepared, checkpoint, out, _config(ctx, TranslateConfig), progress=progress)
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

    with _progress():
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
    cfg = _config(ctx, BuildConfig)
    with _progress() as progress:
        if zips:
            result = build_release_from_zips(zips, out, cfg, progress=progress)
        else:
            result = build_release(synthetic, out, cfg, progress=progress)
    rows = sorted(result.counts.items())
    console.print(_table(f"Built {result.root} ({result.files} files)", rows, ("config", "rows")))


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
    with _progress() as progress:
        options = _options(ctx, "real", "near_duplicate_fraction", "accept_unknown_provenance", "trained_on")
        report = validate_release(release, **options, progress=progress)
    _print_report(report)
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

    with _progress() as progress:
        report = verify_release(release, progress=progress)
    _print_report(report)
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

    with _progress():
        result = push_release(release, repo_id, dry_run=dry_run, private=private, tag=tag, force_tag=force_tag)
    _print_pushed(result, repo_id, dry_run)


def _print_pushed(result: Any, repo_id: str, dry_run: bool) -> None:
    plan = result.plan
    rows = [(path, f"{size:,}") for path, size in plan.upload]
    verb = "Would upload" if dry_run else "Uploaded"
    console.print(_table(f"{verb} {len(rows)} files to {plan.repo_type}s/{repo_id}", rows, ("file", "bytes")))
    deleted = "would delete" if dry_run else "deleted"
    if not plan.remote_listed:
        console.print(f"[yellow]files to delete unknown: {escape(result.note)}[/yellow]")
    else:
        console.print(
            escape(f"{deleted} {len(plan.delete)} files not in this release" + "".join(f"\n  {d}" for d in plan.delete))
        )
    gated = ", gated (users accept the terms first)" if plan.gated else ""
    console.print(escape(f"version {plan.version or 'untagged'}" + (f", tag {plan.tag}" if plan.tag else "") + gated))
    if result.url:
        console.print(escape(result.url))


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

    with _progress() as progress:
        run_baselines(release, real, out, _baselines_config(ctx), progress=progress)
    console.print(escape(baselines_folder.read_baselines(out).table_text()))


app.command("benchmark", hidden=True, deprecated=True, help="Renamed: `cxrds baselines`.")(baselines)


def _baselines_config(ctx: typer.Context) -> Any:
    """`BaselinesConfig.for_protocol` of the `cxrds baselines` options."""
    from validation_tools.baselines import BaselinesConfig

    o = ctx.params
    return BaselinesConfig.for_protocol(
        o["protocol"],
        models=_items(o["models"]) if o["models"] else None,
        comparisons=_items(o["comparisons"]),
        seeds=_ints(o["seeds"], "--seeds"),
        regimes=_items(o["regimes"]),
        external=tuple(map(str, o["external"] or ())),
        **{k: o[k] for k in ("size", "epochs", "pretrained", "controls", "accept_unknown_provenance", "workers")},
        external_drop_shared=o["external_drop_shared"],
    )


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

    with _progress() as progress:
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

    with _progress() as progress:
        result = run_demo(out, size=size, phantom=phantom, epochs=epochs, seed=seed, progress=progress)
    _print_demo(result, out)
    if not result.validation.ok:
        raise typer.Exit(1)


def _print_demo(result: Any, out: Path) -> None:
    console.print(
        _table(
            "Prepared", sorted((c, s, n) for (c, s), n in result.prepared.counts.items()), ("class", "split", "images")
        )
    )
    rows = [
        (t, r.steps, r.first_losses["cycle_A"], r.last_losses["cycle_A"], f"{r.images_per_second:.1f}")
        for t, r in result.trained.items()
    ]
    console.print(_table("Trained", rows, ("task", "steps", "cycle_A first", "cycle_A last", "img/s")))
    _print_report(result.validation)
    console.print(escape(baselines_folder.read_baselines(out / "baselines").table_text()))
    console.print(f"report: {escape(str(result.report))}")
    console.print(f"load_dataset: {result.hf_rows} rows; webdataset: {result.wds_samples} samples")
    console.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.stage_seconds.items()))
    console.print(
        escape(
            f"release: {result.release}\n  try: cd {result.release.parent} && "
            f"python -c 'import datasets; print(datasets.load_dataset(\"{result.release.name}\"))'"
        )
    )


def _print_prepared(result: Any, rejects: Path) -> None:
    rows = sorted((c, s, n) for (c, s), n in result.counts.items())
    console.print(_table(f"Prepared {result.manifest_path}", rows, ("class", "split", "images")))
    if result.rejects:
        console.print(f"[yellow]{len(result.rejects)} rejected[/yellow]: see {escape(str(rejects))}")


def _print_report(report) -> None:
    """An `IntegrityReport` (verify) or a `ValidationReport` (validate: with skew and near duplicates)."""
    skew_rows = getattr(report, "skew", [])
    near_duplicates = getattr(report, "near_duplicates", [])
    counts = [
        (
            where,
            c["rows"],
            *(c["source_class"].get(k, 0) for k in SOURCE_CLASSES),
            *(c["task"].get(t, 0) for t in TASKS),
        )
        for where, c in report.counts.items()
    ]
    console.print(_table("Counts", counts, ("config/split", "rows", *SOURCE_CLASSES, *TASKS)))
    if skew_rows:
        from validation_tools.balance import SEED_PUBLISHED_SKEW

        skew = [
            (
                r["comparison"],
                r["regime"],
                r["negatives"],
                r["positives"],
                f"{r['skew']:.2f}",
                str(SEED_PUBLISHED_SKEW.get((r["comparison"], r["regime"]), "")),
            )
            for r in skew_rows
        ]
        console.print(
            _table(
                "Skew (negatives / positives in training; the seed's published cells beside them: its Pneumonia "
                "cells fit 4,122 pneumonia images, not the release's 4,758)",
                skew,
                ("comparison", "regime", "negatives", "positives", "skew", "seed published"),
            )
        )
    if near_duplicates:
        shown = near_duplicates[:20]
        pairs = [(d["check"], d["a"], d["a_split"], d["b"], d["b_split"], d["differing_bits"]) for d in shown]
        more = len(near_duplicates) - len(shown)
        title = "Near-duplicate pairs (dHash)" + (
            f", first 20 of {len(near_duplicates)} (--json has all)" if more else ""
        )
        console.print(_table(title, pairs, ("check", "image", "split", "image", "split", "bits differ")))
    rows = [(Text("ok", style="green") if c.ok else Text("FAIL", style="red"), c.name, c.detail) for c in report.checks]
    console.print(_table(f"Validation of {report.root}", rows, ("", "check", "detail")))


if __name__ == "__main__":
    app()
