"""Errors that tell the user what to fix."""

from __future__ import annotations


class EvoFusionError(Exception):
    """Base class: every error EvoFusion raises on purpose."""


class ConfigError(EvoFusionError, ValueError):
    """A config value is missing, unknown or out of range. The message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class DataError(EvoFusionError, ValueError):
    """The data set cannot be used as given (empty, bad labels, non-finite inputs, missing files)."""


class TeacherError(EvoFusionError, ValueError):
    """The teacher cannot be loaded or does not fit the data."""


class GenomeError(ConfigError):
    """A genome field is invalid; ``field`` is its dotted path (e.g. ``stages[1].kernel``)."""


class RunStoreError(EvoFusionError, RuntimeError):
    """The run directory cannot be used (locked by another driver, corrupt, config mismatch)."""


class CandidateFailed(EvoFusionError, RuntimeError):
    """Raised inside an evaluation for a reason that should mark the candidate FAILED."""
