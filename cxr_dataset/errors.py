"""The error types the library raises; the CLI turns them into one-line messages."""

from __future__ import annotations


class CxrdsError(Exception):
    """Base class: the message says what failed, where, and what to do next."""


class ConfigError(CxrdsError):
    """A configuration value or file is invalid."""


class SourceError(CxrdsError):
    """A source dataset (file, CSV row, image) cannot be read."""


class SchemaError(CxrdsError):
    """A table or sample does not match `cxr_dataset.schema`."""


class CheckpointError(CxrdsError):
    """A checkpoint is missing, malformed, or does not match its config."""


class ReleaseError(CxrdsError):
    """A release folder is incomplete or inconsistent."""


class OwnershipError(CxrdsError):
    """An output folder is not one the command made, or is one of its inputs."""
