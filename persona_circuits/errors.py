"""Typed exceptions. Every error the package raises on bad input derives from
:class:`PersonaCircuitsError`, so a caller (and the CLI) can catch them in one place."""

from __future__ import annotations


class PersonaCircuitsError(Exception):
    """Base class of every error raised by ``persona_circuits`` on bad input or state."""


class DatasetError(PersonaCircuitsError, ValueError):
    """A persona data set is unknown, empty or malformed."""


class ModelLoadError(PersonaCircuitsError):
    """A model could not be found or loaded (offline by default)."""


class SignatureError(PersonaCircuitsError):
    """Activation statistics could not be recorded, merged or loaded."""


class MaskError(PersonaCircuitsError, ValueError):
    """A mask could not be built, saved or loaded (bad sparsity, corrupt file...)."""


class ModelMismatchError(MaskError):
    """A mask or signature was made for a model of another shape or identity."""


class OutputError(PersonaCircuitsError):
    """An output path cannot be written (missing parent folder, foreign content...)."""
