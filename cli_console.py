"""How `cxrds` speaks: a console for results and one for progress, warnings and errors; the boundary that turns
any error into one line; progress bars; tables and the commands' summaries."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from cxr_dataset.errors import CxrdsError
from cxr_dataset.progress import PlainProgress, ProgressFn
from cxr_dataset.schema import SOURCE_CLASSES, TASKS
from validation_tools import baselines_folder

_quiet = int(os.environ.get("RANK", "0")) != 0  # under torchrun only rank 0 speaks (the library reports from it)
console = Console(quiet=_quiet)  # results: tables, paths, reports
err_console = Console(stderr=True, quiet=_quiet)  # progress, warnings and errors, as pip and tqdm do
DEBUG = {"on": False}  # `cxrds --debug`: tracebacks instead of one line
# The option that sets how many worker processes a command starts, for when one of them dies.
WORKER_OPTIONS = {"prepare": "--workers", "translate": "--encode-workers", "baselines": "--workers"}


class ErrorBoundary(TyperGroup):
    """Every command runs inside this: any error is one line on stderr and an exit status, never a traceback
    (`cxrds --debug COMMAND` shows it); Ctrl-C exits 130 saying how to resume."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors, --help, exit codes
            raise
        except KeyboardInterrupt:
            if DEBUG["on"]:
                raise
            err_console.print(
                "[yellow]interrupted[/yellow]; nothing half-written is kept: re-run the same command to resume "
                "(train: add --resume)"
            )
            raise typer.Exit(130) from None
        except Exception as e:
            if DEBUG["on"]:
                raise
            err_console.print(f"[red]error:[/red] {escape(one_line(e, ctx.invoked_subcommand))}", soft_wrap=True)
            raise typer.Exit(1) from None


def one_line(error: Exception, command: str | None = None) -> str:
    """A library error's message; an OS error as 'PATH: reason' (disk full, read-only, name too long); a dead
    worker process as what to do; anything else as what failed, with where to see the traceback."""
    if isinstance(error, CxrdsError):
        return str(error)
    if isinstance(error, OSError):
        where = error.filename if error.filename is not None else "?"
        return f"{where}: {error.strerror or error}"
    name = f"cxrds {command}" if command else "cxrds"
    if isinstance(error, BrokenProcessPool):
        option = WORKER_OPTIONS.get(command or "")
        fewer = f" (with fewer {option}, e.g. {option} 1, if memory is short)" if option else ""
        return (
            f"{name}: a worker process died (killed, e.g. for lack of memory); re-run the same command{fewer} "
            "to go on from what is finished"
        )
    detail = " ".join(str(error).split())
    detail = f": {detail[:300]}…" if len(detail) > 300 else f": {detail}" if detail else ""
    return f"{name} failed: {type(error).__name__}{detail} (unexpected; re-run with --debug for the traceback)"


@contextmanager
def reporting() -> Iterator[ProgressFn]:
    """Show progress (rich bars on a terminal, plain lines with rate and ETA otherwise: logs, CI, SLURM) and
    warnings; an error stops the bars and goes on to `ErrorBoundary`."""
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


def table(title: str, rows: list[tuple], columns: tuple[str, ...]) -> Table:
    """A rich table showing titles and cells as written (a path may hold '[red]'); `Text` cells keep their style."""
    shown = Table(title=escape(title), title_justify="left")
    for c in columns:
        shown.add_column(escape(c))
    for r in rows:
        shown.add_row(*(v if isinstance(v, Text) else escape(str(v)) for v in r))
    return shown


def print_pushed(result: Any, repo_id: str, dry_run: bool) -> None:
    plan = result.plan
    rows = [(path, f"{size:,}") for path, size in plan.upload]
    verb = "Would upload" if dry_run else "Uploaded"
    console.print(table(f"{verb} {len(rows)} files to {plan.repo_type}s/{repo_id}", rows, ("file", "bytes")))
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


def print_demo(result: Any, out: Path) -> None:
    console.print(
        table(
            "Prepared", sorted((c, s, n) for (c, s), n in result.prepared.counts.items()), ("class", "split", "images")
        )
    )
    rows = [
        (t, r.steps, r.first_losses["cycle_A"], r.last_losses["cycle_A"], f"{r.images_per_second:.1f}")
        for t, r in result.trained.items()
    ]
    console.print(table("Trained", rows, ("task", "steps", "cycle_A first", "cycle_A last", "img/s")))
    print_report(result.validation)
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


def print_prepared(result: Any, rejects: Path) -> None:
    rows = sorted((c, s, n) for (c, s), n in result.counts.items())
    console.print(table(f"Prepared {result.manifest_path}", rows, ("class", "split", "images")))
    if result.rejects:
        console.print(f"[yellow]{len(result.rejects)} rejected[/yellow]: see {escape(str(rejects))}")


def print_report(report) -> None:
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
    console.print(table("Counts", counts, ("config/split", "rows", *SOURCE_CLASSES, *TASKS)))
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
            table(
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
        console.print(table(title, pairs, ("check", "image", "split", "image", "split", "bits differ")))
    rows = [(Text("ok", style="green") if c.ok else Text("FAIL", style="red"), c.name, c.detail) for c in report.checks]
    console.print(table(f"Validation of {report.root}", rows, ("", "check", "detail")))
