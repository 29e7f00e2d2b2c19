"""The modules that moved into ``model/``, ``masks/`` and ``measure/`` (0.2), still importable by their old
names for one release: ``import persona_circuits.nulls`` gives :mod:`persona_circuits.measure.nulls` itself
(the same module object, so a monkeypatch or an ``isinstance`` check sees one module) with a
``DeprecationWarning``. Stage caches written before the move pickle classes under the old names
(``persona_circuits.statistics.PerTextStats``); they load through the same aliases.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

#: old module (under ``persona_circuits``) -> its module now
MOVED: dict[str, str] = {
    "models": "model.loading", "dtypes": "model.dtypes", "plain": "model.plain", "hooks": "model.hooks",
    "replay": "model.replay", "interventions": "model.interventions", "steering_all": "model.steering_all",
    "export": "model.export",
    "statistics": "masks.statistics", "scoring": "masks.scoring", "selection": "masks.selection",
    "ranked": "masks.ranked", "compose": "masks.compose", "gate": "masks.gate",
    "evaluation": "measure.evaluation", "evaluation_released": "measure.released", "damage": "measure.damage",
    "matching": "measure.matching", "curves": "measure.curves", "nulls": "measure.nulls",
    "baselines": "measure.baselines",
}
PACKAGE = __name__.rpartition(".")[0]


def moved_warning(old: str) -> None:
    warnings.warn(f"{PACKAGE}.{old} moved to {PACKAGE}.{MOVED[old]}; the old name goes in 0.3",
                  DeprecationWarning, stacklevel=3)


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``persona_circuits.<old>`` and loads it as the module it moved to."""

    def find_spec(self, fullname, path=None, target=None):
        pkg, _, leaf = fullname.rpartition(".")
        if pkg != PACKAGE or leaf not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        leaf = spec.name.rpartition(".")[2]
        moved_warning(leaf)
        module = importlib.import_module(f"{PACKAGE}.{MOVED[leaf]}")
        self._real = (module, module.__spec__, module.__loader__)
        return module

    def exec_module(self, module):
        # the import system set the alias's spec on the real module: give it back its own
        real, spec, loader = self._real
        if real is module:
            module.__spec__, module.__loader__ = spec, loader


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())  # before path finders: an old file elsewhere on the path must not win
