"""Persona masks: activation statistics (:mod:`.statistics`), the weight scores (:mod:`.scoring`), the per-row
selection (:mod:`.selection`, :mod:`.ranked`), the mask object and the paper's builders (:mod:`.build`), the
projection gate (:mod:`.gate`), every method by name with :func:`~.registry.build_masks` (:mod:`.registry`)
and the composition of several masks (:mod:`.compose`).

``persona_circuits.masks.<name>`` still gives every public name of :mod:`.registry` and :mod:`.build` (the
module this package replaces), imported on first use: importing this package imports no torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any


def __getattr__(name: str) -> Any:
    """A public name of :mod:`.registry` or :mod:`.build`, imported on first access (the names
    ``persona_circuits.masks`` had)."""
    submodule = (Path(__file__).parent / f"{name}.py").is_file()  # ``from . import scoring``: the import system's
    if not name.startswith("_") and not submodule:
        for module in (".registry", ".build"):
            mod = importlib.import_module(module, __name__)
            if hasattr(mod, name):
                value = getattr(mod, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
