"""Card templates (`dataset_card.md.jinja`) and the dataset's Responsible-AI text (`responsible_ai.toml`)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def responsible_ai() -> dict[str, Any]:
    """Intended and out-of-scope use, biases, limitations, collection, sensitive information, maintenance."""
    return tomllib.loads(files(__package__).joinpath("responsible_ai.toml").read_text(encoding="utf-8"))
