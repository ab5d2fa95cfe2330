"""`cxrds` options → the library's configs: comma-separated lists, counts, and stage configs merged with a
`--config` TOML file (options given on the command line win over it)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import typer

from cxr_dataset.configs import from_dict, read_toml

# Config keys whose option has another name.
OPTION_OF = {"covid_collection_classes": "covid_classes", "imagefolder_label": "label_column"}
OPTION_OF |= {"train_limits": "limit_train"}
T = TypeVar("T")


def items(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def floats(value: str, option: str) -> list[float]:
    try:
        return [float(v) for v in items(value)]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {value!r}", param_hint=option) from None


def counts(value: str, option: str) -> dict[str, int]:
    """'covid=30,pneumonia=50' → {'covid': 30, 'pneumonia': 50}."""
    try:
        return {k.strip(): int(n) for k, n in (item.split("=") for item in items(value))}
    except ValueError:
        raise typer.BadParameter(f"expected CLASS=N,..., got {value!r}", param_hint=option) from None


def ints(value: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in items(value))
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated whole numbers, got {value!r}", param_hint=option) from None


def stage_config(ctx: typer.Context, cls: type[T], **converted: Any) -> T:
    """The stage config `cls` from this command's options (those named as its keys, then `converted` ones):
    with ``--config FILE.toml`` the file's keys win over options left at their defaults, and options given on
    the command line win over the file. `ConfigError` names a bad key."""
    keys = {f.name for f in dataclasses.fields(cls)}
    named = {k: OPTION_OF.get(k, k) for k in keys}
    options = {k: ctx.params[option] for k, option in named.items() if option in ctx.params} | converted
    file = ctx.params.get("config")
    typed = {k: v for k, v in options.items() if was_given(ctx, OPTION_OF.get(k, k))}
    return from_dict(cls, options | (read_toml(file) if file else {}) | typed, where=str(file or "options"))


def named_options(ctx: typer.Context, *names: str) -> dict[str, Any]:
    """This command's options `names`, by name (to hand on to the function of the same keywords)."""
    return {name: ctx.params[name] for name in names}


def was_given(ctx: typer.Context, option: str) -> bool:
    """Whether `option` was given (command line or environment) rather than left at its default."""
    source = ctx.get_parameter_source(option)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def train_config(ctx: typer.Context) -> Any:
    """The preset, the --config overrides on it, then the options given (`cxrds train`)."""
    from generator.config import load_preset

    options = ctx.params
    cfg = load_preset(options["preset"], options["config"])
    cfg = cfg.with_size(options["size"]) if options["size"] else cfg
    keys = ("epochs", "epochs_decay", "batch_size", "lr", "precision", "seed", "compile_mode")
    overrides = {k: options[k] for k in keys} | {
        "compile": options["compile"] or options["compile_mode"] is not None or None
    }
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def baselines_config(ctx: typer.Context) -> Any:
    """`BaselinesConfig.for_protocol` of the `cxrds baselines` options."""
    from validation_tools.baselines import BaselinesConfig

    o = ctx.params
    return BaselinesConfig.for_protocol(
        o["protocol"],
        models=items(o["models"]) if o["models"] else None,
        comparisons=items(o["comparisons"]),
        seeds=ints(o["seeds"], "--seeds"),
        regimes=items(o["regimes"]),
        external=tuple(map(str, o["external"] or ())),
        **{k: o[k] for k in ("size", "epochs", "pretrained", "controls", "accept_unknown_provenance", "workers")},
        external_drop_shared=o["external_drop_shared"],
    )
